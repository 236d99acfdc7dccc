"""`batchops status` against `batchops local`'s system view (`GET /v20180820/system`): a chunk
of a real job put on the chunk dead-letter queue makes it exit 1 naming the job and the kind;
its JSON is the documented one; emptied, the system is healthy again (exit 0)."""

import datetime
import json
import re
import socket
import time

import pytest

from conftest import QUEUES, api, run_job, status


def iso8601(text):
    assert isinstance(text, str), text
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def dlq_url(sqs, local):
    """The chunk queue's dead-letter queue, found as `batchops local` names it (`<queue>-dlq`)."""
    urls = sqs.list_queues(QueueNamePrefix=local["prefix"]).get("QueueUrls", [])
    [url] = [u for u in urls if u.rsplit("/", 1)[-1] == f"{local['prefix']}-chunks-dlq"]
    return url


def check_shape(view):
    """The system view as documented (issue 25's contract)."""
    for key in ("CheckedAt", "Healthy", "Problems", "StalledAfterMinutes", "Queues", "Jobs", "Alarms"):
        assert key in view, f"{key} missing: {sorted(view)}"
    checked = iso8601(view["CheckedAt"])
    assert abs((datetime.datetime.now(datetime.timezone.utc) - checked).total_seconds()) < 120, checked
    assert isinstance(view["Healthy"], bool)
    assert isinstance(view["Problems"], list) and all(isinstance(p, str) for p in view["Problems"])
    assert view["Healthy"] == (not view["Problems"]), (view["Healthy"], view["Problems"])
    assert isinstance(view["StalledAfterMinutes"], int)
    names = [q["Name"] for q in view["Queues"]]
    assert len(names) == len(set(names)) and set(names) <= QUEUES, names
    assert {"control", "chunk", "finalize", "control-dlq", "chunk-dlq", "finalize-dlq"} <= set(names), names
    for q in view["Queues"]:
        assert isinstance(q["Url"], str) and q["Url"], q
        assert q["DeadLetter"] is q["Name"].endswith("-dlq"), q
        for n in ("Visible", "InFlight", "Delayed"):
            assert isinstance(q[n], int) and q[n] >= 0, q
        assert q["OldestAgeSeconds"] is None or (isinstance(q["OldestAgeSeconds"], (int, float))
                                                 and q["OldestAgeSeconds"] >= 0), q
        if q["FirstDead"] is not None:
            assert q["DeadLetter"], q
            dead = q["FirstDead"]
            assert isinstance(dead["MessageId"], str) and dead["MessageId"], dead
            assert dead["Kind"] in ("chunk", "control", "finalize", "spec"), dead
            assert dead["JobId"] is None or isinstance(dead["JobId"], str), dead
            assert isinstance(dead["Detail"], str), dead
            iso8601(dead["SentAt"])
    jobs = view["Jobs"]
    for part in ("Open", "EndedLastDay"):
        assert all(isinstance(k, str) and isinstance(v, int) and v >= 0 for k, v in jobs[part].items()), jobs[part]
    for s in jobs["Stalled"]:
        assert {"JobId", "Status", "Description", "IdleMinutes", "LastProgressAt"} <= set(s), s
        iso8601(s["LastProgressAt"])
    assert view["Alarms"] is None, "batchops local has no alarms to read"
    return {q["Name"]: q for q in view["Queues"]}


def view_json(local, *args):
    run = status("--api-url", local["url"], "--json", *args)
    assert run.returncode in (0, 1), (run.returncode, run.stdout, run.stderr)
    return run.returncode, json.loads(run.stdout)


def drain(sqs, url, timeout=60):
    """Receives and deletes every message of the queue (PurgeQueue is once a minute), including
    one a reader left in flight, once it shows again."""
    end = time.time() + timeout
    while True:
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        left = sum(int(a[k]) for k in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                                       "ApproximateNumberOfMessagesDelayed"))
        if left == 0:
            return
        assert time.time() < end, f"{url} still holds {left} messages"


