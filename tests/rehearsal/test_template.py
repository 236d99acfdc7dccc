"""What moto cannot enforce, read from the transformed template: each function's DynamoDB
actions and resources against the JobStore calls its code makes, and the functions' roles
holding no S3 data permissions."""

import pytest

import stack

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
