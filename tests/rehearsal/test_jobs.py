"""Jobs through the deployed stack: the API proxy, the functions under the Lambda Runtime API,
events as the stack declares them, every S3, SQS and STS call checked by moto's IAM. Each job
must end as it does under `batchops local` (tests/e2e), with the same report rows; one is run
both ways and the two reports compared row by row."""

import csv
import gzip
import hashlib
import io
import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
import uuid

from conftest import ACCOUNT, EXAMPLE_FUNCTION, KEYS
from lambdas import target_dir


def enc(key):
    return urllib.parse.quote_plus(key, safe="/")


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
    return report_at(rehearsal, b["rep"], "reports", job_id)


def report_at(rehearsal, bucket, prefix, job_id):
    s3 = rehearsal.s3
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/job-{job_id}/manifest.json")["Body"].read())
    assert manifest["Format"] == "Report_CSV_20180820"
    rows = []
    for f in manifest["Results"]:
        body = s3.get_object(Bucket=bucket, Key=f["Key"])["Body"].read()
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
    status, failures = rehearsal.call("GET", f"/v20180820/jobs/{job_id}/failures?limit=1")
    assert status == 200, failures
    assert (failures["RowsRead"], failures["Complete"]) == (2, True), failures
    assert [(g["ErrorCode"], g["HTTPStatusCode"], g["Count"], len(g["Tasks"])) for g in failures["Groups"]] == [
        ("NoSuchKey", 404, 2, 1)
    ]
    assert sorted(urllib.parse.unquote_plus(r[1]) for s, r in rows if s == "succeeded") == sorted(KEYS)
    for k in KEYS:
        got = rehearsal.s3.get_object(Bucket=b["dst"], Key=k)
        assert got["Body"].read() == f"body of {k}".encode() and got["ContentType"] == "text/plain"
    # The status events reached the bus: its creation and its end, at least (each at least once).
    statuses = rehearsal.status_events(job_id, {"New", "Active", "Complete"})
    assert {"New", "Active", "Complete"} <= set(statuses), statuses


