"""What moto cannot enforce, read from the transformed template: each function's DynamoDB
actions and resources against the JobStore calls its code makes, and the functions' roles
holding no S3 data permissions; and what moto cannot play of operating the stack: the log
groups, the alarms and what they watch, their topic, the dashboard and the outputs."""

import json
import os
import re
import sys

import pytest
from botocore.session import get_session
from botocore.validate import validate_parameters

import stack

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "operate"))
import names  # noqa: E402

TABLE = {"Fn::GetAtt": ["JobsTable", "Arn"]}
INDEX = {"Fn::Sub": "${JobsTable.Arn}/index/by-created"}
OPEN_INDEX = {"Fn::Sub": "${JobsTable.Arn}/index/open-jobs"}

# The JobStore methods each function's code calls (shared/batchops-core/src/pipeline) and the
# DynamoDB requests behind them (shared/batchops-aws/src/dynamo.rs): create = a transaction of
# two PutItems, then GetItem on a used token; get / chunk_recorded = GetItem; put = UpdateItem;
# record_chunk / record_part = a transaction of a PutItem and an UpdateItem, then GetItem;
# list = Query on the by-created index; chunks_after = Query on the table; a chunk's claim:
# start_chunk = a transaction of a ConditionCheck and a PutItem, renew_chunk / note_throttle =
# UpdateItem, release_chunk / reap_chunk = DeleteItem, chunk_leases = Query; record_chunk's
# transaction also deletes the claim.
DYNAMODB = {
    # create, get (describe), list, put (status, priority)
    "JobIntakeFunction": {"dynamodb:GetItem": [TABLE], "dynamodb:PutItem": [TABLE], "dynamodb:UpdateItem": [TABLE],
                          "dynamodb:Query": [INDEX]},
    # create, get
    "SpecTriggerFunction": {"dynamodb:GetItem": [TABLE], "dynamodb:PutItem": [TABLE]},
    # create, get (a schedule's firing)
    "ScheduledJobFunction": {"dynamodb:GetItem": [TABLE], "dynamodb:PutItem": [TABLE]},
    # Custom::BatchopsJob: create, get (describe, the waits' checks), put (cancel, priority,
    # rate, tags)
    "JobResourceFunction": {"dynamodb:GetItem": [TABLE], "dynamodb:PutItem": [TABLE], "dynamodb:UpdateItem": [TABLE]},
    # get, put (progress, checkpoints, statuses), record_part; the dispatcher: push / remove =
    # BatchWriteItem, runnable / peek / chunk_leases = Query, the runnable mark = UpdateItem
    # and DeleteItem, its lock = PutItem and DeleteItem; the timer's sweep: list (Suspended;
    # every job hourly) and list of the open jobs (the sparse index, every minute)
    "ManifestChunkerFunction": {"dynamodb:GetItem": [TABLE], "dynamodb:PutItem": [TABLE],
                                "dynamodb:UpdateItem": [TABLE], "dynamodb:BatchWriteItem": [TABLE],
                                "dynamodb:Query": [TABLE, INDEX, OPEN_INDEX], "dynamodb:DeleteItem": [TABLE]},
    # get, chunk_recorded, start/renew/release_chunk, chunk_leases (rate), record_chunk,
    # note_throttle, put (failing a job)
    "TaskExecutorFunction": {"dynamodb:GetItem": [TABLE], "dynamodb:PutItem": [TABLE], "dynamodb:UpdateItem": [TABLE],
                             "dynamodb:DeleteItem": [TABLE], "dynamodb:ConditionCheckItem": [TABLE],
                             "dynamodb:Query": [TABLE], "dynamodb:BatchWriteItem": [TABLE]},
    # get, put (statuses), chunks_after, chunk_leases, reap_chunk
    # PutItem: the merged segments of a big report (SEG# items).
    "ReportFinalizerFunction": {"dynamodb:GetItem": [TABLE], "dynamodb:UpdateItem": [TABLE],
                                "dynamodb:Query": [TABLE], "dynamodb:DeleteItem": [TABLE],
                                "dynamodb:PutItem": [TABLE]},
}

