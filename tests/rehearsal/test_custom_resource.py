"""`Custom::BatchopsJob` through the deployed stack: CloudFormation's own request documents
(Create, Update, Delete; every scalar property a string, as CloudFormation passes them) sent to
the custom resource function under the Lambda Runtime API, each answered by a PUT of the
response document to its `ResponseURL`, a URL of moto's S3 presigned for a PUT as
CloudFormation's are. Checked: each response document, and the job it speaks of.

CloudFormation itself is not here (moto cannot invoke a function for a custom resource): this
plays its part, from the documented request and response formats
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref.html). Its response
bucket is CloudFormation's, not the stack's: a second moto server plays it, without IAM
enforcement (moto's enforcement refuses presigned URLs; see MOTO_GAPS)."""

import hashlib
import json
import os
import socket
import subprocess
import time
import uuid

import boto3
import pytest
from botocore.config import Config
from test_jobs import csv_manifest, report

import stack
from conftest import ACCOUNT, KEYS
from lambdas import ROOT

FUNCTION = "job-intake-resource"
STACK_ID = f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/app-with-jobs/{uuid.uuid4()}"


def strings(v):
    """Properties as CloudFormation hands them to a custom resource: every scalar a string."""
    if isinstance(v, dict):
        return {k: strings(x) for k, x in v.items()}
    if isinstance(v, list):
        return [strings(x) for x in v]
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return v


@pytest.fixture(scope="module")
def response_s3(rehearsal):
    """CloudFormation's response bucket, in a moto server of its own: an S3 client for it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(os.path.join(rehearsal.logs, "moto-responses.log"), "w")
    server = subprocess.Popen([os.path.join(ROOT, ".venv", "bin", "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=log)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                           aws_access_key_id="cloudformation", aws_secret_access_key="cloudformation",
                           config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    finally:
        server.terminate()
        server.wait(timeout=10)


class CloudFormation:
    """Sends request documents as CloudFormation does and reads the answers it would read."""

    def __init__(self, rehearsal, s3):
        self.rehearsal, self.s3 = rehearsal, s3
        self.bucket = f"cloudformation-custom-resource-response-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=self.bucket)
        self.token = rehearsal.stack["outputs"]["BatchopsJobServiceToken"]

    def properties(self, b, **members):
        props = {
            "ServiceToken": self.token,
            "RoleArn": self.rehearsal.job_role,
            "Priority": 10,
            "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "declared-in", "Value": "cloudformation"}]}},
            "Manifest": csv_manifest(self.rehearsal, b, KEYS),
            "Report": {"Bucket": f"arn:aws:s3:::{b['rep']}", "Format": "Report_CSV_20180820", "Enabled": True,
                       "Prefix": "reports", "ReportScope": "AllTasks"},
        }
        props.update(members)
        return strings(props)

    def send(self, kind, logical, props, physical=None, old=None, request_id=None):
        """One request document (a new request unless `request_id` names one to deliver again),
        invoked as CloudFormation invokes the service token; returns it and its response's key."""
        request_id = request_id or str(uuid.uuid4())
        key = f"responses/{request_id}"
        url = self.s3.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=7200
        )
        doc = {
            "RequestType": kind,
            "ServiceToken": self.token,
            "ResponseURL": url,
            "StackId": STACK_ID,
            "RequestId": request_id,
            "LogicalResourceId": logical,
            "ResourceType": "Custom::BatchopsJob",
            "ResourceProperties": props,
        }
        if physical:
            doc["PhysicalResourceId"] = physical
        if old is not None:
            doc["OldResourceProperties"] = old
        status, out = self.rehearsal.runtime.invoke(FUNCTION, doc, timeout=120)
        assert status == 200, out
        return doc, key

    def answer(self, key, wait=5):
        end = time.time() + wait
        while True:
            try:
                body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                return json.loads(body)
            except self.s3.exceptions.NoSuchKey:
                if time.time() > end:
                    return None
                time.sleep(0.5)

    def request(self, kind, logical, props, physical=None, old=None, request_id=None):
        """The response document of one request, checked to answer it."""
        doc, key = self.send(kind, logical, props, physical, old, request_id)
        answer = self.answer(key)
        assert answer is not None, f"no response document for {kind} {logical}"
        for field in ("StackId", "RequestId", "LogicalResourceId"):
            assert answer[field] == doc[field], field
        assert answer["Status"] in ("SUCCESS", "FAILED"), answer
        return answer




def job(rehearsal, job_id):
    status, out = rehearsal.call("GET", f"/v20180820/jobs/{job_id}")
    assert status == 200, out
    return out["Job"]


