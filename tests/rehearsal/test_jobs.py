"""Jobs through the deployed stack: the API proxy, the functions under the Lambda Runtime API,
events as the stack declares them, every S3, SQS and STS call checked by moto's IAM. Each job
must end as it does under `batchops local` (tests/e2e), with the same report rows."""

import csv
import gzip
import hashlib
import io
import json
import time
import urllib.parse
import uuid

import pytest

from conftest import ACCOUNT, EXAMPLE_FUNCTION

# Keys with what manifests make awkward: spaces, '+', '%', non-ASCII, '//'.
KEYS = [f"data/obj {i}" for i in range(60)] + ["data/plus+sign", "data/100%", "data/été", "data//double"]


def enc(key):
    return urllib.parse.quote_plus(key, safe="/")


@pytest.fixture
def buckets(rehearsal):
    tag = uuid.uuid4().hex[:8]
    names = {n: f"reh-{tag}-{n}" for n in ("src", "dst", "rep")}
    for b in names.values():
        rehearsal.s3.create_bucket(Bucket=b)
    for k in KEYS:
        rehearsal.s3.put_object(Bucket=names["src"], Key=k, Body=f"body of {k}".encode(), ContentType="text/plain")
    return names


def csv_manifest(rehearsal, b, keys):
    body = "".join(f"{b['src']},{enc(k)}\n" for k in keys).encode()
    etag = rehearsal.s3.put_object(Bucket=b["src"], Key="manifests/m.csv", Body=body)["ETag"]
    return {
        "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
        "Location": {"ObjectArn": f"arn:aws:s3:::{b['src']}/manifests/m.csv", "ETag": etag.strip('"')},
    }


def spec(rehearsal, b, operation, manifest=None, role=None, **extra):
    s = {
        "AccountId": ACCOUNT,
        "ClientRequestToken": str(uuid.uuid4()),
        "Priority": 10,
        "RoleArn": role or rehearsal.job_role,
        "Operation": operation,
        "Report": {
            "Bucket": f"arn:aws:s3:::{b['rep']}",
            "Format": "Report_CSV_20180820",
            "Enabled": True,
            "Prefix": "reports",
            "ReportScope": "AllTasks",
        },
    }
    if manifest:
        s["Manifest"] = manifest
    s.update(extra)
    return s


def create(rehearsal, body):
    status, out = rehearsal.call("POST", "/v20180820/jobs", body)
    assert status == 200, out
    return out["JobId"]


def report(rehearsal, b, job_id):
    """The report's rows as (status, columns), each result file checked against its MD5."""
    s3 = rehearsal.s3
    manifest = json.loads(s3.get_object(Bucket=b["rep"], Key=f"reports/job-{job_id}/manifest.json")["Body"].read())
    assert manifest["Format"] == "Report_CSV_20180820"
    rows = []
    for f in manifest["Results"]:
        body = s3.get_object(Bucket=b["rep"], Key=f["Key"])["Body"].read()
        assert hashlib.md5(body).hexdigest() == f["MD5Checksum"]
        rows += [(f["TaskExecutionStatus"], r) for r in csv.reader(io.StringIO(body.decode()))]
    return rows


def test_a_copy_job_copies_every_object_and_reports_each_row(rehearsal, buckets):
    b = buckets
    keys = KEYS + ["data/missing-1", "data/missing-2"]
    op = {"S3PutObjectCopy": {"TargetResource": f"arn:aws:s3:::{b['dst']}", "MetadataDirective": "COPY"}}
    job_id = create(rehearsal, spec(rehearsal, b, op, csv_manifest(rehearsal, b, keys)))
    job = rehearsal.wait(job_id, ["Complete", "Failed"])
    assert job["Status"] == "Complete", job
    p = job["ProgressSummary"]
    assert (p["TotalNumberOfTasks"], p["NumberOfTasksSucceeded"], p["NumberOfTasksFailed"]) == (66, 64, 2)
    rows = report(rehearsal, b, job_id)
    assert len(rows) == 66
    assert sorted(r[1] for s, r in rows if s == "failed") == ["data/missing-1", "data/missing-2"]
    assert all(r[3:6] == ["failed", "404", "NoSuchKey"] for s, r in rows if s == "failed")
    assert sorted(urllib.parse.unquote_plus(r[1]) for s, r in rows if s == "succeeded") == sorted(KEYS)
    for k in KEYS:
        got = rehearsal.s3.get_object(Bucket=b["dst"], Key=k)
        assert got["Body"].read() == f"body of {k}".encode() and got["ContentType"] == "text/plain"
