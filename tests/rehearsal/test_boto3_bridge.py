"""boto3's s3control client and the AWS CLI against the deployed stack, through `batchops_boto3`
(clients/boto3, installed in the virtualenv by `make venv`): S3 Control's job calls, unchanged,
reach the stack's API signed for `execute-api` (the API proxy verifies each signature as API
Gateway would) and their jobs complete; the same calls signed for `s3`, as a stock client
signs them, are refused with 403."""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import boto3
import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

import batchops_boto3
import stack
from conftest import ACCOUNT, KEYS, STACK
from test_jobs import TAGGING, csv_manifest, report, spec, tags

AWS = os.path.join(os.path.dirname(sys.executable), "aws")
ONE_TRY = Config(retries={"max_attempts": 1})


def operator_session(rehearsal):
    """A boto3 session with the operator's keys (execute-api:Invoke, cloudformation:DescribeStacks)."""
    c = rehearsal.operator
    return boto3.Session(aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                         region_name=stack.REGION)


def tagging_job(rehearsal, b):
    """CreateJob's parameters, as boto3 takes them, for tagging every object of KEYS."""
    return dict(spec(rehearsal, b, TAGGING, csv_manifest(rehearsal, b, KEYS)), ConfirmationRequired=False)


def wait(s3control, job_id, timeout=240):
    """DescribeJob through `s3control` until the job ends."""
    end = time.time() + timeout
    while True:
        job = s3control.describe_job(AccountId=ACCOUNT, JobId=job_id)["Job"]
        if job["Status"] in ("Complete", "Failed", "Cancelled"):
            return job
        assert time.time() < end, f"job {job_id} still {job['Status']}: {job}"
        time.sleep(0.5)


def listed(s3control, status="Complete"):
    """ListJobs' job ids, every page (boto3 has no paginator for it: NextToken by hand)."""
    ids, token = [], {}
    while True:
        page = s3control.list_jobs(AccountId=ACCOUNT, JobStatuses=[status], MaxResults=100, **token)
        ids += [j["JobId"] for j in page.get("Jobs", [])]
        if not page.get("NextToken"):
            return ids
        token = {"NextToken": page["NextToken"]}


def assert_tagged_every_object(rehearsal, b, job):
    rows = report(rehearsal, b, job["JobId"]) if job["Status"] == "Complete" else []
    failed = [r for status, r in rows if status != "succeeded"][:5]
    assert job["Status"] == "Complete" and job["ProgressSummary"]["NumberOfTasksSucceeded"] == len(KEYS), (job, failed)
    assert len(rows) == len(KEYS) and not failed
    assert all(tags(rehearsal, b["src"], k) == {"reviewed": "yes"} for k in KEYS)


def test_boto3_creates_describes_and_lists_a_job_through_the_stacks_api(rehearsal, buckets):
    # The API's URL from the stack's outputs (DescribeStacks, on the rehearsal's moto)
    s3control = batchops_boto3.client(stack=STACK, session=operator_session(rehearsal), config=ONE_TRY)
    job_id = s3control.create_job(**tagging_job(rehearsal, buckets))["JobId"]
    job = wait(s3control, job_id)
    assert job["JobId"] == job_id and job["RoleArn"] == rehearsal.job_role
    assert_tagged_every_object(rehearsal, buckets, job)
    assert job_id in listed(s3control)
    # The same job through the JSON API (what the batchops CLI sees)
    assert rehearsal.wait(job_id, ["Complete"])["Status"] == "Complete"


def test_boto3_attached_to_the_https_api_with_its_certificate(rehearsal, buckets):
    s3control = operator_session(rehearsal).client("s3control", verify=rehearsal.api.ca_file, config=ONE_TRY)
    batchops_boto3.attach(s3control, api_url=rehearsal.api.tls_url)
    job_id = s3control.create_job(**tagging_job(rehearsal, buckets))["JobId"]
    assert_tagged_every_object(rehearsal, buckets, wait(s3control, job_id))
    s3control.put_job_tagging(AccountId=ACCOUNT, JobId=job_id, Tags=[{"Key": "via", "Value": "https"}])
    assert s3control.get_job_tagging(AccountId=ACCOUNT, JobId=job_id)["Tags"] == [{"Key": "via", "Value": "https"}]