@pytest.fixture
def empty_dlq(sqs, local):
    url = dlq_url(sqs, local)
    drain(sqs, url)
    yield url
    drain(sqs, url)


def test_a_dead_lettered_chunk_needs_a_person_until_it_is_gone(local, data, sqs, empty_dlq):
    # GIVEN a job that ran, and nothing dead-lettered: healthy
    job = run_job(local, data, data["few"])
    job_id = job["JobId"]
    healthy = status("--api-url", local["url"])
    assert healthy.returncode == 0, (healthy.stdout, healthy.stderr)
    # WHEN a chunk message of that job lands on the chunk queue's dead-letter queue
    body = {"job_id": job_id, "index": 0, "start": 0, "end": 120, "first_line": 1, "tasks": 5}
    sent = sqs.send_message(QueueUrl=empty_dlq, MessageBody=json.dumps(body))
    # THEN `batchops status` exits 1 and shows the dead-letter queue's depth, the job and the kind
    run = status("--api-url", local["url"])
    assert run.returncode == 1, (run.returncode, run.stdout, run.stderr)
    out = run.stdout
    dlq_lines = [line for line in out.splitlines() if "chunk-dlq" in line]
    assert dlq_lines and any(re.search(r"\b1\b", line) for line in dlq_lines), out
    assert job_id in out, out
    job_lines = [line for line in out.splitlines() if job_id in line]
    assert any("chunk" in line for line in job_lines), out
    # AND its JSON says the same, as documented
    code, view = view_json(local)
    assert code == 1
    queues = check_shape(view)
    assert view["Healthy"] is False and view["Problems"], view
    dlq = queues["chunk-dlq"]
    assert dlq["Url"].rsplit("/", 1)[-1] == empty_dlq.rsplit("/", 1)[-1], (dlq["Url"], empty_dlq)
    assert dlq["Visible"] + dlq["InFlight"] + dlq["Delayed"] == 1, dlq
    # The check reads the first letter without taking it: the next check sees it as well.
    assert dlq["Visible"] == 1, f"status left the dead letter in flight: {dlq}"
    first = dlq["FirstDead"]
    assert first is not None, dlq
    assert (first["MessageId"], first["Kind"], first["JobId"]) == (sent["MessageId"], "chunk", job_id), first
    assert dlq["OldestAgeSeconds"] is not None and dlq["OldestAgeSeconds"] < 600, dlq
    assert view["Jobs"]["EndedLastDay"].get("Complete", 0) >= 1, view["Jobs"]
    assert not view["Jobs"]["Stalled"], view["Jobs"]
    # The API answers the same view (the CLI's source without --stack).
    _, ctype, text = api(local, "GET", "/v20180820/system")
    assert ctype.startswith("application/json"), ctype
    direct = json.loads(text)
    check_shape(direct)
    assert {q["Name"]: q["FirstDead"]["MessageId"] for q in direct["Queues"] if q["FirstDead"]} == {
        "chunk-dlq": sent["MessageId"]}
    # WHEN the letter is gone, THEN healthy again: exit 0, nothing to report
    drain(sqs, empty_dlq)
    end = time.time() + 20
    while (run := status("--api-url", local["url"])).returncode != 0 and time.time() < end:
        time.sleep(1)
    assert run.returncode == 0, (run.returncode, run.stdout, run.stderr)
    code, view = view_json(local)
    queues = check_shape(view)
    assert code == 0 and view["Healthy"] is True and view["Problems"] == [], view
    assert all(q["FirstDead"] is None and q["Visible"] == 0 for q in queues.values() if q["DeadLetter"]), queues


def test_the_stalled_bound_is_the_one_asked_for(local):
    code, view = view_json(local)
    assert view["StalledAfterMinutes"] == 30, view["StalledAfterMinutes"]
    code, view = view_json(local, "--stalled-minutes", "7")
    check_shape(view)
    assert view["StalledAfterMinutes"] == 7, view["StalledAfterMinutes"]


def test_an_api_that_does_not_answer_is_exit_2(local):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = status("--api-url", f"http://127.0.0.1:{port}")
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    assert run.stderr.strip(), "no word of why"
