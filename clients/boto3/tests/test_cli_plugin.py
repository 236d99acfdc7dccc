"""The AWS CLI plugin: `aws` (v1, the virtualenv's) run as a subprocess with a configuration that
enables `batchops_boto3.cli`, against a tiny HTTP server of the test's that records each
request and answers as the API (CreateJob, ListJobs), CloudFormation (DescribeStacks) or STS
would."""

import json
import os
import subprocess
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import ACCOUNT, CREATE_JOB_XML, JOB_ID, KEY, PACKAGE, SECRET, auth_fields, expected_signature, header

AWS = os.path.join(os.path.dirname(sys.executable), "aws")
pytestmark = pytest.mark.skipif(not os.path.exists(AWS), reason=f"no AWS CLI at {AWS} (make venv installs awscli)")


class Server:
    """Records (method, path, headers, body) of every request; answers by what it is."""

    def __init__(self):
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.answer(self)

            def do_POST(self):
                server.answer(self)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"
        self.api = self.base + "/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, h):
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        self.requests.append(types.SimpleNamespace(method=h.command, path=h.path, headers=h.headers, body=body,
                                                   url=f"http://{h.headers['Host']}{h.path}"))
        if b"Action=DescribeStacks" in body:
            out = (
                '<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">'
                "<DescribeStacksResult><Stacks><member><StackName>batchops</StackName>"
                "<StackStatus>CREATE_COMPLETE</StackStatus><CreationTime>2025-01-01T00:00:00Z</CreationTime>"
                f"<Outputs><member><OutputKey>ApiUrl</OutputKey><OutputValue>{self.api}</OutputValue></member>"
                "</Outputs></member></Stacks></DescribeStacksResult></DescribeStacksResponse>"
            ).encode()
        elif b"Action=GetCallerIdentity" in body:
            out = (
                '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                f"<GetCallerIdentityResult><Arn>arn:aws:iam::{ACCOUNT}:user/u</Arn><UserId>u</UserId>"
                f"<Account>{ACCOUNT}</Account></GetCallerIdentityResult></GetCallerIdentityResponse>"
            ).encode()
        elif h.command == "POST":
            out = CREATE_JOB_XML
        else:
            out = b"<ListJobsResult><Jobs></Jobs></ListJobsResult>"
        h.send_response(200)
        h.send_header("Content-Type", "text/xml")
        h.send_header("Content-Length", str(len(out)))
        h.end_headers()
        h.wfile.write(out)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


def aws(tmp_path, *args, profile="", plugin=True, **env_extra):
    """Runs `aws ...` with a configuration of its own (the plugin enabled unless `plugin` is
    False; `profile`: more lines of the default profile) and only the given AWS_* variables."""
    config = tmp_path / "config"
    config.write_text("[default]\nregion = us-east-1\n" + profile
                      + ("[plugins]\nbatchops = batchops_boto3.cli\n" if plugin else ""))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "BATCHOPS_")) and k.lower() not in ("http_proxy", "https_proxy", "no_proxy")}
    env.update(AWS_CONFIG_FILE=str(config), AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_ACCESS_KEY_ID=KEY,
               AWS_SECRET_ACCESS_KEY=SECRET, NO_PROXY="127.0.0.1,localhost",
               # the package as it is in this tree, before any installed copy
               PYTHONPATH=os.pathsep.join([PACKAGE] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.update(env_extra)
    out = subprocess.run([sys.executable, AWS, *args, "--output", "json"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else {}


def spec(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({
        "ConfirmationRequired": False,
        "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "reviewed", "Value": "yes"}]}},
        "Report": {"Bucket": "arn:aws:s3:::reports", "Format": "Report_CSV_20180820", "Enabled": True,
                   "Prefix": "reports", "ReportScope": "AllTasks"},
        "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                     "Location": {"ObjectArn": "arn:aws:s3:::src/manifest.csv", "ETag": "abc"}},
        "Priority": 10,
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/batchops-job",
    }))
    return f"file://{path}"


def assert_signed_for_the_api(server, request, path):
    assert header(request, "Host") == server.base[len("http://"):]
    assert request.path == path
    fields = auth_fields(request)
    assert fields["Credential"].startswith(KEY + "/")
    assert fields["Credential"].endswith("/us-east-1/execute-api/aws4_request"), fields["Credential"]
    assert header(request, "x-amz-account-id") == ACCOUNT
    assert fields["Signature"] == expected_signature(request, "execute-api", "us-east-1")


def test_create_job_reaches_the_api_named_by_batchops_api_url(server, tmp_path):
    out = aws(tmp_path, "s3control", "create-job", "--account-id", ACCOUNT, "--cli-input-json", spec(tmp_path),
              BATCHOPS_API_URL=server.api)
    assert out == {"JobId": JOB_ID}
    [r] = server.requests
    assert r.method == "POST" and b"<CreateJobRequest" in r.body and b"<ClientRequestToken>" in r.body
    assert_signed_for_the_api(server, r, "/v1/v20180820/jobs")


def test_the_stack_named_in_the_profile_is_found_with_describe_stacks(server, tmp_path):
    out = aws(tmp_path, "s3control", "list-jobs", "--account-id", ACCOUNT, "--job-statuses", "Complete",
              profile="batchops_stack = batchops\n", AWS_ENDPOINT_URL_CLOUDFORMATION=server.base)
    assert out.get("Jobs", []) == []
    stacks, jobs = server.requests
    assert b"Action=DescribeStacks" in stacks.body and b"StackName=batchops" in stacks.body
    assert auth_fields(stacks)["Credential"].endswith("/us-east-1/cloudformation/aws4_request")
    assert_signed_for_the_api(server, jobs, "/v1/v20180820/jobs?jobStatuses=Complete")


def test_other_services_and_an_unconfigured_s3control_are_untouched(server, tmp_path):
    # The plugin on, an API named: STS still goes to its endpoint, signed for sts.
    aws(tmp_path, "sts", "get-caller-identity", BATCHOPS_API_URL=server.api, AWS_ENDPOINT_URL_STS=server.base)
    [r] = server.requests
    assert r.path == "/" and auth_fields(r)["Credential"].endswith("/us-east-1/sts/aws4_request")
    # The plugin on, no API named: s3control is S3 Control's (the account in front of the host,
    # signed for s3), reached here through the server as a proxy, as tests/sdk do.
    aws(tmp_path, "s3control", "list-jobs", "--account-id", ACCOUNT, AWS_ENDPOINT_URL_S3_CONTROL=server.base,
        HTTP_PROXY=server.base, NO_PROXY="")
    r = server.requests[-1]
    assert r.path == f"http://{ACCOUNT}.127.0.0.1:{server.httpd.server_port}/v20180820/jobs", r.path
    assert auth_fields(r)["Credential"].endswith("/us-east-1/s3/aws4_request")
