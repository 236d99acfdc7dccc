"""The console in headless Chromium against `batchops local` on moto.

scripts/console-test.sh starts moto and runs these; `batchops local` is started here on a
free port with its own resource prefix, and stopped at the end.
"""
import json
import os
import sys
import urllib.request
import uuid

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from local_api import batchops_local, s3_client, make_buckets  # noqa: E402

SHOTS = os.path.join(ROOT, ".local", "console")


@pytest.fixture(scope="session")
def local_process():
    # One chunk at a time: a rate-limited job's chunks then end one after another, and its
    # bar moves while the page watches. The sweep waits an hour: a letter the System page's
    # test puts on a dead-letter queue stays there (the sweep would take it).
    env = {"BATCHOPS_CHUNK_SIZE": "10", "BATCHOPS_SWEEP_SECS": "3600"}
    with batchops_local("console", SHOTS, ["--chunk-workers", "1"], env, with_process=True) as started:
        yield started


@pytest.fixture(scope="session")
def local(local_process):
    return local_process[0]


@pytest.fixture(scope="session")
def prefix(local_process):
    """The resource prefix `batchops local` was started with: its queues are `<prefix>-...`."""
    args = local_process[1].args
    return args[args.index("--prefix") + 1]


@pytest.fixture(scope="session")
def data():
    """Buckets, 40 objects and manifests: all present, and with three keys missing."""
    keys = [f"photos/2026/img {i:03d}.jpg" for i in range(40)]
    b, manifest = make_buckets(s3_client(), "console", keys)
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

