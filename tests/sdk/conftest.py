"""S3 Batch Operations code as people have it (boto3's s3control client, the AWS CLI) against
`batchops local` on moto, speaking S3 Control's REST-XML.

scripts/sdk-test.sh starts moto and runs these. botocore puts the account in front of the
host (`http://123456789012.127.0.0.1:PORT/...`) even with an endpoint URL, and nothing
resolves that name: the clients here reach the local API as their proxy, the way the README
tells users to (boto3 `Config(proxies=...)`, the CLI's `HTTP_PROXY`).
"""
import os
import sys
import time
import uuid

import boto3
import pytest
from botocore.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from local_api import batchops_local, s3_client, make_buckets  # noqa: E402

LOGS = os.path.join(ROOT, ".local", "sdk")
ROLE = "arn:aws:iam::123456789012:role/batch-operations"


@pytest.fixture(scope="session")
def local():
    with batchops_local("sdk", LOGS, env={"BATCHOPS_CHUNK_SIZE": "10"}) as base:
        yield base


@pytest.fixture(scope="session")
def s3control(local):
    return boto3.client("s3control", endpoint_url=local, region_name="us-east-1",
                        config=Config(proxies={"http": local}, retries={"max_attempts": 1}))


@pytest.fixture
def account():
    """An account of the test's own: another test's jobs are not in its lists."""
    return f"{uuid.uuid4().int % 10**12:012d}"


@pytest.fixture(scope="session")
def s3():
    return s3_client()


@pytest.fixture(scope="session")
def data(s3):
    """A source bucket with 25 objects, a CSV manifest of them, and empty target and report buckets."""
    keys = [f"data/part {i:03d}.csv" for i in range(25)]
    b, manifest = make_buckets(s3, "sdk", keys, lambda k: k.encode())
    b["keys"] = keys
    b["manifest"] = manifest("manifest.csv", keys)
    return b


def copy_job(data, **extra):
    """CreateJob's parameters for a copy of the manifest's objects, as boto3 takes them."""
    params = {
        "Operation": {"S3PutObjectCopy": {"TargetResource": f"arn:aws:s3:::{data['dst']}", "TargetKeyPrefix": "copied"}},
        "Report": {"Bucket": f"arn:aws:s3:::{data['rep']}", "Format": "Report_CSV_20180820", "Enabled": True,
                   "Prefix": "reports", "ReportScope": "AllTasks"},
        "Manifest": data["manifest"],
        "Priority": 10,
        "RoleArn": ROLE,
        "ConfirmationRequired": False,
    }
    params.update(extra)
    return params


def wait_for(client, account, job_id, statuses, timeout=120):
    deadline = time.time() + timeout
    while True:
        job = client.describe_job(AccountId=account, JobId=job_id)["Job"]
        if job["Status"] in statuses:
            return job
        assert time.time() < deadline, f"job {job_id} still {job['Status']}"
        time.sleep(0.5)
