"""The console in headless Chromium against `batchops local` on moto.

scripts/console-test.sh starts moto and runs these; `batchops local` is started here on a
free port with its own resource prefix, and stopped at the end.
"""
import json
import os
import sys
import urllib.parse
import urllib.request
import uuid

import boto3
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from local_api import batchops_local  # noqa: E402

SHOTS = os.path.join(ROOT, ".local", "console")


@pytest.fixture(scope="session")
def local():
    # One chunk at a time: a rate-limited job's chunks then end one after another, and its
    # bar moves while the page watches.
    with batchops_local("console", SHOTS, ["--chunk-workers", "1"], {"BATCHOPS_CHUNK_SIZE": "10"}) as base:
        yield base


@pytest.fixture(scope="session")
def s3():
    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")


@pytest.fixture(scope="session")
def data(s3):
    """Buckets, 40 objects and manifests: all present, and with three keys missing."""
    run = uuid.uuid4().hex[:8]
    b = {n: f"console-{n}-{run}" for n in ("src", "dst", "man", "rep")}
    for name in b.values():
        s3.create_bucket(Bucket=name)
    keys = [f"photos/2026/img {i:03d}.jpg" for i in range(40)]
    for k in keys:
        s3.put_object(Bucket=b["src"], Key=k, Body=b"x")

    def manifest(name, rows):
        body = "".join(f"{b['src']},{urllib.parse.quote_plus(k, safe='/')}\n" for k in rows)
        etag = s3.put_object(Bucket=b["man"], Key=name, Body=body.encode())["ETag"]
        return {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                "Location": {"ObjectArn": f"arn:aws:s3:::{b['man']}/{name}", "ETag": etag}}

    b["all"] = manifest("all.csv", keys)
    b["missing"] = manifest("missing.csv", keys[:20] + ["gone/a.jpg", "gone/b.jpg", "gone/c.jpg"])
    return b


def spec(data, manifest, **extra):
    s = {
        "AccountId": "123456789012",
        "Operation": {"S3PutObjectCopy": {"TargetResource": f"arn:aws:s3:::{data['dst']}"}},
        "Report": {"Bucket": f"arn:aws:s3:::{data['rep']}", "Format": "Report_CSV_20180820", "Enabled": True,
                   "Prefix": "reports", "ReportScope": "AllTasks"},
        "Manifest": data[manifest],
        "Priority": 10,
        "RoleArn": "arn:aws:iam::123456789012:role/batch-operations",
        "ConfirmationRequired": False,
    }
    s.update(extra)
    return s


def create(local, body):
    body = dict(body, ClientRequestToken=str(uuid.uuid4()))
    req = urllib.request.Request(f"{local}/v20180820/jobs", data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req))["JobId"]


@pytest.fixture(scope="session")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=opts)
    yield driver
    driver.quit()

