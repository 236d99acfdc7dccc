"""Prints where a job's completion report is and a few of its rows. Usage: demo_report.py JOB_ID"""
import json
import os
import sys

import boto3

s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
                  region_name=os.environ.get("AWS_REGION", "us-east-1"))
job_id = sys.argv[1]
key = f"batch-reports/job-{job_id}/manifest.json"
manifest = json.loads(s3.get_object(Bucket="demo-reports", Key=key)["Body"].read())
print(f"completion report: s3://demo-reports/{key}")
for result in manifest["Results"]:
    print(f"  {result['TaskExecutionStatus']:>9}: s3://{result['Bucket']}/{result['Key']}")
for status in ("failed", "succeeded"):
    files = [r for r in manifest["Results"] if r["TaskExecutionStatus"] == status]
    if files:
        rows = s3.get_object(Bucket=files[0]["Bucket"], Key=files[0]["Key"])["Body"].read().decode().splitlines()
        print(f"first {status} rows:")
        for row in rows[:3]:
            print(f"  {row}")
pages = s3.get_paginator("list_objects_v2").paginate(Bucket="demo-destination", Prefix="copied/")
print(f"s3://demo-destination/copied/ holds {sum(p['KeyCount'] for p in pages)} objects")
