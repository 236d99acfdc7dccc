"""`batchops local`'s `GET /metrics`: Prometheus' text format, read with prometheus_client's
parser. A job moves the counters by exactly its task counts; every name is a documented one."""

import re
import time

from conftest import LABELS, METRICS, OP, run_job, scrape


def deltas(before, after):
    return {
        "tasks_succeeded": after.value("tasks_succeeded", operation=OP) - before.value("tasks_succeeded", operation=OP),
        "tasks_failed": after.value("tasks_failed", operation=OP) - before.value("tasks_failed", operation=OP),
        "task_latency_ms_count": after.value("task_latency_ms", "_count", operation=OP)
        - before.value("task_latency_ms", "_count", operation=OP),
        "job_transitions_complete": after.value("job_transitions", status="Complete")
        - before.value("job_transitions", status="Complete"),
        "job_transitions_failed": after.value("job_transitions", status="Failed")
        - before.value("job_transitions", status="Failed"),
    }


def settled(local, before, expected, timeout=15):
    """Scrapes until the deltas are the expected ones (a counter may move just after the write
    DescribeJob shows) or the time is up; the last scrape."""
    end = time.time() + timeout
    while True:
        after = scrape(local)
        if deltas(before, after) == expected or time.time() > end:
            return after
        time.sleep(0.5)


def test_a_job_with_failures_moves_the_counters_by_exactly_its_task_counts(local, data):
    # GIVEN the counters before, WHEN a tagging job of 30 objects and 3 missing keys runs
    before = scrape(local)
    job = run_job(local, data, data["with_missing"])
    p = job["ProgressSummary"]
    assert (p["TotalNumberOfTasks"], p["NumberOfTasksSucceeded"], p["NumberOfTasksFailed"]) == (33, 30, 3), p
    # THEN they moved by exactly its counts, and stay there
    expected = {
        "tasks_succeeded": p["NumberOfTasksSucceeded"],
        "tasks_failed": p["NumberOfTasksFailed"],
        "task_latency_ms_count": p["NumberOfTasksSucceeded"] + p["NumberOfTasksFailed"],
        "job_transitions_complete": 1,
        "job_transitions_failed": 0,
    }
    after = settled(local, before, expected)
    assert deltas(before, after) == expected
    chunks = after.value("chunks_run", operation=OP) - before.value("chunks_run", operation=OP)
    assert chunks >= 4, f"33 tasks at 10 a chunk ran in {chunks} chunks"
    durations = after.value("chunk_duration_ms", "_count", operation=OP) - before.value(
        "chunk_duration_ms", "_count", operation=OP)
    assert durations == chunks, f"{chunks} chunks run, {durations} chunk durations"
    assert after.value("chunks_released") - before.value("chunks_released") >= chunks
    time.sleep(2)
    assert deltas(before, scrape(local)) == expected, "the counters went on moving after the job ended"


def test_histograms_are_cumulative_and_end_in_their_count(local, data):
    run_job(local, data, data["few"])
    s = scrape(local)
    for name in ("task_latency_ms", "chunk_duration_ms"):
        family = s.families[name]
        assert family.type == "histogram", (name, family.type)
        series = {}
        for sample in family.samples:
            key = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
            series.setdefault(key, {"buckets": []})
            if sample.name.endswith("_bucket"):
                series[key]["buckets"].append((float(sample.labels["le"]), sample.value))
            else:
                series[key][sample.name[len(name):]] = sample.value
        assert series, name
        for key, sr in series.items():
            buckets = sorted(sr["buckets"])
            assert buckets and buckets[-1][0] == float("inf"), (name, key, buckets)
            counts = [c for _, c in buckets]
            assert counts == sorted(counts), f"{name}{key}: buckets not cumulative: {buckets}"
            assert buckets[-1][1] == sr["_count"], (name, key, buckets[-1], sr["_count"])
            assert sr["_sum"] >= 0, (name, key)
        assert any(dict(k).get("operation") == OP for k in series), (name, list(series))


def test_every_metric_name_is_a_documented_one(local, data):
    # A job first, so that the counters of tasks, chunks and transitions exist.
    run_job(local, data, data["few"])
    s = scrape(local)
    unknown = {name: f.type for name, f in s.families.items() if name not in METRICS}
    assert not unknown, f"metrics outside the documented list (renamed?): {unknown}"
    wrong_kind = {name: (f.type, METRICS[name]) for name, f in s.families.items() if f.type != METRICS[name]}
    assert not wrong_kind, f"(scraped, documented) kinds differ: {wrong_kind}"
    for name in ("tasks_succeeded", "task_latency_ms", "chunks_run", "chunk_duration_ms", "chunks_released",
                 "job_transitions"):
        assert name in s.families, f"{name} is missing after a job: {sorted(s.families)}"
    # The text as written: a counter under its own name (no `_total` added), a TYPE line for each.
    typed = dict(re.findall(r"^# TYPE (\S+) (\S+)$", s.text, re.M))
    assert typed == {name: f.type for name, f in s.families.items()}, typed
    sampled = {re.split(r"[{ ]", line, 1)[0] for line in s.text.splitlines() if line and not line.startswith("#")}
    suffixes = {"histogram": ("_bucket", "_sum", "_count")}
    allowed = {n + x for n, t in typed.items() for x in suffixes.get(t, ("",))}
    assert sampled <= allowed, f"samples named otherwise than their metric: {sorted(sampled - allowed)}"
    # Each metric's labels are its documented ones.
    for name, family in s.families.items():
        for sample in family.samples:
            labels = set(sample.labels) - {"le"}
            assert labels == LABELS.get(name, set()), f"{sample.name}{sample.labels}: labels {labels}"
