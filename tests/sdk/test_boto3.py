"""boto3's s3control client, unchanged, against batchops local: every job operation, its
modelled exceptions, NextToken paging, and a copy job that completes with its report."""
import datetime
import json
import uuid

import pytest

from conftest import ROLE, copy_job, wait_for


def test_a_copy_job_created_with_boto3_completes_with_its_report(s3control, s3, data, account):
    job_id = s3control.create_job(AccountId=account, ClientRequestToken=str(uuid.uuid4()),
                                  Description="copy with boto3", **copy_job(data))["JobId"]
    job = wait_for(s3control, account, job_id, {"Complete", "Failed"})
    assert job["Status"] == "Complete", job
    assert job["ProgressSummary"]["TotalNumberOfTasks"] == 25
    assert job["ProgressSummary"]["NumberOfTasksSucceeded"] == 25
    assert job["ProgressSummary"]["NumberOfTasksFailed"] == 0
    assert job["JobArn"] == f"arn:aws:s3:us-east-1:{account}:job/{job_id}"
    assert job["Description"] == "copy with boto3"
    assert job["Operation"]["S3PutObjectCopy"]["TargetKeyPrefix"] == "copied"
    assert job["Manifest"]["Spec"]["Fields"] == ["Bucket", "Key"]
    assert job["Report"]["Enabled"] is True and job["Priority"] == 10
    assert job["FailureReasons"] == []
    # timestamps are parsed by botocore from the XML's ISO 8601
    assert isinstance(job["CreationTime"], datetime.datetime)
    assert job["TerminationDate"] >= job["CreationTime"]
    copied = s3.list_objects_v2(Bucket=data["dst"], Prefix="copied/")["KeyCount"]
    assert copied == 25
    manifest = json.loads(s3.get_object(Bucket=data["rep"], Key=f"reports/job-{job_id}/manifest.json")["Body"].read())
    rows = []
    for result in manifest["Results"]:
        body = s3.get_object(Bucket=data["rep"], Key=result["Key"])["Body"].read().decode()
        rows += [line for line in body.splitlines() if line]
    assert len(rows) == 25 and all(",succeeded," in r for r in rows), rows[:3]


def test_confirm_priority_tags_and_cancel(s3control, data, account):
    tags = [{"Key": "team", "Value": "data"}]
    job_id = s3control.create_job(AccountId=account, ClientRequestToken=str(uuid.uuid4()), Tags=tags,
                                  **copy_job(data, ConfirmationRequired=True))["JobId"]
    assert wait_for(s3control, account, job_id, {"Suspended"})["Status"] == "Suspended"
    out = s3control.update_job_priority(AccountId=account, JobId=job_id, Priority=77)
    assert (out["JobId"], out["Priority"]) == (job_id, 77)
    assert s3control.describe_job(AccountId=account, JobId=job_id)["Job"]["Priority"] == 77
    assert s3control.get_job_tagging(AccountId=account, JobId=job_id)["Tags"] == tags
    s3control.put_job_tagging(AccountId=account, JobId=job_id, Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": ""}])
    assert s3control.get_job_tagging(AccountId=account, JobId=job_id)["Tags"] == [{"Key": "a", "Value": "1"},
                                                                                  {"Key": "b", "Value": ""}]
    s3control.delete_job_tagging(AccountId=account, JobId=job_id)
    assert s3control.get_job_tagging(AccountId=account, JobId=job_id)["Tags"] == []
    out = s3control.update_job_status(AccountId=account, JobId=job_id, RequestedJobStatus="Cancelled",
                                      StatusUpdateReason="not today")
    assert out["Status"] in ("Cancelling", "Cancelled") and out["StatusUpdateReason"] == "not today"
    job = wait_for(s3control, account, job_id, {"Cancelled"})
    assert job["StatusUpdateReason"] == "not today"
    with pytest.raises(s3control.exceptions.JobStatusException) as e:
        s3control.update_job_status(AccountId=account, JobId=job_id, RequestedJobStatus="Ready")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    # a confirmed job runs to the end
    other = s3control.create_job(AccountId=account, ClientRequestToken=str(uuid.uuid4()),
                                 **copy_job(data, ConfirmationRequired=True))["JobId"]
    wait_for(s3control, account, other, {"Suspended"})
    assert s3control.update_job_status(AccountId=account, JobId=other, RequestedJobStatus="Ready")["Status"] == "Ready"
    assert wait_for(s3control, account, other, {"Complete", "Failed"})["Status"] == "Complete"


def test_errors_raise_the_modelled_exceptions(s3control, data, account):
    with pytest.raises(s3control.exceptions.NotFoundException) as e:
        s3control.describe_job(AccountId=account, JobId=str(uuid.uuid4()))
    assert "does not exist" in e.value.response["Error"]["Message"]
    with pytest.raises(s3control.exceptions.BadRequestException) as e:
        s3control.create_job(AccountId=account, ClientRequestToken="t", **dict(copy_job(data), RoleArn="arn:aws:iam::123456789012:user/me"))
    assert e.value.response["Error"]["Message"].startswith("RoleArn:"), e.value.response["Error"]
    token = str(uuid.uuid4())
    first = s3control.create_job(AccountId=account, ClientRequestToken=token, **copy_job(data, ConfirmationRequired=True))
    same = s3control.create_job(AccountId=account, ClientRequestToken=token, **copy_job(data, ConfirmationRequired=True))
    assert first["JobId"] and same["JobId"] == first["JobId"], "the same request again is the same job"
    with pytest.raises(s3control.exceptions.IdempotencyException):
        s3control.create_job(AccountId=account, ClientRequestToken=token, **copy_job(data, Priority=11))
    with pytest.raises(s3control.exceptions.TooManyTagsException):
        s3control.put_job_tagging(AccountId=account, JobId=same["JobId"],
                                  Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])
    # (botocore checks ranges itself; enums it leaves to the service)
    with pytest.raises(s3control.exceptions.BadRequestException) as e:
        s3control.list_jobs(AccountId=account, JobStatuses=["Running"])
    assert e.value.response["Error"]["Message"].startswith("jobStatuses:"), e.value.response["Error"]
    with pytest.raises(s3control.exceptions.NotFoundException):
        s3control.update_job_priority(AccountId=account, JobId=str(uuid.uuid4()), Priority=1)


