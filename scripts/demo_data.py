"""Creates the demo's buckets, objects and manifest on the emulator, and writes the job spec.

Usage: demo_data.py SPEC_OUT [COUNT]
"""
import json
import os
import sys
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import boto3

endpoint = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
s3 = boto3.client("s3", endpoint_url=endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"))
spec_out = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
src, dst, man, rep = "demo-source", "demo-destination", "demo-manifests", "demo-reports"
for b in (src, dst, man, rep):
    try:
        s3.create_bucket(Bucket=b)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass

awkward = [
    "reports/2026/q3 summary.pdf",
    "names/Zoë Ångström/photo.jpg",
    "math/1+1=2.txt",
    "percent/100% done.txt",
    "hash/#hashtag.txt",
    "double//slash/file.txt",
    "日本語/ファイル.txt",
]
keys = awkward + [f"data/2026/11/part-{i:05d}.json" for i in range(count - len(awkward))]


def put(k):
    s3.put_object(Bucket=src, Key=k, Body=f"demo object {k}\n".encode(), Metadata={"source": "demo"},
                  Tagging="project=demo")


with ThreadPoolExecutor(16) as pool:
    list(pool.map(put, keys))

missing = ["data/2026/11/part-99998.json", "gone/never uploaded.txt", "gone/also missing.txt"]
# Keys URL-encoded as S3 Batch Operations manifests want them (form style: '+' is a space).
lines = [f"{src},{urllib.parse.quote_plus(k, safe='/')}" for k in keys + missing]
etag = s3.put_object(Bucket=man, Key="manifests/demo.csv", Body=("\n".join(lines) + "\n").encode())["ETag"]

spec = {
    "AccountId": "123456789012",
    "Operation": {"S3PutObjectCopy": {"TargetResource": f"arn:aws:s3:::{dst}", "TargetKeyPrefix": "copied",
                                      "StorageClass": "STANDARD"}},
    "Report": {"Bucket": f"arn:aws:s3:::{rep}", "Format": "Report_CSV_20180820", "Enabled": True,
               "Prefix": "batch-reports", "ReportScope": "AllTasks"},
    "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                 "Location": {"ObjectArn": f"arn:aws:s3:::{man}/manifests/demo.csv", "ETag": etag}},
    "Priority": 10,
    "RoleArn": "arn:aws:iam::123456789012:role/batch-operations",
    "Description": "batchops demo: copy 2,000 objects",
    "ConfirmationRequired": False,
}
with open(spec_out, "w") as f:
    json.dump(spec, f, indent=2)
print(f"created {len(keys)} objects in s3://{src} and a manifest of {len(lines)} rows "
      f"({len(missing)} of them missing keys) at s3://{man}/manifests/demo.csv")
