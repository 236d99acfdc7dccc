"""The rehearsal's one fixture: the stack deployed into moto, the functions running under a
Lambda Runtime API, events delivered as the stack declares, IAM enforced from then on."""

import json
import os
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, os.path.dirname(__file__))

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "hostile"))

import lambdas  # noqa: E402
import rawhttp  # noqa: E402
import stack  # noqa: E402

ACCOUNT = "123456789012"
STACK = "batchops"
LAMBDA_PORT = int(os.environ.get("REHEARSAL_LAMBDA_PORT", "9710"))
# Small chunks, so that every job has several; jobs may only name roles of this stack.
PARAMETERS = {"ChunkSize": 40, "JobRoleNamePattern": f"{STACK}-*"}
EXAMPLE_FUNCTION = "batchops-example-lambda"
# Keys with what manifests make awkward: spaces, '+', '%', non-ASCII, '//'.
KEYS = [f"data/obj {i}" for i in range(60)] + ["data/plus+sign", "data/100%", "data/été", "data//double"]


def user(iam, name, policy):
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"], "Arn": f"arn:aws:iam::{ACCOUNT}:user/{name}"}


def allow(actions, resource="*"):
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resource}]}


class Rehearsal:
    def __init__(self, logs):
        self.logs = logs
        iam = stack.client("iam")
        self.admin = user(iam, "rehearsal-admin", allow("*"))
        # The API's caller: may invoke the API and find it in the stack (what the README asks of one).
        self.operator = user(iam, "rehearsal-operator", allow(["execute-api:Invoke", "cloudformation:DescribeStacks"]))
        self.keys = {
            c["AccessKeyId"]: (c["SecretAccessKey"], None, c["Arn"]) for c in (self.admin, self.operator)
        }
        self.runtime = lambdas.Runtime(LAMBDA_PORT, logs)
        self.mappings = []
        self.api = self.start_api(stack.transformed()["Resources"])
        try:
            self.deploy(iam)
        except BaseException:
            self.stop()  # nothing started is left behind when the setup fails
            raise

    def deploy(self, iam):
        self.stack = stack.deploy(STACK, self.api.url, PARAMETERS)
        self.res = self.stack["resources"]
        self.sessions = {f"arn:aws:iam::{ACCOUNT}:role/{self.res[f + 'Role']}": f for f in lambdas.BIN}
        stack.fix_roles(self.stack, self.admin["Arn"], self.sessions)
        stack.notifications(self.stack)
        self.job_role = self.stack["outputs"]["ExampleJobRoleArn"]
        self.limited_role = self.role_without_tagging(iam)
        self.events_queue = self.listen_to_status_events()
        self.events_seen = {}
        self.start_functions()
        # From here on every S3, SQS and STS call is checked against the caller's policies.
        enforce = urllib.request.Request(
            os.environ["AWS_ENDPOINT_URL"] + "/moto-api/reset-auth", data=b"0", headers={"Content-Type": "text/plain"}
        )
        urllib.request.urlopen(enforce)
        self.s3 = stack.client("s3", self.admin)

    def role_without_tagging(self, iam):
        """A job role like the example one, less s3:PutObjectTagging."""
        name = f"{STACK}-job-no-tagging"
        example = self.res["ExampleJobRole"]
        trust = iam.get_role(RoleName=example)["Role"]["AssumeRolePolicyDocument"]
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        policy = stack.role_policy(iam, example, "batchops-job")
        for st in policy["Statement"]:
            if isinstance(st["Action"], list):
                st["Action"] = [a for a in st["Action"] if a != "s3:PutObjectTagging"]
        iam.put_role_policy(RoleName=name, PolicyName="batchops-job", PolicyDocument=json.dumps(policy))
        return f"arn:aws:iam::{ACCOUNT}:role/{name}"

    def listen_to_status_events(self):
        """A rule on the stack's bus sending every batchops event to a queue of the rehearsal's:
        the status events the functions put must reach the bus (as a subscriber's rule sees them)."""
        bus = self.stack["original"]["Parameters"]["EventBusName"]["Default"]
        sqs = stack.client("sqs")
        url = sqs.create_queue(QueueName="rehearsal-status-events")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = stack.client("events")
        pattern = {"source": ["batchops"], "detail-type": ["Batch Operations Job State Change"]}
        events.put_rule(Name="rehearsal-status-events", EventBusName=bus, EventPattern=json.dumps(pattern))
        events.put_targets(Rule="rehearsal-status-events", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
        return url

    def status_events(self, job_id, wanted, timeout=30):
        """The statuses of the events announced for a job, in the order they arrived, once they
        include `wanted` (an event is put just after its write commits) or `timeout` passed."""
        sqs = stack.client("sqs", self.admin)
        end = time.time() + timeout
        while not set(wanted) <= set(self.events_seen.get(job_id, [])) and time.time() < end:
            got = sqs.receive_message(QueueUrl=self.events_queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for m in got.get("Messages", []):
                detail = json.loads(m["Body"])["detail"]
                self.events_seen.setdefault(detail["jobId"], []).append(detail["status"])
                sqs.delete_message(QueueUrl=self.events_queue, ReceiptHandle=m["ReceiptHandle"])
        return self.events_seen.get(job_id, [])

    def role_credentials(self, logical):
        arn = f"arn:aws:iam::{ACCOUNT}:role/{self.res[logical + 'Role']}"
        creds = stack.client("sts", self.admin).assume_role(RoleArn=arn, RoleSessionName=logical)["Credentials"]
        return creds

    def start_api(self, original):
        api = next(r for r in original.values() if r["Type"] == "AWS::ApiGateway::RestApi")
        stage = next(r for r in original.values() if r["Type"] == "AWS::ApiGateway::Stage")["Properties"]["StageName"]
        routes = {path: list(methods) for path, methods in api["Properties"]["Body"]["paths"].items()}
        return lambdas.ApiProxy(self.runtime, lambdas.BIN["JobIntakeFunction"], routes, stage, self.keys, ACCOUNT)

    def start_functions(self):
        lam = stack.client("lambda")
        confs = {f: lam.get_function_configuration(FunctionName=self.res[f]) for f in lambdas.BIN}
        self.runtime.launch(timeout=max(c["Timeout"] for c in confs.values()))
        for logical, binary in lambdas.BIN.items():
            conf = confs[logical]
            creds = self.role_credentials(logical)
            env = {k: str(v) for k, v in conf.get("Environment", {}).get("Variables", {}).items()}
            if os.environ.get("REHEARSAL_RUST_LOG"):
                env["RUST_LOG"] = os.environ["REHEARSAL_RUST_LOG"]
            if logical == "JobIntakeFunction":
                env["BATCHOPS_CHECK_PASS_ROLE"] = "false"  # moto has no SimulatePrincipalPolicy
            if logical == "JobResourceFunction":
                env["BATCHOPS_RESOURCE_POLL_SECS"] = "2"  # waiting requests checked every 2 s, not 30
                # CloudFormation's response bucket is a moto on loopback here (test_custom_resource.py)
                env["BATCHOPS_RESOURCE_RESPONSE_HOSTS"] = "127.0.0.1"
            env.update(
                AWS_ACCESS_KEY_ID=creds["AccessKeyId"],
                AWS_SECRET_ACCESS_KEY=creds["SecretAccessKey"],
                AWS_SESSION_TOKEN=creds["SessionToken"],
                AWS_REGION=stack.REGION,
                AWS_DEFAULT_REGION=stack.REGION,
                AWS_ENDPOINT_URL=os.environ["AWS_ENDPOINT_URL"],
                AWS_ENDPOINT_URL_LAMBDA=self.runtime.url,
                AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(conf["MemorySize"]),
            )
            self.runtime.start(binary, env, lambdas.PROCESSES.get(logical, 1))
            for m in lam.list_event_source_mappings(FunctionName=self.res[logical])["EventSourceMappings"]:
                processes = lambdas.PROCESSES.get(logical, 1)
                esm = lambdas.EventSourceMapping(self.runtime, binary, m, creds, processes, timeout=conf["Timeout"])
                esm.start()
                self.mappings.append(esm)
        # The LambdaInvoke jobs' function, under the same runtime.
        self.runtime.start(EXAMPLE_FUNCTION, {"RUST_LOG": "info"})

    def call(self, method, path, body=None, creds=None):
        """A SigV4-signed call of the API (as the operator by default)."""
        creds = creds or self.operator
        url = self.api.url + path
        data = json.dumps(body).encode() if body is not None else b""
        req = AWSRequest(method=method, url=url, data=data, headers={"Content-Type": "application/json"})
        SigV4Auth(Credentials(creds["AccessKeyId"], creds["SecretAccessKey"]), "execute-api", stack.REGION).add_auth(req)
        r = urllib.request.Request(url, data=data if method != "GET" else None, method=method, headers=dict(req.headers))
        try:
            with urllib.request.urlopen(r, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def call_raw(self, method, path, body=b"", headers=None):
        """A SigV4-signed call (as the operator) with the body and headers exactly as given,
        over a bare socket: (status, headers, body), or None when the connection closed first."""
        url = urllib.parse.urlsplit(self.api.url + path)
        headers = {"Host": url.netloc, **(headers or {})}
        req = AWSRequest(method=method, url=self.api.url + path, data=body, headers=headers)
        creds = Credentials(self.operator["AccessKeyId"], self.operator["SecretAccessKey"])
        SigV4Auth(creds, "execute-api", stack.REGION).add_auth(req)
        signed = {k: v for k, v in req.headers.items()}
        target = url.path + (f"?{url.query}" if url.query else "")
        return rawhttp.request(url.hostname, url.port, method, target, signed, body)

    def wait(self, job_id, statuses, timeout=240):
        end = time.time() + timeout
        while True:
            status, out = self.call("GET", f"/v20180820/jobs/{job_id}")
            assert status == 200, out
            job = out["Job"]
            if job["Status"] in statuses:
                return job
            assert time.time() < end, f"job {job_id} still {job['Status']}: {job}"
            time.sleep(0.5)

    def stop(self):
        for m in self.mappings:
            m.stop()
        self.api.stop()
        self.runtime.stop()


def make_buckets(rehearsal):
    """A source bucket holding KEYS, a destination and a report bucket, freshly named."""
    tag = uuid.uuid4().hex[:8]
    names = {n: f"reh-{tag}-{n}" for n in ("src", "dst", "rep")}
    for b in names.values():
        rehearsal.s3.create_bucket(Bucket=b)
    for k in KEYS:
        rehearsal.s3.put_object(Bucket=names["src"], Key=k, Body=f"body of {k}".encode(), ContentType="text/plain")
    return names


@pytest.fixture
def buckets(rehearsal):
    """The buckets of `make_buckets`, named for one test."""
    return make_buckets(rehearsal)


@pytest.fixture(scope="session")
def rehearsal():
    logs = os.environ.get("REHEARSAL_LOGS") or tempfile.mkdtemp(prefix="batchops-rehearsal-")
    os.makedirs(logs, exist_ok=True)
    r = Rehearsal(logs)
    try:
        yield r
    finally:
        r.stop()
        print(f"\nrehearsal logs: {logs}")
