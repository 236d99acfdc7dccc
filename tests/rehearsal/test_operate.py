"""Operating the deployed stack: moto's CloudWatch holds every alarm and the dashboard the template
declares; `batchops status --stack` sees a message on the chunk dead-letter queue (exit 1) and
an alarm in ALARM, and stops seeing them once they are gone; the functions' CloudWatch Embedded
Metric Format lines (their stdout, in the rehearsal's log files) validate against the EMF
specification (shared/batchops-core/src/metrics/emf.schema.json) and carry a job's counts."""

import glob
import json
import os
import re
import subprocess
import sys
import time

import pytest

import lambdas
import stack
from conftest import KEYS, PARAMETERS, STACK, make_buckets
from lambdas import target_dir
from test_jobs import csv_manifest, create, spec

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "operate"))
import emf  # noqa: E402
from names import LABELS, METRICS, NAMESPACE, UNITS  # noqa: E402

OP = "S3PutObjectTagging"
TAGGING = {OP: {"TagSet": [{"Key": "reviewed", "Value": "yes"}]}}


def of_type(template, kind):
    return {logical: r for logical, r in template["Resources"].items() if r["Type"] == kind}


def resolved(rehearsal, value):
    """A name as CloudFormation resolves it, for the forms the template uses: a string, or
    Fn::Sub over pseudo parameters, parameters and resources (None for anything else)."""
    if isinstance(value, str):
        return value
    if not (isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str)):
        return None
    params = {k: str(v.get("Default", "")) for k, v in rehearsal.stack["original"].get("Parameters", {}).items()}
    params.update({k: str(v) for k, v in PARAMETERS.items()})
    names = {"AWS::StackName": STACK, "AWS::Region": stack.REGION, "AWS::AccountId": "123456789012",
             "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", **params, **rehearsal.res}
    text = value["Fn::Sub"]
    unknown = [n for n in re.findall(r"\$\{([^}!]+)\}", text) if n not in names]
    if unknown:
        return None
    return re.sub(r"\$\{([^}!]+)\}", lambda m: names[m.group(1)], text)


def expected_names(rehearsal, kind, name_property):
    """{logical id: the name the resource has in moto} for every resource of `kind` in the
    template as transformed (SAM), whether moto's CloudFormation made it or the rehearsal did
    (stack.MOTO_GAPS)."""
    out = {}
    for logical, r in of_type(rehearsal.stack["original"], kind).items():
        name = resolved(rehearsal, r["Properties"].get(name_property))
        if name is None and rehearsal.res.get(logical):
            name = rehearsal.res[logical]
        assert name, f"{logical}: cannot tell its name ({r['Properties'].get(name_property)!r}, not in the stack)"
        out[logical] = name
    return out


def cloudwatch(rehearsal):
    return stack.client("cloudwatch", rehearsal.admin)


def all_alarms(cw):
    alarms = {}
    for page in cw.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm", "CompositeAlarm"]):
        for a in page.get("MetricAlarms", []) + page.get("CompositeAlarms", []):
            alarms[a["AlarmName"]] = a
    return alarms