# S3 object access a function's own role may hold: only the spec trigger, on the specs it reads
# and the result files it writes, and the schedule function, on the specs schedules name. Everything else goes through the job's role.
S3_OWN = {"SpecTriggerFunction": {"s3:GetObject", "s3:PutObject"}, "ScheduledJobFunction": {"s3:GetObject"}}


@pytest.fixture(scope="module")
def resources():
    return stack.transformed()["Resources"]


def statements(resources, function):
    role = resources[function + "Role"]["Properties"]
    for p in role.get("Policies", []):
        for st in p["PolicyDocument"]["Statement"]:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            res = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            yield actions, res, st


@pytest.mark.parametrize("function", sorted(DYNAMODB))
def test_each_function_may_make_exactly_the_dynamodb_requests_its_code_makes(resources, function):
    granted = {}
    for actions, res, _ in statements(resources, function):
        for a in actions:
            if a.startswith("dynamodb:"):
                granted.setdefault(a, []).extend(res)
    assert granted == DYNAMODB[function]


@pytest.mark.parametrize("function", sorted(DYNAMODB))
def test_the_functions_roles_hold_no_s3_data_permissions(resources, function):
    s3 = {a for actions, _, _ in statements(resources, function) for a in actions if a.startswith(("s3:", "kms:"))}
    assert s3 == S3_OWN.get(function, set())
    assert not resources[function + "Role"]["Properties"].get("ManagedPolicyArns", []) or all(
        "S3" not in arn for arn in resources[function + "Role"]["Properties"]["ManagedPolicyArns"]
    )


def test_only_the_job_stages_assume_roles_and_only_the_pattern(resources):
    assuming = set()
    for function in DYNAMODB:
        for actions, res, _ in statements(resources, function):
            if "sts:AssumeRole" in actions:
                assuming.add(function)
                assert res == [{"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${JobRoleNamePattern}"}]
    # job-intake for retry-failed (the report's failed rows, the new manifest beside them)
    assert assuming == {"JobIntakeFunction", "ManifestChunkerFunction", "TaskExecutorFunction", "ReportFinalizerFunction"}


def test_the_example_job_role_trusts_exactly_the_functions_that_act_for_jobs(resources):
    trust = resources["ExampleJobRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Action"] for s in trust] == ["sts:AssumeRole"]
    principals = {p["Fn::GetAtt"][0] for p in trust[0]["Principal"]["AWS"]}
    assert principals == {
        "JobIntakeFunctionRole",
        "ManifestChunkerFunctionRole",
        "TaskExecutorFunctionRole",
        "ReportFinalizerFunctionRole",
    }


def test_callers_need_only_execute_api_invoke(resources):
    # No integration credentials: API Gateway invokes job-intake through its resource policy
    # (AWS::Lambda::Permission), not with the caller's own lambda:InvokeFunction.
    api = next(r for r in resources.values() if r["Type"] == "AWS::ApiGateway::RestApi")
    for path, methods in api["Properties"]["Body"]["paths"].items():
        for method, spec in methods.items():
            integration = spec["x-amazon-apigateway-integration"]
            assert "credentials" not in integration, (path, method)
            assert spec["security"] == [{"AWS_IAM": []}], (path, method)
    permissions = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert len(permissions) == sum(len(m) for m in api["Properties"]["Body"]["paths"].values())
    assert all(p["Properties"]["Principal"] == "apigateway.amazonaws.com" for p in permissions)


