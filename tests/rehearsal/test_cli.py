"""The batchops CLI against the deployed API: the URL from the stack's outputs, every request
SigV4-signed with the caller's credentials and verified by the API proxy."""

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from conftest import KEYS
from lambdas import target_dir
from test_jobs import TAGGING, csv_manifest, report, spec, tags


def batchops(rehearsal, creds, *args, **env_extra):
    """Runs the CLI as `creds`; `env_extra` sets variables (None removes one)."""
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID=creds["AccessKeyId"],
        AWS_SECRET_ACCESS_KEY=creds["SecretAccessKey"],
        AWS_REGION="us-east-1",
        BATCHOPS_STACK="batchops",
    )
    env.pop("AWS_SESSION_TOKEN", None)
    env.update(env_extra)
    env = {k: v for k, v in env.items() if v is not None}
    cmd = [os.path.join(target_dir(), "debug", "batchops"), "--sign", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_create_job_and_watch_through_the_signed_api_of_the_stack(rehearsal, buckets, tmp_path):
    b = buckets
    body = spec(rehearsal, b, TAGGING, csv_manifest(rehearsal, b, KEYS))
    del body["ClientRequestToken"]  # the CLI fills one in
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(body))
    created = batchops(rehearsal, rehearsal.operator, "create-job", "--cli-input-json", f"file://{path}")
    assert created.returncode == 0, created.stderr
    job_id = json.loads(created.stdout)["JobId"]
    watched = batchops(rehearsal, rehearsal.operator, "watch", job_id, "--interval", "0.3")
    assert watched.returncode == 0, watched.stderr
    described = batchops(rehearsal, rehearsal.operator, "describe-job", "--job-id", job_id)
    job = json.loads(described.stdout)["Job"]
    rows = report(rehearsal, b, job_id) if job["Status"] == "Complete" else []
    # A failure names the tasks' own failures (one run in seven failed 40 of 64 without saying why).
    failed = [r for status, r in rows if status != "succeeded"][:5]
    assert job["Status"] == "Complete" and job["ProgressSummary"]["NumberOfTasksSucceeded"] == len(KEYS), (job, failed)
    assert sorted(urllib.parse.unquote_plus(r[1]) for _, r in rows) == sorted(KEYS)
    assert all(tags(rehearsal, b["src"], k) == {"reviewed": "yes"} for k in KEYS)
    listed = batchops(rehearsal, rehearsal.operator, "list-jobs", "--job-statuses", "Complete")
    assert job_id in [j["JobId"] for j in json.loads(listed.stdout)["Jobs"]]


def test_a_request_signed_with_the_wrong_secret_is_refused(rehearsal):
    wrong = dict(rehearsal.operator, SecretAccessKey="not-the-secret")
    # The stack is found (moto takes the access key alone), the API refuses the signature.
    listed = batchops(rehearsal, wrong, "list-jobs")
    assert listed.returncode != 0
    assert "403" in listed.stderr and "signature" in listed.stderr, listed.stderr


def test_the_api_over_https_with_a_trusted_certificate(rehearsal):
    # --api-url instead of the stack's (plain HTTP) ApiUrl: TLS through rustls, with the
    # certificate trusted the way the system's CA store is extended (SSL_CERT_FILE).
    url = rehearsal.api.tls_url
    listed = batchops(rehearsal, rehearsal.operator, "--api-url", url, "list-jobs", "--max-results", "1",
                      BATCHOPS_STACK=None, SSL_CERT_FILE=rehearsal.api.ca_file)
    assert listed.returncode == 0, listed.stderr
    assert "Jobs" in json.loads(listed.stdout)
    # Without the certificate trusted, the CLI refuses the connection rather than go on.
    untrusted = batchops(rehearsal, rehearsal.operator, "--api-url", url, "list-jobs", BATCHOPS_STACK=None,
                         SSL_CERT_FILE=os.devnull)
    assert untrusted.returncode != 0 and "cannot reach the batchops API" in untrusted.stderr, untrusted.stderr


def test_the_console_for_the_stack_forwards_the_pages_calls_signed_and_refuses_other_origins(rehearsal, buckets):
    """`batchops console --stack`: the page's API calls reach the deployed API signed with the
    caller's credentials (which the page never sees); another site's page cannot use them."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    creds = rehearsal.operator
    env = dict(os.environ, AWS_ACCESS_KEY_ID=creds["AccessKeyId"], AWS_SECRET_ACCESS_KEY=creds["SecretAccessKey"],
               AWS_REGION="us-east-1", BATCHOPS_STACK="batchops")
    env.pop("AWS_SESSION_TOKEN", None)
    cmd = [os.path.join(target_dir(), "debug", "batchops"), "--sign", "console", "--listen", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                page = urllib.request.urlopen(f"{base}/console/", timeout=2).read().decode()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                time.sleep(0.2)
        assert "console.js" in page
        b = buckets
        body = spec(rehearsal, b, TAGGING, csv_manifest(rehearsal, b, KEYS))
        req = urllib.request.Request(f"{base}/v20180820/jobs", data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json", "origin": base})
        job_id = json.load(urllib.request.urlopen(req, timeout=60))["JobId"]
        job = rehearsal.wait(job_id, ["Complete", "Failed"])
        assert job["Status"] == "Complete", job
        listed = json.load(urllib.request.urlopen(f"{base}/v20180820/jobs?jobStatuses=Complete", timeout=60))
        assert job_id in [j["JobId"] for j in listed["Jobs"]]
        evil = urllib.request.Request(f"{base}/v20180820/jobs/{job_id}/retry-failed", data=b"", method="POST",
                                      headers={"origin": "http://attacker.example"})
        try:
            urllib.request.urlopen(evil, timeout=10)
            raise AssertionError("a cross-origin call was forwarded")
        except urllib.error.HTTPError as e:
            assert e.code == 403
    finally:
        proc.terminate()
        proc.wait(timeout=30)