def test_create_update_in_place_replace_and_delete_answer_cloudformation(rehearsal, buckets, response_s3):
    cfn = CloudFormation(rehearsal, response_s3)
    props = cfn.properties(buckets, ConfirmationRequired=True, Description="declared in a template")
    created = cfn.request("Create", "Tagging", props)
    assert created["Status"] == "SUCCESS", created
    first = created["PhysicalResourceId"]
    assert created["Data"]["JobId"] == first
    assert created["Data"]["Status"] in ("New", "Preparing")  # the chunker may have taken it already
    assert created["Data"]["ReportManifest"] == f"s3://{buckets['rep']}/reports/job-{first}/manifest.json"
    j = rehearsal.wait(first, {"Suspended"})
    assert (j["Priority"], j["Description"], j["ConfirmationRequired"]) == (10, "declared in a template", True)

    # The same Create delivered again (Lambda retries a failed asynchronous invocation): the same job.
    again = cfn.request("Create", "Tagging", props, request_id=created["RequestId"])
    assert again["PhysicalResourceId"] == first

    # Priority and tags change in place.
    changed = cfn.properties(buckets, ConfirmationRequired=True, Description="declared in a template",
                             Priority=77, Tags=[{"Key": "team", "Value": "data"}])
    updated = cfn.request("Update", "Tagging", changed, physical=first, old=props)
    assert (updated["Status"], updated["PhysicalResourceId"]) == ("SUCCESS", first), updated
    assert job(rehearsal, first)["Priority"] == 77
    status, tags = rehearsal.call("GET", f"/v20180820/jobs/{first}/tagging")
    assert status == 200 and tags["Tags"] == [{"Key": "team", "Value": "data"}], tags

    # Another operation replaces the job; CloudFormation then deletes the old resource, whose
    # job (still waiting for confirmation) is cancelled.
    replacing = cfn.properties(buckets, Description="declared in a template, v2")
    replaced = cfn.request("Update", "Tagging", replacing, physical=first, old=changed)
    assert replaced["Status"] == "SUCCESS", replaced
    second = replaced["PhysicalResourceId"]
    assert second != first
    deleted = cfn.request("Delete", "Tagging", changed, physical=first)
    assert (deleted["Status"], deleted["PhysicalResourceId"]) == ("SUCCESS", first), deleted
    assert rehearsal.wait(first, {"Cancelled"})["StatusUpdateReason"] == "Tagging was deleted from its CloudFormation stack"

    # The new job runs to its end; deleting it then changes nothing and succeeds.
    assert rehearsal.wait(second, {"Complete"})["ProgressSummary"]["NumberOfTasksSucceeded"] == len(KEYS)
    gone = cfn.request("Delete", "Tagging", replacing, physical=second)
    assert gone["Status"] == "SUCCESS", gone
    assert job(rehearsal, second)["Status"] == "Complete"


def test_wait_for_complete_answers_when_the_job_has_ended_with_its_counters_and_report(rehearsal, buckets, response_s3):
    cfn = CloudFormation(rehearsal, response_s3)
    props = cfn.properties(buckets, WaitFor="Complete")
    doc, key = cfn.send("Create", "TagAndWait", props)
    # No answer while the job runs: the function queued its wait and returned.
    assert cfn.answer(key, wait=0) is None
    answer = cfn.answer(key, wait=240)
    assert answer is not None, "no answer within 240 s"
    assert answer["Status"] == "SUCCESS", answer
    data = answer["Data"]
    assert data["Status"] == "Complete"
    assert (data["TotalNumberOfTasks"], data["NumberOfTasksSucceeded"], data["NumberOfTasksFailed"]) == (
        str(len(KEYS)), str(len(KEYS)), "0")
    manifest = data["ReportManifest"]
    assert manifest == f"s3://{buckets['rep']}/reports/job-{answer['PhysicalResourceId']}/manifest.json"
    rows = report(rehearsal, buckets, answer["PhysicalResourceId"])
    assert len(rows) == len(KEYS) and all(status == "succeeded" for status, _ in rows)
    tags = rehearsal.s3.get_object_tagging(Bucket=buckets["src"], Key=KEYS[0])["TagSet"]
    assert {"Key": "declared-in", "Value": "cloudformation"} in tags