def test_the_example_schedule_fires_the_schedule_function_as_the_scheduler_role_only(resources):
    sched = resources["ExampleNightlySchedule"]["Properties"]
    assert sched["State"] == "DISABLED"
    assert sched["GroupName"] == {"Ref": "ScheduleGroup"}
    assert sched["Target"]["Arn"] == {"Fn::GetAtt": ["ScheduledJobFunction", "Arn"]}
    assert sched["Target"]["RoleArn"] == {"Fn::GetAtt": ["SchedulerRole", "Arn"]}
    body = sched["Target"]["Input"]["Fn::Sub"]
    for placeholder in ["<aws.scheduler.schedule-arn>", "<aws.scheduler.scheduled-time>", "<aws.scheduler.execution-id>"]:
        assert placeholder in body
    role = resources["SchedulerRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "scheduler.amazonaws.com"}
    granted = [st for p in role["Policies"] for st in p["PolicyDocument"]["Statement"]]
    assert granted == [{"Effect": "Allow", "Action": "lambda:InvokeFunction",
                        "Resource": {"Fn::GetAtt": ["ScheduledJobFunction", "Arn"]}}]


def test_every_function_may_put_events_on_the_configured_bus_only(resources):
    for function in DYNAMODB:
        events = [(a, r) for actions, r, _ in statements(resources, function) for a in actions if a.startswith("events:")]
        assert [a for a, _ in events] == ["events:PutEvents"], function
        assert "EventBusName" in str(events[0][1]), (function, events)


# ---------------------------------------------------------------- operating it
# The log groups, alarms, their topic, the dashboard and the outputs `batchops status --stack`
# reads, from the transformed template: moto neither evaluates alarms nor writes logs.

# CloudWatch Logs' retention values (PutRetentionPolicy's retentionInDays).
RETENTIONS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653]
STACK = "opsstack"


@pytest.fixture(scope="module")
def template():
    return stack.transformed()


def of_type(resources, kind):
    return {n: r for n, r in resources.items() if r["Type"] == kind}


def written_metrics():
    """{name: [dimension]} of every metric batchops writes: the contract of tests/operate/names.py,
    which the operate suite holds the code's EMF lines and Prometheus scrape to."""
    return {name: sorted(names.LABELS.get(name, ())) for name in names.METRICS}


class Offline(stack.Resolver):
    """Intrinsic functions resolved without a stack: physical ids and attributes are
    placeholders naming their resource."""

    def __init__(self, template, parameters=None):
        values = {k: str(v.get("Default", "")) for k, v in template["Parameters"].items()}
        values.update(parameters or {})
        values.update({"AWS::StackName": STACK, "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012",
                       "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"})
        values.update({n: f"<{n}>" for n in template["Resources"]})
        super().__init__(template, values)

    def getatt(self, logical, attr):
        assert logical in self.template["Resources"], logical
        return f"<{logical}.{attr}>"


def alarms(template):
    """Every alarm, its properties resolved offline: {logical id: properties}."""
    resolve = Offline(template)
    return {n: resolve(r["Properties"]) for n, r in of_type(template["Resources"], "AWS::CloudWatch::Alarm").items()}


def watched(props):
    """The metrics an alarm looks at: [(namespace, name, {dimension: value}, statistic)]."""
    def one(metric, stat):
        return (metric["Namespace"], metric["MetricName"], {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}, stat)

    if "Metrics" in props:
        return [one(q["MetricStat"]["Metric"], q["MetricStat"]["Stat"]) for q in props["Metrics"] if "MetricStat" in q]
    return [one(props, props.get("Statistic") or props.get("ExtendedStatistic"))]


def alarms_on(template, namespace, metric, **dims):
    return {n: p for n, p in alarms(template).items()
            if any(w[:3] == (namespace, metric, dims) for w in watched(p))}