def alarm_metrics(alarm):
    """(namespace, name, {dimension: value}) of each metric an alarm reads."""
    if alarm.get("MetricName"):
        yield alarm.get("Namespace"), alarm["MetricName"], {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
    for q in alarm.get("Metrics", []):
        m = q.get("MetricStat", {}).get("Metric")
        if m:
            yield m.get("Namespace"), m["MetricName"], {d["Name"]: d["Value"] for d in m.get("Dimensions", [])}


def test_moto_holds_every_alarm_of_the_template_reading_real_resources(rehearsal):
    wanted = expected_names(rehearsal, "AWS::CloudWatch::Alarm", "AlarmName")
    assert wanted, "the template declares no alarm"
    alarms = all_alarms(cloudwatch(rehearsal))
    missing = {logical: name for logical, name in wanted.items() if name not in alarms}
    assert not missing, f"alarms of the template not in CloudWatch: {missing}; it holds {sorted(alarms)}"
    sqs = stack.client("sqs", rehearsal.admin)
    queues = {u.rsplit("/", 1)[-1] for u in sqs.list_queues(MaxResults=1000).get("QueueUrls", [])}
    functions = {rehearsal.res[f] for f in lambdas.BIN} | {
        rehearsal.res[logical] for logical in of_type(rehearsal.stack["original"], "AWS::Lambda::Function")
        if logical in rehearsal.res}
    for logical, name in wanted.items():
        alarm = alarms[name]
        read = list(alarm_metrics(alarm))
        assert read or alarm.get("AlarmRule"), f"{name} reads no metric"
        for namespace, metric, dims in read:
            for d, v in dims.items():
                assert isinstance(v, str) and v and "Fn::" not in v and "Ref" not in v, f"{name}: {d}={v!r}"
            if namespace == NAMESPACE:
                assert metric in METRICS, f"{name} reads {metric}, which batchops does not write"
                assert set(dims) <= LABELS.get(metric, set()), f"{name}: {metric} has no dimensions {set(dims)}"
            if "QueueName" in dims:
                assert dims["QueueName"] in queues, f"{name} watches queue {dims['QueueName']}, not one of {queues}"
            if "FunctionName" in dims:
                assert dims["FunctionName"] in functions, f"{name} watches function {dims['FunctionName']}"
    # Their names start with the stack's: `batchops status --stack` finds them by it.
    assert all(name.startswith(f"{STACK}-") for name in wanted.values()), sorted(wanted.values())


def dashboard_metrics(body):
    """(namespace, name) of every metric row of every widget ('.' repeats the row above)."""
    for widget in body.get("widgets", []):
        previous = []
        for row in widget.get("properties", {}).get("metrics", []) or []:
            if not isinstance(row, list):
                continue
            plain = [x for x in row if not isinstance(x, dict)]
            if not plain:
                continue
            full = [previous[i] if x == "." and i < len(previous) else x for i, x in enumerate(plain)]
            previous = full
            if len(full) >= 2:
                yield full[0], full[1]


def test_moto_holds_the_dashboard_and_it_graphs_metrics_batchops_writes(rehearsal):
    wanted = expected_names(rehearsal, "AWS::CloudWatch::Dashboard", "DashboardName")
    assert wanted, "the template declares no dashboard"
    if "Dashboard" in rehearsal.stack["outputs"]:
        assert rehearsal.stack["outputs"]["Dashboard"] in wanted.values(), rehearsal.stack["outputs"]["Dashboard"]
    cw = cloudwatch(rehearsal)
    for logical, name in wanted.items():
        got = cw.get_dashboard(DashboardName=name)
        body = json.loads(got["DashboardBody"])
        assert body.get("widgets"), f"{name}: no widgets"
        assert "${" not in got["DashboardBody"], f"{name}: a substitution left unresolved"
        metrics = set(dashboard_metrics(body))
        ours = {m for ns, m in metrics if ns == NAMESPACE}
        assert ours, f"{name} graphs none of batchops' metrics: {sorted(metrics)[:10]}"
        assert ours <= set(METRICS), f"{name} graphs metrics batchops does not write: {sorted(ours - set(METRICS))}"
        assert {"AWS/SQS", "AWS/Lambda"} <= {ns for ns, _ in metrics}, f"{name}: no queue or Lambda graph"


@pytest.fixture(scope="module")
def tagged_job(rehearsal, operate_buckets):
    """A tagging job of the rehearsal's keys and two that do not exist (those fail 404), ended."""
    started = time.time()
    keys = KEYS + ["data/missing-1", "data/missing-2"]
    b = operate_buckets
    job_id = create(rehearsal, spec(rehearsal, b, TAGGING, csv_manifest(rehearsal, b, keys)))
    job = rehearsal.wait(job_id, ["Complete", "Failed"])
    assert job["Status"] == "Complete", job
    p = job["ProgressSummary"]
    assert (p["NumberOfTasksSucceeded"], p["NumberOfTasksFailed"]) == (len(KEYS), 2), p
    return {"job": job, "started": started}


@pytest.fixture(scope="module")
def operate_buckets(rehearsal):
    """conftest's `buckets`, once for the module."""
    return make_buckets(rehearsal)


def function_output(rehearsal):
    """Every function process's output so far (stdout and stderr share each log file)."""
    text = []
    for binary in lambdas.BIN.values():
        for path in sorted(glob.glob(os.path.join(rehearsal.logs, f"{binary}-*.log"))):
            with open(path, errors="replace") as f:
                text.append(f.read())
    return "\n".join(text)


def test_the_functions_emf_lines_validate_and_carry_the_jobs_counts(rehearsal, tagged_job):
    job = tagged_job["job"]
    job_id, p = job["JobId"], job["ProgressSummary"]
    wanted = (p["NumberOfTasksSucceeded"], p["NumberOfTasksFailed"])
    # The executor writes its lines when its invocation returns, maybe just after the job ended.
    end = time.time() + 20
    while True:
        docs = emf.documents(function_output(rehearsal))
        got = (emf.total(docs, "tasks_succeeded", job_id), emf.total(docs, "tasks_failed", job_id))
        # The finalizer's line of the move to Complete, too: written when its invocation returns.
        completed = any(d.get("job_id") == job_id and d.get("status") == "Complete" for d in docs)
        if (got == wanted and completed) or time.time() > end:
            break
        time.sleep(1)
    assert docs, "no EMF line in the functions' output"
    v = emf.validator()
    bad = [(problems, doc) for doc in docs if (problems := emf.problems(doc, v))]
    assert not bad, f"{len(bad)} of {len(docs)} EMF lines break the specification; the first: {bad[0]}"
    now_ms = time.time() * 1000
    for doc in docs:
        assert doc["_aws"]["Timestamp"] > now_ms - 3 * 3600 * 1000 and doc["_aws"]["Timestamp"] < now_ms + 60_000, (
            f"Timestamp {doc['_aws']['Timestamp']} is not milliseconds of now: {doc}")
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == NAMESPACE, directive
            for m in directive["Metrics"]:
                name = m["Name"]
                assert name in METRICS, f"EMF writes {name}, not one of the Prometheus names: {doc}"
                assert m.get("Unit") == UNITS[name], (name, m)
                assert [set(s) for s in directive["Dimensions"]] == [LABELS.get(name, set())], (name, directive)
        assert isinstance(doc.get("function"), str) and doc["function"], doc
    # THEN the lines about the job add up to its counts
    assert got == wanted, f"EMF lines of job {job_id} count (succeeded, failed) {got}, DescribeJob {wanted}"
    ours = [d for d in docs if d.get("job_id") == job_id]
    assert all(d["_aws"]["Timestamp"] >= (tagged_job["started"] - 5) * 1000 for d in ours), "lines dated before the job"
    assert {d.get("operation") for d in ours if "tasks_succeeded" in emf.metric_names(d)} == {OP}
    latencies = sum(len(emf.values(d, "task_latency_ms")) for d in ours if "task_latency_ms" in emf.metric_names(d))
    # One latency per task run: a chunk whose claim lapsed runs again (its tasks are counted
    # once, as recorded, but each run took its time).
    assert latencies >= sum(wanted), f"{latencies} task latencies in EMF for {sum(wanted)} tasks"
    assert any(d.get("status") == "Complete" and "job_transitions" in emf.metric_names(d) for d in ours), (
        "no job_transitions line of the job's move to Complete")


def status(rehearsal, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=rehearsal.admin["AccessKeyId"],
               AWS_SECRET_ACCESS_KEY=rehearsal.admin["SecretAccessKey"], AWS_REGION=stack.REGION)
    for k in ("AWS_SESSION_TOKEN", "BATCHOPS_STACK", "BATCHOPS_API_URL"):
        env.pop(k, None)
    cmd = [os.path.join(target_dir(), "debug", "batchops"), "status", "--stack", STACK, *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def status_json(rehearsal):
    run = status(rehearsal, "--json")
    assert run.returncode in (0, 1), (run.returncode, run.stdout, run.stderr)
    return run.returncode, json.loads(run.stdout)


def queue(view, name):
    [q] = [q for q in view["Queues"] if q["Name"] == name]
    return q


def test_status_of_the_stack_sees_a_dead_letter_until_it_is_deleted(rehearsal, tagged_job):
    job_id = tagged_job["job"]["JobId"]
    sqs = stack.client("sqs", rehearsal.admin)
    dlq = rehearsal.stack["outputs"].get("ChunkDeadLetterQueue") or rehearsal.res["ChunkDLQ"]
    # GIVEN the stack as the other tests left it
    before_code, before = status_json(rehearsal)
    assert before["Alarms"] is not None, "a stack's alarms are readable"
    assert queue(before, "chunk-dlq")["Visible"] == 0, queue(before, "chunk-dlq")
    # WHEN a chunk of a real job lands on the chunk dead-letter queue
    body = {"job_id": job_id, "index": 0, "start": 0, "end": 100, "first_line": 1, "tasks": 10}
    sent = sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps(body))["MessageId"]
    try:
        # THEN status exits 1 and names the queue, the job and the kind
        run = status(rehearsal)
        assert run.returncode == 1, (run.returncode, run.stdout, run.stderr)
        assert job_id in run.stdout and "chunk-dlq" in run.stdout, run.stdout
        assert any("chunk" in line for line in run.stdout.splitlines() if job_id in line), run.stdout
        code, view = status_json(rehearsal)
        assert code == 1 and view["Healthy"] is False, view["Problems"]
        q = queue(view, "chunk-dlq")
        assert q["DeadLetter"] is True and q["Visible"] + q["InFlight"] == 1, q
        assert q["Url"].rsplit("/", 1)[-1] == dlq.rsplit("/", 1)[-1], (q["Url"], dlq)
        first = q["FirstDead"]
        assert first and (first["MessageId"], first["Kind"], first["JobId"]) == (sent, "chunk", job_id), q
    finally:
        # WHEN it is deleted
        end = time.time() + 60
        gone = False
        while not gone and time.time() < end:
            for m in sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
                if m["MessageId"] == sent:
                    sqs.delete_message(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"])
                    gone = True
        assert gone, "the dead letter could not be received back to delete it"
    # THEN it is gone from status, and the stack is as before
    code, after = status_json(rehearsal)
    q = queue(after, "chunk-dlq")
    assert (q["Visible"], q["InFlight"], q["FirstDead"]) == (0, 0, None), q
    assert code == before_code and sorted(after["Problems"]) == sorted(before["Problems"]), (before, after)


def test_status_of_the_stack_names_an_alarm_in_alarm(rehearsal):
    cw = cloudwatch(rehearsal)
    name = f"{STACK}-chunk-dlq"
    assert name in all_alarms(cw), f"no alarm {name}"
    cw.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="rehearsal: set by the test")
    try:
        run = status(rehearsal)
        assert run.returncode == 1 and name in run.stdout, (run.returncode, run.stdout, run.stderr)
        code, view = status_json(rehearsal)
        firing = [a for a in view["Alarms"] if a["Name"] == name]
        assert code == 1 and firing and firing[0]["State"] == "ALARM", view["Alarms"]
        assert {"Name", "State", "Reason", "Since"} <= set(firing[0]), firing[0]
        assert "rehearsal: set by the test" in firing[0]["Reason"], firing[0]
    finally:
        cw.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="rehearsal: reset")
    code, view = status_json(rehearsal)
    assert not [a for a in view["Alarms"] if a["Name"] == name and a["State"] == "ALARM"], view["Alarms"]
