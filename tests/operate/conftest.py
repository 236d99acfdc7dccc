"""Operating batchops on this machine: `batchops local` on moto (scripts/operate-test.sh starts
moto), its Prometheus `/metrics` read with prometheus_client's text parser, its system view
(`GET /v20180820/system`) and `batchops status` against it.

`batchops local` runs with the sweep held off (BATCHOPS_SWEEP_SECS=3600: its first sweep would
come an hour after the start), so a message a test puts on a dead-letter queue stays there until
the test takes it off."""

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid

import boto3
import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from local_api import batchops_local, make_buckets, s3_client  # noqa: E402

from names import LABELS, METRICS, QUEUES  # noqa: E402,F401  (the tests take them from here)

LOGS = os.path.join(ROOT, ".local", "operate")
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/batch-operations"
OP = "S3PutObjectTagging"
TAGGING = {OP: {"TagSet": [{"Key": "reviewed", "Value": "yes"}]}}


def binary():
    return os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "batchops")


@pytest.fixture(scope="session")
def local():
    """{"url", "prefix", "process"} of the suite's `batchops local` (10 tasks a chunk)."""
    env = {"BATCHOPS_SWEEP_SECS": "3600", "BATCHOPS_CHUNK_SIZE": "10"}
    with batchops_local("operate", LOGS, env=env, with_process=True) as (base, proc):
        prefix = proc.args[proc.args.index("--prefix") + 1]
        yield {"url": base, "prefix": prefix, "process": proc}


@pytest.fixture(scope="session")
def sqs():
    return boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")


@pytest.fixture(scope="session")
def data():
    """30 objects in a source bucket; manifests of them all, and of them and three keys that
    do not exist (tagging those fails 404)."""
    keys = [f"logs/2026/part {i:03d}.gz" for i in range(30)]
    b, manifest = make_buckets(s3_client(), "operate", keys)
    b["keys"] = keys
    b["with_missing"] = manifest("with-missing.csv", keys + ["gone/a", "gone/b", "gone/c"])
    b["few"] = manifest("few.csv", keys[:5])
    return b


def tagging_spec(data, manifest):
    return {
        "AccountId": ACCOUNT,
        "ClientRequestToken": str(uuid.uuid4()),
        "Operation": TAGGING,
        "Report": {"Bucket": f"arn:aws:s3:::{data['rep']}", "Format": "Report_CSV_20180820", "Enabled": True,
                   "Prefix": "reports", "ReportScope": "AllTasks"},
        "Manifest": manifest,
        "Priority": 10,
        "RoleArn": ROLE,
        "ConfirmationRequired": False,
        "Description": "operate-test",
    }


def api(local, method, path, body=None):
    req = urllib.request.Request(local["url"] + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.headers.get("content-type", ""), r.read().decode()


def create(local, spec):
    _, _, body = api(local, "POST", "/v20180820/jobs", spec)
    return json.loads(body)["JobId"]


def wait(local, job_id, statuses=("Complete", "Failed", "Cancelled"), timeout=120):
    end = time.time() + timeout
    while True:
        _, _, body = api(local, "GET", f"/v20180820/jobs/{job_id}")
        job = json.loads(body)["Job"]
        if job["Status"] in statuses:
            return job
        assert time.time() < end, f"job {job_id} still {job['Status']}"
        time.sleep(0.3)


def run_job(local, data, manifest):
    job = wait(local, create(local, tagging_spec(data, manifest)))
    assert job["Status"] == "Complete", job
    return job


class Scrape:
    """One scrape of /metrics: the raw text and the parsed families."""

    def __init__(self, text):
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(self, name, sample=None, **labels):
        """The sum of the samples of family `name` whose labels include `labels`; `sample` picks
        a histogram's `_count`, `_sum` or `_bucket`. A counter's samples are `<name>_total` to
        the parser (OpenMetrics' spelling of the plain `name` the text has). 0 when none."""
        family = self.families.get(name)
        if family is None:
            return 0
        wanted = {name + (sample or ""), name + "_total"} if family.type == "counter" else {name + (sample or "")}
        return sum(
            s.value for s in family.samples
            if s.name in wanted and all(s.labels.get(k) == v for k, v in labels.items())
        )


def scrape(local):
    status, ctype, text = api(local, "GET", "/metrics")
    assert status == 200 and ctype.startswith("text/plain"), (status, ctype)
    return Scrape(text)


def status(*args, env=None):
    """`batchops status ARGS` (the built binary): the completed process."""
    e = {k: v for k, v in os.environ.items() if k not in ("BATCHOPS_STACK", "BATCHOPS_API_URL")}
    e.update(env or {})
    return subprocess.run([binary(), "status", *args], capture_output=True, text=True, timeout=120, env=e)