def test_every_function_logs_to_its_own_group_kept_for_the_retention_parameter(template):
    res = template["Resources"]
    param = template["Parameters"]["LogRetentionDays"]
    assert param["Default"] == 30 and param["AllowedValues"] == RETENTIONS
    groups = []
    for name, fn in of_type(res, "AWS::Lambda::Function").items():
        conf = fn["Properties"].get("LoggingConfig")
        assert conf and conf["LogFormat"] == "Text", name  # the EMF lines are printed raw
        group = conf["LogGroup"]["Ref"]
        assert res[group]["Type"] == "AWS::Logs::LogGroup", name
        assert res[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, group
        groups.append(group)
    assert len(groups) == 7 and len(set(groups)) == 7
    assert set(groups) == set(of_type(res, "AWS::Logs::LogGroup"))


def test_every_alarm_is_named_for_the_stack_explains_itself_and_notifies_the_topic(template):
    found = alarms(template)
    names = [p["AlarmName"] for p in found.values()]
    assert len(set(names)) == len(names) == 24
    topic = template["Resources"]["AlarmTopic"]
    assert topic["Type"] == "AWS::SNS::Topic" and "Condition" not in topic
    for logical, p in found.items():
        assert p["AlarmName"].startswith(STACK + "-"), logical  # batchops status --stack's prefix
        assert len(p["AlarmDescription"]) > 80, logical
        assert p["AlarmActions"] == p["OKActions"] == ["<AlarmTopic>"], logical
        assert p["TreatMissingData"] == "notBreaching", logical


def test_every_alarm_is_a_valid_put_metric_alarm_request(template):
    # What the rehearsal sends moto (stack.alarm_request), checked against CloudWatch's model.
    shape = get_session().get_service_model("cloudwatch").operation_model("PutMetricAlarm").input_shape
    for logical, p in alarms(template).items():
        validate_parameters(stack.alarm_request(p), shape)
        if "Metrics" in p:
            assert sum(q.get("ReturnData", True) for q in p["Metrics"]) == 1, logical


def test_every_dead_letter_queue_has_an_alarm_and_the_swept_ones_count_the_sweeps_handling(template):
    res = template["Resources"]
    dlqs = {r["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
            for r in of_type(res, "AWS::SQS::Queue").values() if "RedrivePolicy" in r["Properties"]}
    assert dlqs == {"ControlDLQ", "ChunkDLQ", "FinalizeDLQ", "SpecsDLQ", "JobResourceWaitDLQ"}
    # The DLQs the sweep reads, and the `queue` dimension of its dead_letters_handled.
    chunker = res["ManifestChunkerFunction"]["Properties"]["Environment"]["Variables"]
    swept = {v["Ref"]: re.match(r"BATCHOPS_(\w+)_DLQ_URL", k).group(1).lower()
             for k, v in chunker.items() if re.match(r"BATCHOPS_\w+_DLQ_URL", k)}
    assert set(swept) == {"ControlDLQ", "ChunkDLQ", "FinalizeDLQ"}
    for dlq in dlqs:
        on = alarms_on(template, "AWS/SQS", "ApproximateNumberOfMessagesVisible", QueueName=f"<{dlq}.QueueName>")
        assert len(on) == 1, dlq
        (logical, p), = on.items()
        assert p["Threshold"] == 1 and p["ComparisonOperator"] == "GreaterThanOrEqualToThreshold", logical
        stats = {w[1]: w[3] for w in watched(p)}
        assert stats["ApproximateNumberOfMessagesVisible"] == "Maximum", logical
        if dlq in swept:
            # the sweep empties the queue within a minute: what it handled counts too
            assert ("batchops", "dead_letters_handled", {"queue": swept[dlq]}, "Sum") in watched(p), logical
            assert "sweep" in p["AlarmDescription"], logical
        else:
            assert len(watched(p)) == 1, logical


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_has_an_errors_and_a_throttles_alarm(template, metric):
    for fn in of_type(template["Resources"], "AWS::Lambda::Function"):
        on = alarms_on(template, "AWS/Lambda", metric, FunctionName=f"<{fn}>")
        assert len(on) == 1, (fn, metric)
        (logical, p), = on.items()
        assert (p["Statistic"], p["Period"], p["EvaluationPeriods"]) == ("Sum", 300, 1), logical
        assert (p["ComparisonOperator"], p["Threshold"]) == ("GreaterThanThreshold", 0), logical


def test_the_executor_at_its_cap_for_15_minutes_alarms(template):
    res = template["Resources"]
    # The cap: the chunk queue's event source's MaximumConcurrency (no reserved concurrency).
    esm = next(r["Properties"] for r in of_type(res, "AWS::Lambda::EventSourceMapping").values()
               if r["Properties"]["FunctionName"] == {"Ref": "TaskExecutorFunction"})
    assert esm["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "ExecutorMaxConcurrency"}
    assert "ReservedConcurrentExecutions" not in res["TaskExecutorFunction"]["Properties"]
    on = alarms_on(template, "AWS/Lambda", "ConcurrentExecutions", FunctionName="<TaskExecutorFunction>")
    assert len(on) == 1
    (logical, p), = on.items()
    assert logical == "ExecutorAtCapAlarm"
    raw = res[logical]["Properties"]
    assert raw["Threshold"] == {"Ref": "ExecutorMaxConcurrency"}
    assert p["Statistic"] == "Maximum" and p["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert p["Period"] * p["EvaluationPeriods"] == 900 and p["DatapointsToAlarm"] == p["EvaluationPeriods"]


@pytest.mark.parametrize("metric", ["jobs_found_stuck", "jobs_failed_by_sweep", "events_not_delivered"])
def test_stuck_jobs_and_undelivered_events_alarm_on_batchops_metrics(template, metric):
    assert written_metrics()[metric] == []  # no dimensions, as the alarm reads it
    on = alarms_on(template, "batchops", metric)
    assert len(on) == 1, metric
    (logical, p), = on.items()
    assert (p["Statistic"], p["Period"], p["EvaluationPeriods"]) == ("Sum", 300, 1), logical
    assert (p["ComparisonOperator"], p["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1), logical


def test_the_dispatch_schedules_failed_deliveries_alarm(template):
    rules = of_type(template["Resources"], "AWS::Events::Rule")
    for rule in rules:
        on = alarms_on(template, "AWS/Events", "FailedInvocations", RuleName=f"<{rule}>")
        assert len(on) == 1, rule
        (_, p), = on.items()
        assert p["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" and p["Threshold"] == 1


def test_alarms_on_batchops_metrics_use_their_names_and_dimensions(template):
    defined = written_metrics()
    for logical, p in alarms(template).items():
        for namespace, name, dims, _ in watched(p):
            if namespace == "batchops":
                assert name in defined, (logical, name)
                assert sorted(dims) == sorted(defined[name]), (logical, name, dims)


def test_the_email_subscription_exists_only_with_an_alarm_email(template):
    subs = of_type(template["Resources"], "AWS::SNS::Subscription")
    assert len(subs) == 1
    (_, sub), = subs.items()
    assert sub["Properties"] == {"TopicArn": {"Ref": "AlarmTopic"}, "Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
    assert not Offline(template).condition(sub["Condition"])
    assert Offline(template, {"AlarmEmail": "ops@example.com"}).condition(sub["Condition"])
    pattern = re.compile(template["Parameters"]["AlarmEmail"]["AllowedPattern"])
    assert pattern.fullmatch("") and pattern.fullmatch("ops@example.com") and not pattern.fullmatch("ops")


@pytest.fixture(scope="module")
def dashboard(template):
    (logical, d), = of_type(template["Resources"], "AWS::CloudWatch::Dashboard").items()
    assert d["Properties"]["DashboardName"] == {"Fn::Sub": "${AWS::StackName}"}
    body = Offline(template)(d["Properties"]["DashboardBody"])
    assert "${" not in body  # every substitution is CloudFormation's (no dynamic labels)
    return json.loads(body)["widgets"]


def rows(widgets):
    """Every metric row of the metric widgets: ("metric", [namespace, name, dim, value ...]) or
    ("search", expression)."""
    for w in widgets:
        if w["type"] != "metric":
            continue
        for m in w["properties"]["metrics"]:
            if isinstance(m[0], dict):
                yield "search", m[0]["expression"]
            else:
                yield "metric", [x for x in m if not isinstance(x, dict)]


def test_the_dashboard_shows_every_queue_and_function(template, dashboard):
    res = template["Resources"]
    plain = [r for kind, r in rows(dashboard) if kind == "metric"]
    shown = {(r[0], r[1], r[3]) for r in plain if len(r) == 4}
    for q in of_type(res, "AWS::SQS::Queue"):
        assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", f"<{q}.QueueName>") in shown, q
        if not q.endswith("DLQ"):
            assert ("AWS/SQS", "ApproximateAgeOfOldestMessage", f"<{q}.QueueName>") in shown, q
    for fn in of_type(res, "AWS::Lambda::Function"):
        for metric in ("Duration", "ConcurrentExecutions", "Errors", "Throttles"):
            assert ("AWS/Lambda", metric, f"<{fn}>") in shown, (fn, metric)
    for w in dashboard:
        assert {"x", "y", "width", "height"} <= set(w) and w["x"] + w["width"] <= 24, w
        if w["type"] == "metric":
            assert w["properties"]["region"] == "eu-west-1", w


def test_the_dashboard_shows_every_metric_batchops_writes_with_its_dimensions(dashboard):
    defined = written_metrics()
    shown = set()
    for kind, r in rows(dashboard):
        if kind == "search":
            m = re.fullmatch(r"""SEARCH\('\{"batchops",(\w+)\} MetricName="(\w+)"', '(\w+)', (\d+)\)""", r)
            assert m, r
            dims, name = m.group(1), m.group(2)
            assert defined[name] == [dims], r
            shown.add(name)
        elif r[0] == "batchops":
            assert defined[r[1]] == [], r  # a metric without dimensions, shown as one
            shown.add(r[1])
    assert shown == set(defined)


def test_the_dashboard_lists_every_alarm(template, dashboard):
    (widget,) = [w for w in dashboard if w["type"] == "alarm"]
    listed = [a.split(":alarm:", 1)[1] for a in widget["properties"]["alarms"]]
    assert sorted(listed) == sorted(p["AlarmName"] for p in alarms(template).values())
    assert all(a.startswith("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:") for a in widget["properties"]["alarms"])


def test_the_outputs_batchops_status_reads(template):
    outputs = template["Outputs"]
    refs = {"ControlQueue": "ControlQueue", "ChunkQueue": "ChunkQueue", "FinalizeQueue": "FinalizeQueue",
            "SpecsQueue": "SpecsQueue", "ControlDeadLetterQueue": "ControlDLQ", "ChunkDeadLetterQueue": "ChunkDLQ",
            "FinalizeDeadLetterQueue": "FinalizeDLQ", "SpecsDeadLetterQueue": "SpecsDLQ",
            "AlarmTopic": "AlarmTopic", "Dashboard": "Dashboard"}
    for output, logical in refs.items():
        assert outputs[output]["Value"] == {"Ref": logical}, output
    for kept in ["ApiUrl", "SpecsBucket", "JobsTable", "ScheduledJobFunctionArn", "SchedulerRoleArn", "ExampleJobRoleArn"]:
        assert kept in outputs


def test_the_custom_resources_service_token_is_an_output_and_an_export(template):
    token = template["Outputs"]["BatchopsJobServiceToken"]
    assert token["Value"] == {"Fn::GetAtt": ["JobResourceFunction", "Arn"]}
    assert token["Export"]["Name"] == {"Fn::Sub": "${AWS::StackName}-BatchopsJobServiceToken"}