def test_every_failure_answers_failed_with_a_reason_cloudformation_shows(rehearsal, buckets, response_s3):
    cfn = CloudFormation(rehearsal, response_s3)
    bad = cfn.request("Create", "Bad", cfn.properties(buckets, Priority="high"))
    assert bad["Status"] == "FAILED" and bad["Reason"].startswith("Priority"), bad
    # It names the job it would have made (none was): its rollback's Delete has nothing to cancel.
    rollback = cfn.request("Delete", "Bad", cfn.properties(buckets, Priority="high"), physical=bad["PhysicalResourceId"])
    assert rollback["Status"] == "SUCCESS", rollback

    unknown = cfn.request("Create", "Bad", cfn.properties(buckets, Colour="blue"))
    assert unknown["Status"] == "FAILED" and "Colour" in unknown["Reason"], unknown

    # A job that cannot run (a role the stack's pattern does not allow) fails its waiting resource.
    role = f"arn:aws:iam::{ACCOUNT}:role/not-a-batchops-role"
    _, key = cfn.send("Create", "NotAllowed", cfn.properties(buckets, RoleArn=role, WaitFor="Complete"))
    failing = cfn.answer(key, wait=120)
    assert failing is not None and failing["Status"] == "FAILED", failing
    assert failing["Reason"].startswith(f"job {failing['PhysicalResourceId']} ended Failed (AssumeRoleFailed: "), failing
    assert "not-a-batchops-role" in failing["Reason"], failing


def test_the_example_template_declares_a_job_that_runs_to_its_end(rehearsal, buckets, response_s3):
    """examples/cloudformation/job.yaml's resource, its intrinsic functions resolved as
    CloudFormation would with the stack's export as ServiceToken."""
    with open(os.path.join(ROOT, "examples", "cloudformation", "job.yaml")) as f:
        example, problems = stack.decode_str(f.read())
    assert not problems, problems
    (logical, resource), = example["Resources"].items()
    assert resource["Type"] == "Custom::BatchopsJob"
    cfn = CloudFormation(rehearsal, response_s3)
    props = dict(resource["Properties"])
    assert props.pop("ServiceToken") == {"Fn::ImportValue": {"Fn::Sub": "${BatchopsStack}-BatchopsJobServiceToken"}}
    values = {"DataBucket": buckets["src"], "Prefix": "data/obj 1", "ReportBucket": buckets["rep"],
              "JobRoleArn": rehearsal.job_role, "AWS::Partition": "aws", "AWS::StackName": "tag-incoming"}
    props = strings(dict(stack.Resolver(example, values)(props), ServiceToken=cfn.token))
    _, key = cfn.send("Create", logical, props)
    answer = cfn.answer(key, wait=240)
    assert answer is not None and answer["Status"] == "SUCCESS", answer
    under = [k for k in KEYS if k.startswith("data/obj 1")]
    assert answer["Data"]["NumberOfTasksSucceeded"] == str(len(under)) and len(under) == 11
    tags = rehearsal.s3.get_object_tagging(Bucket=buckets["src"], Key=under[0])["TagSet"]
    assert {"Key": "reviewed", "Value": "true"} in tags
    j = job(rehearsal, answer["PhysicalResourceId"])
    assert j["Description"] == f"tag data/obj 1 of {buckets['src']} (stack tag-incoming)"


def test_a_request_whose_response_url_is_not_cloudformations_does_nothing(rehearsal, buckets, response_s3):
    """Whoever may invoke the function names the URL it answers: one outside the response hosts
    (BATCHOPS_RESOURCE_RESPONSE_HOSTS) is refused before anything is done, and not answered."""
    cfn = CloudFormation(rehearsal, response_s3)
    request_id = str(uuid.uuid4())
    doc = {"RequestType": "Create", "ServiceToken": cfn.token, "ResponseURL": "https://attacker.example/collect",
           "StackId": STACK_ID, "RequestId": request_id, "LogicalResourceId": "Elsewhere",
           "ResourceType": "Custom::BatchopsJob", "ResourceProperties": cfn.properties(buckets)}
    status, out = rehearsal.runtime.invoke(FUNCTION, doc, timeout=120)
    # The invocation fails (the function's errors alarm counts it), naming why.
    assert status != 200 and "is not on a response host" in str(out), (status, out)
    # The job the request would have made (its id derived from stack, resource and request) is not there.
    digest = hashlib.sha1("".join(f"{p}\n" for p in (STACK_ID, "Elsewhere", request_id)).encode()).digest()
    would_be = str(uuid.UUID(bytes=digest[:16]))
    status, out = rehearsal.call("GET", f"/v20180820/jobs/{would_be}")
    assert status == 404, out
    # The same request to CloudFormation's response bucket makes exactly that job.
    made = cfn.request("Create", "Elsewhere", doc["ResourceProperties"], request_id=request_id)
    assert made["PhysicalResourceId"] == would_be, made
