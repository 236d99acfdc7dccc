"""The AWS CLI (`awscli` from PyPI, in the virtualenv) running `aws s3control` unchanged against
batchops local: two variables point it there, as the README says (the endpoint, and the local
API as the HTTP proxy, since nothing resolves the account-prefixed host the CLI builds)."""
import json
import os
import subprocess
import uuid

from conftest import copy_job, wait_for


def aws(local, *args, check=True):
    env = dict(os.environ, AWS_ENDPOINT_URL_S3_CONTROL=local, HTTP_PROXY=local, AWS_DEFAULT_REGION="us-east-1")
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    out = subprocess.run(["aws", "s3control", *args, "--output", "json"], env=env, capture_output=True, text=True,
                         timeout=120)
    if check:
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else {}
    return out


def test_create_describe_list_and_cancel_with_the_aws_cli(local, s3control, data, account, tmp_path):
    spec = dict(copy_job(data, ConfirmationRequired=True), AccountId=account, Description="from the CLI")
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    # no ClientRequestToken: the CLI fills it in, as it does for S3
    job_id = aws(local, "create-job", "--cli-input-json", f"file://{path}")["JobId"]
    wait_for(s3control, account, job_id, {"Suspended"})
    job = aws(local, "describe-job", "--account-id", account, "--job-id", job_id)["Job"]
    assert (job["Status"], job["Description"], job["Priority"]) == ("Suspended", "from the CLI", 10)
    listed = aws(local, "list-jobs", "--account-id", account, "--job-statuses", "Suspended")["Jobs"]
    assert [j["JobId"] for j in listed] == [job_id]
    out = aws(local, "update-job-priority", "--account-id", account, "--job-id", job_id, "--priority", "5")
    assert out["Priority"] == 5
    out = aws(local, "update-job-status", "--account-id", account, "--job-id", job_id,
              "--requested-job-status", "Cancelled", "--status-update-reason", "cli")
    assert out["Status"] in ("Cancelling", "Cancelled") and out["StatusUpdateReason"] == "cli"
    assert wait_for(s3control, account, job_id, {"Cancelled"})["Status"] == "Cancelled"


def test_the_cli_shows_the_services_errors_and_refuses_members_s3_lacks(local, data, account, tmp_path):
    missing = aws(local, "describe-job", "--account-id", account, "--job-id", str(uuid.uuid4()), check=False)
    assert missing.returncode != 0 and "NotFoundException" in missing.stderr, missing.stderr
    # batchops' own members are not in the CLI's model: it refuses them before sending
    path = tmp_path / "dry.json"
    path.write_text(json.dumps(dict(copy_job(data), AccountId=account, DryRun=True)))
    dry = aws(local, "create-job", "--cli-input-json", f"file://{path}", check=False)
    assert dry.returncode != 0 and "DryRun" in dry.stderr, dry.stderr
