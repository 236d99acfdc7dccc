"""S3ComputeObjectChecksum against independent implementations: every algorithm that Python's
standard library (hashlib, zlib) or the `xxhash` package (the reference C library) computes,
FULL_OBJECT and COMPOSITE, on objects of 0 bytes, 1 byte, exactly one part size, exactly two
parts, and several parts with a short last one. batchops computes each through `batchops
local` on moto (stored with no checksum of S3's, so none is reported as stored); the expected
values are computed here from the bytes uploaded."""

import base64
import csv
import hashlib
import io
import json
import uuid
import zlib

import boto3
import pytest
import xxhash
from botocore.config import Config

from conftest import ROLE, wait_for

PART = 5 * 1024 * 1024  # S3's (and moto's) smallest part but the last


def crc32(data):
    return zlib.crc32(data).to_bytes(4, "big")


# name -> raw digest of bytes; the xxHash digests in the library's canonical (big-endian) form.
ALGORITHMS = {
    "CRC32": crc32,
    "MD5": lambda d: hashlib.md5(d).digest(),
    "SHA1": lambda d: hashlib.sha1(d).digest(),
    "SHA256": lambda d: hashlib.sha256(d).digest(),
    "SHA512": lambda d: hashlib.sha512(d).digest(),
    "XXHASH64": lambda d: xxhash.xxh64(d).digest(),
    "XXHASH3": lambda d: xxhash.xxh3_64(d).digest(),
    "XXHASH128": lambda d: xxhash.xxh3_128(d).digest(),
}


def pattern(n, seed):
    """`n` bytes that differ from part to part (a hash of a repeated block would hide a
    misplaced part)."""
    block = hashlib.sha512(seed.encode()).digest()
    return (block * (n // len(block) + 1))[:n]


# key -> the object's parts (one part: a single PUT).
OBJECTS = {
    "empty": [b""],
    "one-byte": [b"\x7f"],
    "one-part-size": [pattern(PART, "a")],
    "two-full-parts": [pattern(PART, "b"), pattern(PART, "c")],
    "several-parts": [pattern(PART, "d"), pattern(PART, "e"), pattern(1234, "f")],
}


def expected(name, checksum_type, parts):
    digest = ALGORITHMS[name]
    if checksum_type == "FULL_OBJECT" or len(parts) == 1:
        return base64.b64encode(digest(b"".join(parts))).decode()
    joined = b"".join(digest(p) for p in parts)
    return f"{base64.b64encode(digest(joined)).decode()}-{len(parts)}"


@pytest.fixture(scope="module")
def stored(local):
    """The objects in a bucket of their own, uploaded without S3 checksums, and a manifest."""
    import os
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      config=Config(request_checksum_calculation="when_required"))
    run = uuid.uuid4().hex[:8]
    bucket, reports = f"checksums-{run}", f"checksums-rep-{run}"
    for b in (bucket, reports):
        s3.create_bucket(Bucket=b)
    for key, parts in OBJECTS.items():
        if len(parts) == 1:
            s3.put_object(Bucket=bucket, Key=key, Body=parts[0])
            continue
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        done = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=n,
                                                          Body=p)["ETag"]}
                for n, p in enumerate(parts, 1)]
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done})
    text = "".join(f"{bucket},{key}\n" for key in OBJECTS).encode()
    etag = s3.put_object(Bucket=bucket, Key="manifest.csv", Body=text)["ETag"]
    manifest = {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                "Location": {"ObjectArn": f"arn:aws:s3:::{bucket}/manifest.csv", "ETag": etag}}
    return s3, manifest, reports


def results(s3, reports, job_id):
    """ResultMessage of each key, from the job's report."""
    manifest = json.loads(s3.get_object(Bucket=reports, Key=f"r/job-{job_id}/manifest.json")["Body"].read())
    out = {}
    for f in manifest["Results"]:
        body = s3.get_object(Bucket=reports, Key=f["Key"])["Body"].read().decode()
        for row in csv.reader(io.StringIO(body)):
            assert row[3] == "succeeded", row
            out[row[1]] = json.loads(row[6])
    return out


def test_every_algorithm_and_type_matches_an_independent_implementation(s3control, stored, account):
    s3, manifest, reports = stored
    jobs = {}
    for name in ALGORITHMS:
        for checksum_type in ("FULL_OBJECT", "COMPOSITE"):
            op = {"S3ComputeObjectChecksum": {"ChecksumAlgorithm": name, "ChecksumType": checksum_type}}
            jobs[(name, checksum_type)] = s3control.create_job(
                AccountId=account, ClientRequestToken=str(uuid.uuid4()), Operation=op, Manifest=manifest,
                Report={"Bucket": f"arn:aws:s3:::{reports}", "Format": "Report_CSV_20180820", "Enabled": True,
                        "Prefix": "r", "ReportScope": "AllTasks"},
                Priority=10, RoleArn=ROLE, ConfirmationRequired=False)["JobId"]
    wrong = []
    for (name, checksum_type), job_id in jobs.items():
        job = wait_for(s3control, account, job_id, {"Complete", "Failed"}, timeout=300)
        assert job["Status"] == "Complete", job
        got = results(s3, reports, job_id)
        assert set(got) == set(OBJECTS)
        for key, parts in OBJECTS.items():
            message = got[key]
            assert (message["checksumAlgorithm"], message["checksumType"]) == (name, checksum_type)
            want = expected(name, checksum_type, parts)
            if message["checksum_base64"] != want:
                wrong.append((name, checksum_type, key, message["checksum_base64"], want))
    assert not wrong, wrong
