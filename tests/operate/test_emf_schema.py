"""The EMF JSON Schema itself (shared/batchops-core/src/metrics/emf.schema.json), the one the
Rust unit tests validate every EMF line against: it takes AWS's own example and the lines the
contract describes, and refuses each limit of the specification broken, one at a time."""

import copy
import json

import pytest

import emf

# The specification's own example (Specification: Embedded metric format).
AWS_EXAMPLE = {
    "_aws": {
        "Timestamp": 1574109732004,
        "CloudWatchMetrics": [
            {"Namespace": "lambda-function-metrics", "Dimensions": [["functionVersion"]],
             "Metrics": [{"Name": "time", "Unit": "Milliseconds"}]}
        ],
    },
    "functionVersion": "$LATEST",
    "time": 100,
    "requestId": "989ffbf8-9ace-4817-a57c-e4dd734019ee",
}

# A line as the executor writes one: per operation and job, a histogram as an array.
EXECUTOR_LINE = {
    "_aws": {
        "Timestamp": 1760000000000,
        "CloudWatchMetrics": [
            {"Namespace": "batchops", "Dimensions": [["operation"]],
             "Metrics": [{"Name": "tasks_succeeded", "Unit": "Count"}, {"Name": "tasks_failed", "Unit": "Count"},
                         {"Name": "task_latency_ms", "Unit": "Milliseconds"}]}
        ],
    },
    "operation": "S3PutObjectTagging",
    "function": "task-executor",
    "job_id": "0f7e3f0e-1c1e-4c55-8d43-3c2b8b0f9a11",
    "tasks_succeeded": 10,
    "tasks_failed": 2,
    "task_latency_ms": [12, 13, 40.5],
}

# A metric with no dimensions, high resolution.
NO_DIMENSIONS = {
    "_aws": {"Timestamp": 0, "CloudWatchMetrics": [
        {"Namespace": "batchops", "Dimensions": [[]],
         "Metrics": [{"Name": "chunks_released", "Unit": "Count", "StorageResolution": 1}]}]},
    "chunks_released": 3,
}


@pytest.fixture(scope="module")
def v():
    return emf.validator()


@pytest.mark.parametrize("doc", [AWS_EXAMPLE, EXECUTOR_LINE, NO_DIMENSIONS], ids=["aws", "executor", "no-dimensions"])
def test_valid_documents_pass(v, doc):
    assert emf.problems(doc, v) == []


def broken(doc, change):
    d = copy.deepcopy(doc)
    change(d)
    return d


def directive(d):
    return d["_aws"]["CloudWatchMetrics"][0]


def many_dimensions(d, n):
    keys = [f"d{i}" for i in range(n)]
    directive(d)["Dimensions"] = [keys]
    d.update({k: "x" for k in keys})


def many_metrics(d, n):
    directive(d)["Metrics"] = [{"Name": f"m{i}", "Unit": "Count"} for i in range(n)]
    d.update({f"m{i}": 1 for i in range(n)})


CASES = {
    "no _aws": lambda d: d.pop("_aws"),
    "no Timestamp": lambda d: d["_aws"].pop("Timestamp"),
    "Timestamp not an integer": lambda d: d["_aws"].update(Timestamp="2026-01-01T00:00:00Z"),
    "Timestamp fractional": lambda d: d["_aws"].update(Timestamp=1.5),
    "no CloudWatchMetrics": lambda d: d["_aws"].pop("CloudWatchMetrics"),
    "a member _aws does not define": lambda d: d["_aws"].update(LogGroupName="x"),
    "no Namespace": lambda d: directive(d).pop("Namespace"),
    "empty Namespace": lambda d: directive(d).update(Namespace=""),
    "Namespace of 1025 characters": lambda d: directive(d).update(Namespace="n" * 1025),
    "no Dimensions": lambda d: directive(d).pop("Dimensions"),
    "Dimensions not an array of sets": lambda d: directive(d).update(Dimensions=["operation"]),
    "no DimensionSet at all": lambda d: directive(d).update(Dimensions=[]),
    "31 dimension keys": lambda d: many_dimensions(d, 31),
    "no Metrics": lambda d: directive(d).pop("Metrics"),
    "101 metrics": lambda d: many_metrics(d, 101),
    "a metric without Name": lambda d: directive(d)["Metrics"][0].pop("Name"),
    "a Name of 1025 characters": lambda d: directive(d)["Metrics"][0].update(Name="m" * 1025),
    "a unit CloudWatch lacks": lambda d: directive(d)["Metrics"][0].update(Unit="Counts"),
    "StorageResolution 30": lambda d: directive(d)["Metrics"][0].update(StorageResolution=30),
    "a member MetricDefinition does not define": lambda d: directive(d)["Metrics"][0].update(Value=1),
    # What only the hand checks see:
    "a dimension the root lacks": lambda d: d.pop("operation"),
    "a dimension that is a number": lambda d: d.update(operation=7),
    "a dimension nested, not a root member": lambda d: (directive(d).update(Dimensions=[["op.eration"]]),
                                                       d.update(op={"eration": "x"})),
    "a metric the root lacks": lambda d: d.pop("tasks_failed"),
    "a metric that is a string": lambda d: d.update(tasks_succeeded="10"),
    "a metric of 101 values": lambda d: d.update(task_latency_ms=list(range(101))),
    "a metric array holding a string": lambda d: d.update(task_latency_ms=[1, "2"]),
    "a metric that is a boolean": lambda d: d.update(tasks_failed=True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_broken_limit_is_refused(v, case):
    doc = broken(EXECUTOR_LINE, CASES[case])
    assert emf.problems(doc, v), f"{case}: accepted {json.dumps(doc)[:300]}"


def test_the_limits_themselves_pass(v):
    # 30 dimension keys, 100 metrics, an array of 100 values, names of 1024 characters.
    doc = broken(EXECUTOR_LINE, lambda d: many_dimensions(d, 30))
    assert emf.problems(doc, v) == []
    doc = broken(EXECUTOR_LINE, lambda d: many_metrics(d, 100))
    assert emf.problems(doc, v) == []
    doc = broken(EXECUTOR_LINE, lambda d: d.update(task_latency_ms=list(range(100))))
    assert emf.problems(doc, v) == []
    long = "n" * 1024
    doc = broken(EXECUTOR_LINE, lambda d: (directive(d).update(Namespace=long), directive(d)["Metrics"].append(
        {"Name": long}), d.update({long: 1})))
    assert emf.problems(doc, v) == []


def test_documents_are_found_after_lambdas_own_fields():
    line = json.dumps(EXECUTOR_LINE)
    text = f"2026-01-01T00:00:00.000Z\tabc-123\t{line}\nINFO something else\n{json.dumps(NO_DIMENSIONS)}\n"
    docs = emf.documents(text)
    assert docs == [EXECUTOR_LINE, NO_DIMENSIONS]
    assert emf.total(docs, "tasks_succeeded", EXECUTOR_LINE["job_id"]) == 10
    assert emf.total(docs, "task_latency_ms") == 12 + 13 + 40.5