def test_list_jobs_pages_with_next_token(s3control, data, account):
    created = {s3control.create_job(AccountId=account, ClientRequestToken=str(uuid.uuid4()),
                                    Description=f"page {i}", **copy_job(data, ConfirmationRequired=True))["JobId"]
               for i in range(5)}
    seen, token, pages = [], None, 0
    while True:
        page = s3control.list_jobs(AccountId=account, MaxResults=2, **({"NextToken": token} if token else {}))
        assert len(page["Jobs"]) <= 2
        seen += [j["JobId"] for j in page["Jobs"]]
        pages += 1
        token = page.get("NextToken")
        if not token:
            break
    assert set(seen) == created and len(seen) == 5 and pages >= 3, (seen, pages)
    newest_first = [j["CreationTime"] for j in s3control.list_jobs(AccountId=account)["Jobs"]]
    assert newest_first == sorted(newest_first, reverse=True)
    entry = s3control.list_jobs(AccountId=account, MaxResults=1)["Jobs"][0]
    assert entry["Operation"] == "S3PutObjectCopy" and entry["Description"].startswith("page ")
    assert set(entry["ProgressSummary"]) >= {"TotalNumberOfTasks", "NumberOfTasksSucceeded", "NumberOfTasksFailed"}
    for j in created:
        wait_for(s3control, account, j, {"Suspended"})
    suspended = s3control.list_jobs(AccountId=account, JobStatuses=["Suspended"])["Jobs"]
    assert {j["JobId"] for j in suspended} == created
    assert s3control.list_jobs(AccountId=account, JobStatuses=["Complete"])["Jobs"] == []


def test_an_account_sees_only_its_own_jobs(s3control, data, account):
    job_id = s3control.create_job(AccountId=account, ClientRequestToken=str(uuid.uuid4()),
                                  **copy_job(data, ConfirmationRequired=True))["JobId"]
    stranger = "999999999999" if account != "999999999999" else "888888888888"
    with pytest.raises(s3control.exceptions.NotFoundException):
        s3control.describe_job(AccountId=stranger, JobId=job_id)
    with pytest.raises(s3control.exceptions.NotFoundException):
        s3control.update_job_status(AccountId=stranger, JobId=job_id, RequestedJobStatus="Cancelled")
    assert job_id not in [j["JobId"] for j in s3control.list_jobs(AccountId=stranger)["Jobs"]]
    assert s3control.describe_job(AccountId=account, JobId=job_id)["Job"]["RoleArn"] == ROLE