def tags(rehearsal, bucket, key):
    return {t["Key"]: t["Value"] for t in rehearsal.s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


TAGGING = {"S3PutObjectTagging": {"TagSet": [{"Key": "reviewed", "Value": "yes"}]}}


def test_a_tagging_job_tags_every_object(rehearsal, buckets):
    b = buckets
    job_id = create(rehearsal, spec(rehearsal, b, TAGGING, csv_manifest(rehearsal, b, KEYS)))
    job = rehearsal.wait(job_id, ["Complete", "Failed"])
    assert job["Status"] == "Complete", job
    rows = report(rehearsal, b, job_id)
    assert len(rows) == len(KEYS)
    refused = [r for s, r in rows if s != "succeeded"]
    assert not refused, f"{len(refused)} tasks failed, the first: {refused[0]}"
    assert all(tags(rehearsal, b["src"], k) == {"reviewed": "yes"} for k in KEYS)


def test_a_job_whose_role_lacks_a_permission_reports_403_rows(rehearsal, buckets):
    # GIVEN a role that may read manifests and write reports but not tag
    b = buckets
    job_id = create(rehearsal, spec(rehearsal, b, TAGGING, csv_manifest(rehearsal, b, KEYS), role=rehearsal.limited_role))
    # WHEN the job runs, THEN it completes with every task failed by S3's AccessDenied
    job = rehearsal.wait(job_id, ["Complete", "Failed"])
    assert job["Status"] == "Complete", job
    assert job["ProgressSummary"]["NumberOfTasksFailed"] == len(KEYS)
    rows = report(rehearsal, b, job_id)
    assert len(rows) == len(KEYS)
    assert all(s == "failed" and r[3:6] == ["failed", "403", "AccessDenied"] for s, r in rows), rows[:3]
    assert all(tags(rehearsal, b["src"], k) == {} for k in KEYS)


def test_a_job_whose_role_cannot_be_assumed_fails_naming_it(rehearsal, buckets):
    # A role outside JobRoleNamePattern: the functions may not assume it.
    b = buckets
    role = f"arn:aws:iam::{ACCOUNT}:role/someone-elses-role"
    job_id = create(rehearsal, spec(rehearsal, b, TAGGING, csv_manifest(rehearsal, b, KEYS), role=role))
    job = rehearsal.wait(job_id, ["Failed", "Complete"])
    assert job["Status"] == "Failed", job
    [f] = job["FailureReasons"]
    assert f["FailureCode"] == "AssumeRoleFailed" and role in f["FailureReason"], f
    assert "AccessDenied" in f["FailureReason"], f
    assert job["ProgressSummary"]["NumberOfTasksSucceeded"] + job["ProgressSummary"]["NumberOfTasksFailed"] == 0
    assert all(tags(rehearsal, b["src"], k) == {} for k in KEYS)


def test_a_lambda_invoke_job_calls_the_function_under_the_same_runtime(rehearsal, buckets):
    b = buckets
    keys = ["ok/one", "ok/two words", "permanent/bad"]
    op = {"LambdaInvoke": {"FunctionArn": EXAMPLE_FUNCTION, "InvocationSchemaVersion": "2.0",
                           "UserArguments": {"mode": "rehearsal"}}}
    job_id = create(rehearsal, spec(rehearsal, b, op, csv_manifest(rehearsal, b, keys)))
    job = rehearsal.wait(job_id, ["Complete", "Failed"])
    assert job["Status"] == "Complete", job
    rows = {urllib.parse.unquote_plus(r[1]): (s, r) for s, r in report(rehearsal, b, job_id)}
    assert set(rows) == set(keys)
    for k in ("ok/one", "ok/two words"):
        s, r = rows[k]
        assert s == "succeeded" and r[4] == "200", r
        assert json.loads(r[6])["userArguments"] == {"mode": "rehearsal"}
    s, r = rows["permanent/bad"]
    assert s == "failed" and r[4:6] == ["200", "PermanentFailure"], r


def gzip_rows(rows):
    return gzip.compress("".join(rows).encode())


def test_an_inventory_manifest_job_reads_every_file(rehearsal, buckets):
    b = buckets
    s3, src = rehearsal.s3, b["src"]
    files = [gzip_rows(f'"{src}","{enc(k)}","{i}"\n' for i, k in enumerate(KEYS[part::2])) for part in range(2)]
    entries = []
    for i, body in enumerate(files):
        key = f"{src}/cfg/data/{i:04}.csv.gz"
        s3.put_object(Bucket=b["rep"], Key=key, Body=body)
        entries.append({"key": key, "size": len(body), "MD5checksum": hashlib.md5(body).hexdigest()})
    manifest = json.dumps({"sourceBucket": src, "destinationBucket": f"arn:aws:s3:::{b['rep']}", "version": "2016-11-30",
                           "creationTimestamp": "1700000000000", "fileFormat": "CSV",
                           "fileSchema": "Bucket, Key, Size", "files": entries})
    key = f"{src}/cfg/2026-11-30T00-00Z/manifest.json"
    etag = s3.put_object(Bucket=b["rep"], Key=key, Body=manifest)["ETag"].strip('"')
    m = {"Spec": {"Format": "S3InventoryReport_CSV_20161130"},
         "Location": {"ObjectArn": f"arn:aws:s3:::{b['rep']}/{key}", "ETag": etag}}
    job_id = create(rehearsal, spec(rehearsal, b, TAGGING, m))
    job = rehearsal.wait(job_id, ["Complete", "Failed"])
    assert job["Status"] == "Complete", job
    rows = report(rehearsal, b, job_id)
    assert sorted(urllib.parse.unquote_plus(r[1]) for _, r in rows) == sorted(KEYS)
    refused = [r for s, r in rows if s != "succeeded"]
    assert not refused, f"{len(refused)} tasks failed, the first: {refused[0]}"
    assert all(tags(rehearsal, src, k) == {"reviewed": "yes"} for k in KEYS)


def test_a_generator_job_writes_its_manifest_and_runs_on_what_it_listed(rehearsal, buckets):
    b = buckets
    filt = {"KeyNameConstraint": {"MatchAnyPrefix": ["data/obj 1"]}}
    gen = {"S3JobManifestGenerator": {
        "SourceBucket": f"arn:aws:s3:::{b['src']}", "EnableManifestOutput": True, "Filter": filt,
        "ManifestOutputLocation": {"Bucket": f"arn:aws:s3:::{b['dst']}", "ManifestPrefix": "generated",
                                   "ExpectedManifestBucketOwner": ACCOUNT,
                                   "ManifestFormat": "S3InventoryReport_CSV_20211130"}}}
    job_id = create(rehearsal, spec(rehearsal, b, TAGGING, ManifestGenerator=gen))
    job = rehearsal.wait(job_id, ["Complete", "Failed"])
    assert job["Status"] == "Complete", job
    expected = sorted(k for k in KEYS if k.startswith("data/obj 1"))
    rows = report(rehearsal, b, job_id)
    assert sorted(urllib.parse.unquote_plus(r[1]) for _, r in rows) == expected
    key = f"generated/job-{job_id}/manifest.json"
    assert job["GeneratedManifestDescriptor"]["Location"]["ObjectArn"] == f"arn:aws:s3:::{b['dst']}/{key}"
    manifest = json.loads(rehearsal.s3.get_object(Bucket=b["dst"], Key=key)["Body"].read())
    listed = []
    for f in manifest["files"]:
        body = rehearsal.s3.get_object(Bucket=b["dst"], Key=f["key"])["Body"].read()
        assert hashlib.md5(body).hexdigest() == f["MD5checksum"]
        listed += [urllib.parse.unquote_plus(r[1]) for r in csv.reader(io.StringIO(gzip.decompress(body).decode()))]
    assert sorted(listed) == expected


def test_a_job_cancelled_while_it_waits_for_confirmation_ends_cancelled(rehearsal, buckets):
    b = buckets
    job_id = create(rehearsal, spec(rehearsal, b, TAGGING, csv_manifest(rehearsal, b, KEYS), ConfirmationRequired=True))
    job = rehearsal.wait(job_id, ["Suspended"])
    assert job["ProgressSummary"]["TotalNumberOfTasks"] == len(KEYS)
    status, out = rehearsal.call("POST", f"/v20180820/jobs/{job_id}/status?requestedJobStatus=Cancelled&statusUpdateReason=wrong+bucket")
    assert status == 200 and out["Status"] == "Cancelling", out
    job = rehearsal.wait(job_id, ["Cancelled"])
    assert job["StatusUpdateReason"] == "wrong bucket"
    assert all(tags(rehearsal, b["src"], k) == {} for k in KEYS)


def test_a_spec_uploaded_to_the_specs_bucket_starts_a_job(rehearsal, buckets):
    b = buckets
    body = spec(rehearsal, b, TAGGING, csv_manifest(rehearsal, b, KEYS))
    del body["ClientRequestToken"]
    specs = rehearsal.stack["outputs"]["SpecsBucket"]
    key = f"jobs/{uuid.uuid4()}.json"
    rehearsal.s3.put_object(Bucket=specs, Key=key, Body=json.dumps(body))
    end = time.time() + 60
    while True:
        try:
            result = json.loads(rehearsal.s3.get_object(Bucket=specs, Key=key + ".result.json")["Body"].read())
            break
        except rehearsal.s3.exceptions.NoSuchKey:
            assert time.time() < end, "no result file"
            time.sleep(0.5)
    job = rehearsal.wait(result["JobId"], ["Complete", "Failed"])
    assert job["Status"] == "Complete", job
    rows = report(rehearsal, b, result["JobId"])
    assert len(rows) == len(KEYS)
    refused = [r for s, r in rows if s != "succeeded"]
    assert not refused, f"{len(refused)} tasks failed, the first: {refused[0]}"
    assert all(tags(rehearsal, b["src"], k) == {"reviewed": "yes"} for k in KEYS)


def test_the_api_refuses_a_bad_signature_and_an_unknown_route(rehearsal):
    wrong = dict(rehearsal.operator, SecretAccessKey="not-the-secret")
    status, out = rehearsal.call("GET", "/v20180820/jobs", creds=wrong)
    assert status == 403 and "signature" in out["message"], out
    status, out = rehearsal.call("DELETE", "/v20180820/jobs")
    assert (status, out["message"]) == (403, "Missing Authentication Token")


def local_job(rehearsal, body, logs):
    """Runs `body` under `batchops local` against the same moto (as the rehearsal's admin, with
    its own credentials: the example role trusts only the stack's functions) and returns the
    job's description once it has ended."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID=rehearsal.admin["AccessKeyId"],
               AWS_SECRET_ACCESS_KEY=rehearsal.admin["SecretAccessKey"], AWS_REGION="us-east-1", RUST_LOG="warn")
    env.pop("AWS_ENDPOINT_URL_LAMBDA", None)
    cmd = [os.path.join(target_dir(), "debug", "batchops"), "local", "--no-job-roles", "--listen", "127.0.0.1:0",
           "--prefix", f"reh-local-{uuid.uuid4().hex[:6]}"]
    with open(os.path.join(logs, "batchops-local.log"), "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            line = proc.stdout.readline()
            assert "API on " in line, f"batchops local did not start: {line!r}"
            api = line.split("API on ")[1].split()[0]
            req = urllib.request.Request(api + "/v20180820/jobs", data=json.dumps(body).encode(), method="POST")
            job_id = json.loads(urllib.request.urlopen(req, timeout=30).read())["JobId"]
            end = time.time() + 120
            while True:
                job = json.loads(urllib.request.urlopen(f"{api}/v20180820/jobs/{job_id}", timeout=30).read())["Job"]
                if job["Status"] in ("Complete", "Failed", "Cancelled"):
                    return job
                assert time.time() < end, job
                time.sleep(0.3)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def test_the_deployed_stack_and_batchops_local_write_the_same_report(rehearsal, buckets):
    b = buckets
    keys = KEYS + ["data/missing-1"]
    op = {"S3PutObjectCopy": {"TargetResource": f"arn:aws:s3:::{b['dst']}", "TargetKeyPrefix": "copies"}}
    body = spec(rehearsal, b, op, csv_manifest(rehearsal, b, keys))
    deployed = rehearsal.wait(create(rehearsal, body), ["Complete", "Failed"])
    local = dict(body, ClientRequestToken=str(uuid.uuid4()))
    local["Report"] = dict(body["Report"], Prefix="local-reports")
    ran = local_job(rehearsal, local, rehearsal.logs)
    assert (deployed["Status"], ran["Status"]) == ("Complete", "Complete"), (deployed, ran)
    counts = ("TotalNumberOfTasks", "NumberOfTasksSucceeded", "NumberOfTasksFailed")
    assert [deployed["ProgressSummary"][c] for c in counts] == [ran["ProgressSummary"][c] for c in counts]
    rows = sorted(report(rehearsal, b, deployed["JobId"]))
    assert len(rows) == len(keys)
    local_rows = sorted(report_at(rehearsal, b["rep"], "local-reports", ran["JobId"]))
    assert rows == local_rows