def aws(rehearsal, tmp_path, *args):
    """`aws ...` (the virtualenv's AWS CLI v1) as the operator, with the plugin enabled in a
    configuration of its own and the stack named by BATCHOPS_STACK (found on the rehearsal's
    moto through AWS_ENDPOINT_URL, as the batchops CLI finds it)."""
    config = tmp_path / "aws-config"
    config.write_text("[default]\nregion = us-east-1\n[plugins]\nbatchops = batchops_boto3.cli\n")
    creds = rehearsal.operator
    env = dict(os.environ, AWS_CONFIG_FILE=str(config), AWS_SHARED_CREDENTIALS_FILE=os.devnull,
               AWS_ACCESS_KEY_ID=creds["AccessKeyId"], AWS_SECRET_ACCESS_KEY=creds["SecretAccessKey"],
               AWS_DEFAULT_REGION=stack.REGION, BATCHOPS_STACK=STACK)
    for k in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "BATCHOPS_API_URL"):
        env.pop(k, None)
    out = subprocess.run([sys.executable, AWS, "s3control", *args, "--output", "json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else {}


def test_the_aws_cli_with_the_plugin_creates_a_job_on_the_stack(rehearsal, buckets, tmp_path):
    body = tagging_job(rehearsal, buckets)
    for k in ("AccountId", "ClientRequestToken"):  # --account-id; the CLI fills a token in
        del body[k]
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(body))
    job_id = aws(rehearsal, tmp_path, "create-job", "--account-id", ACCOUNT, "--cli-input-json", f"file://{path}")["JobId"]
    rehearsal.wait(job_id, ["Complete", "Failed"])
    job = aws(rehearsal, tmp_path, "describe-job", "--account-id", ACCOUNT, "--job-id", job_id)["Job"]
    assert_tagged_every_object(rehearsal, buckets, job)
    listed = aws(rehearsal, tmp_path, "list-jobs", "--account-id", ACCOUNT, "--job-statuses", "Complete")
    assert job_id in [j["JobId"] for j in listed["Jobs"]]


def signed_get(rehearsal, auth):
    """ListJobs as S3 Control sends it (x-amz-account-id), signed by `auth` with the operator's
    keys: (status, body)."""
    url = rehearsal.api.url + "/v20180820/jobs"
    req = AWSRequest(method="GET", url=url, headers={"x-amz-account-id": ACCOUNT})
    creds = Credentials(rehearsal.operator["AccessKeyId"], rehearsal.operator["SecretAccessKey"])
    auth(creds, "s3" if auth is S3SigV4Auth else "execute-api", stack.REGION).add_auth(req)
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=dict(req.headers)), timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_a_request_signed_for_s3_is_refused_as_api_gateway_refuses_it(rehearsal, monkeypatch):
    # The same request, the same keys: signed for execute-api it is answered, for s3 refused.
    status, body = signed_get(rehearsal, SigV4Auth)
    assert status == 200 and b"<ListJobsResult" in body, body
    status, body = signed_get(rehearsal, S3SigV4Auth)
    assert status == 403 and b"signature" in body, body
    # A stock s3control client (signs for s3, puts the account in the host): reaching the API
    # through it as a proxy, as tests/sdk reach batchops local, it gets API Gateway's 403.
    for k in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(k, raising=False)
    api = rehearsal.api.url
    base = api[: -len(urllib.parse.urlsplit(api).path)]
    stock = operator_session(rehearsal).client("s3control", endpoint_url=api,
                                               config=ONE_TRY.merge(Config(proxies={"http": base})))
    with pytest.raises(ClientError) as e:
        stock.list_jobs(AccountId=ACCOUNT)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.value.response
