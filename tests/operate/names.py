"""The metrics batchops writes (one name in CloudWatch EMF and in Prometheus), their kinds and
their labels (EMF dimensions), and the queues of the system view: issue 25's contract, as the
operate suite and the rehearsal check them. A metric renamed, added or dropped without this list
changing fails both."""

NAMESPACE = "batchops"

METRICS = {
    "tasks_succeeded": "counter",
    "tasks_failed": "counter",
    "task_latency_ms": "histogram",
    "slow_downs": "counter",
    "server_errors": "counter",
    "chunks_run": "counter",
    "chunk_duration_ms": "histogram",
    "chunks_released": "counter",
    "chunk_queue_depth": "gauge",
    "backlog_jobs": "gauge",  # jobs with chunks waiting in their backlog
    "job_transitions": "counter",
    "jobs_found_stuck": "counter",
    "jobs_failed_by_sweep": "counter",
    "dead_letters_handled": "counter",
    "events_not_delivered": "counter",
}

# Each metric's labels (EMF: its one dimension set), besides a histogram's `le`; none when absent.
LABELS = {
    "tasks_succeeded": {"operation"},
    "tasks_failed": {"operation"},
    "task_latency_ms": {"operation"},
    "slow_downs": {"operation"},
    "server_errors": {"operation"},
    "chunks_run": {"operation"},
    "chunk_duration_ms": {"operation"},
    "job_transitions": {"status"},
    "dead_letters_handled": {"queue"},
}

# CloudWatch units: counts and gauges Count, histograms (milliseconds) Milliseconds.
UNITS = {name: "Milliseconds" if kind == "histogram" else "Count" for name, kind in METRICS.items()}

QUEUES = {"control", "chunk", "finalize", "specs", "control-dlq", "chunk-dlq", "finalize-dlq", "specs-dlq"}
