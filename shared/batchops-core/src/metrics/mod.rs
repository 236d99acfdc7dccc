//! What batchops counts, one list for both runtimes: CloudWatch Embedded Metric Format lines
//! on Lambda ([`emf`]), Prometheus' text format at `batchops local`'s `GET /metrics`
//! ([`prometheus`]). A metric has the same name in both.
//!
//! Dimensions are few and bounded (an operation, a status, a queue): every distinct set of
//! dimension values is one CloudWatch custom metric, billed by the month, so a job id is never
//! one. It travels in the EMF line as a property instead (searchable in Logs Insights, free as
//! far as metrics go), and Prometheus leaves it out.
//!
//! The stages record into one process-wide [`Registry`] ([`global`]) through [`count`],
//! [`observe`] and [`gauge`]: no handle threads through the ports for what is a side channel.
//! Lambda's mains drain it into EMF lines after every invocation ([`emf::drain`]); `batchops
//! local` renders it whole on every scrape.

pub mod emf;
pub mod prometheus;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::ids::JobId;

/// How a metric adds up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only grows: a sum of events.
    Counter,
    /// The last value seen.
    Gauge,
    /// Every value observed (EMF sends them for CloudWatch's percentiles; Prometheus buckets
    /// them).
    Histogram,
}

/// Every metric batchops writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    TasksSucceeded,
    TasksFailed,
    TaskLatency,
    SlowDowns,
    ServerErrors,
    ChunksRun,
    ChunkDuration,
    ChunksReleased,
    ChunkQueueDepth,
    BacklogJobs,
    JobTransitions,
    JobsFoundStuck,
    JobsFailedBySweep,
    DeadLettersHandled,
    EventsNotDelivered,
}

/// A metric's name, kind, CloudWatch unit, dimension names and meaning.
#[derive(Clone, Copy, Debug)]
pub struct Definition {
    pub name: &'static str,
    pub kind: Kind,
    /// CloudWatch's unit name (`Count`, `Milliseconds`).
    pub unit: &'static str,
    pub dimensions: &'static [&'static str],
    pub help: &'static str,
}

const OPERATION: &[&str] = &["operation"];

impl Metric {
    pub const ALL: [Metric; 15] = [
        Metric::TasksSucceeded,
        Metric::TasksFailed,
        Metric::TaskLatency,
        Metric::SlowDowns,
        Metric::ServerErrors,
        Metric::ChunksRun,
        Metric::ChunkDuration,
        Metric::ChunksReleased,
        Metric::ChunkQueueDepth,
        Metric::BacklogJobs,
        Metric::JobTransitions,
        Metric::JobsFoundStuck,
        Metric::JobsFailedBySweep,
        Metric::DeadLettersHandled,
        Metric::EventsNotDelivered,
    ];

    pub fn definition(self) -> Definition {
        use Kind::*;
        let (name, kind, unit, dimensions, help): (_, _, _, &'static [&'static str], _) = match self {
            Metric::TasksSucceeded => ("tasks_succeeded", Counter, "Count", OPERATION, "Tasks that succeeded."),
            Metric::TasksFailed => {
                ("tasks_failed", Counter, "Count", OPERATION, "Tasks that failed (after their retries).")
            }
            Metric::TaskLatency => {
                ("task_latency_ms", Histogram, "Milliseconds", OPERATION, "Time of one task, its retries included.")
            }
            Metric::SlowDowns => (
                "slow_downs",
                Counter,
                "Count",
                OPERATION,
                "Throttling answers (SlowDown, 503, 429) seen, retried or not.",
            ),
            Metric::ServerErrors => (
                "server_errors",
                Counter,
                "Count",
                OPERATION,
                "5xx answers other than throttling seen, retried or not.",
            ),
            Metric::ChunksRun => ("chunks_run", Counter, "Count", OPERATION, "Chunks run and recorded."),
            Metric::ChunkDuration => {
                ("chunk_duration_ms", Histogram, "Milliseconds", OPERATION, "Time from a chunk's claim to its record.")
            }
            Metric::ChunksReleased => {
                ("chunks_released", Counter, "Count", &[], "Chunks the dispatcher released to the executors' queue.")
            }
            Metric::ChunkQueueDepth => {
                ("chunk_queue_depth", Gauge, "Count", &[], "Chunk messages queued, as the dispatcher last saw them.")
            }
            Metric::BacklogJobs => (
                "backlog_jobs",
                Gauge,
                "Count",
                &[],
                "Jobs with chunks waiting in their backlog after the last dispatcher round.",
            ),
            Metric::JobTransitions => {
                ("job_transitions", Counter, "Count", &["status"], "Job status changes, by the status moved to.")
            }
            Metric::JobsFoundStuck => (
                "jobs_found_stuck",
                Counter,
                "Count",
                &[],
                "Jobs the sweep found waiting past their bound (it re-issued their step).",
            ),
            Metric::JobsFailedBySweep => {
                ("jobs_failed_by_sweep", Counter, "Count", &[], "Jobs the sweep failed (nothing brought them on).")
            }
            Metric::DeadLettersHandled => {
                ("dead_letters_handled", Counter, "Count", &["queue"], "Dead-lettered messages the sweep handled.")
            }
            Metric::EventsNotDelivered => {
                ("events_not_delivered", Counter, "Count", &[], "Status events that could not be put on the bus.")
            }
        };
        Definition { name, kind, unit, dimensions, help }
    }
}

/// One series: a metric, its dimension values (in the definition's order) and the job it is
/// about (EMF only).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub metric: Metric,
    pub dimensions: Vec<String>,
    pub job: Option<String>,
}

/// A series' value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Counter(f64),
    Gauge(f64),
    Histogram(Histogram),
}

/// Observed values, each rounded up to three significant digits (so a long-running process
/// keeps a bounded map, and a value is at most 1% high), with how often each was seen, and
/// their exact sum.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    pub counts: BTreeMap<u64, u64>,
    pub sum: f64,
}

impl Histogram {
    fn add(&mut self, value: f64, times: u64) {
        *self.counts.entry(bin(value)).or_default() += times;
        self.sum += value.max(0.0) * times as f64;
    }

    /// Merges another's values into this one.
    pub fn merge(&mut self, other: &Histogram) {
        other.counts.iter().for_each(|(v, n)| *self.counts.entry(*v).or_default() += n);
        self.sum += other.sum;
    }
}

/// Three significant digits, rounded up: 7.2 -> 8, 1234 -> 1240, 56789 -> 56800. Up, so a
/// value counts in a Prometheus bucket (a bound of at most three digits) only if it is below
/// the bound.
fn bin(value: f64) -> u64 {
    let v = value.max(0.0).ceil() as u64;
    let mut scale = 1;
    while v / scale >= 1000 {
        scale *= 10;
    }
    v.div_ceil(scale) * scale
}

/// The series recorded so far.
#[derive(Debug, Default)]
pub struct Registry {
    series: Mutex<BTreeMap<Key, Value>>,
    /// Set where the series are never drained (`batchops local`'s scrape): a series per job
    /// would grow with every job run, and Prometheus sums them away anyway.
    without_jobs: AtomicBool,
}

impl Registry {
    /// Records no job from now on (a process whose registry is scraped, never drained).
    pub fn forget_jobs(&self) {
        self.without_jobs.store(true, Ordering::Relaxed);
    }

    fn with(&self, metric: Metric, dimensions: &[&str], job: Option<&JobId>, change: impl FnOnce(&mut Value)) {
        let definition = metric.definition();
        debug_assert_eq!(dimensions.len(), definition.dimensions.len(), "{}", definition.name);
        let job = job.filter(|_| !self.without_jobs.load(Ordering::Relaxed));
        let key = Key {
            metric,
            dimensions: dimensions.iter().map(|d| d.to_string()).collect(),
            job: job.map(|j| j.as_str().to_string()),
        };
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let value = series.entry(key).or_insert_with(|| match definition.kind {
            Kind::Counter => Value::Counter(0.0),
            Kind::Gauge => Value::Gauge(0.0),
            Kind::Histogram => Value::Histogram(Histogram::default()),
        });
        change(value);
    }

    /// Adds `n` to a counter.
    pub fn count(&self, metric: Metric, dimensions: &[&str], job: Option<&JobId>, n: u64) {
        self.with(metric, dimensions, job, |v| {
            if let Value::Counter(c) = v {
                *c += n as f64;
            }
        });
    }

    /// Records one value of a histogram.
    pub fn observe(&self, metric: Metric, dimensions: &[&str], job: Option<&JobId>, value: f64) {
        self.observe_n(metric, dimensions, job, value, 1);
    }

    /// Records a value of a histogram `times` times (the tasks of one batch request).
    pub fn observe_n(&self, metric: Metric, dimensions: &[&str], job: Option<&JobId>, value: f64, times: u64) {
        self.with(metric, dimensions, job, |v| {
            if let Value::Histogram(h) = v {
                h.add(value, times);
            }
        });
    }

    /// Sets a gauge.
    pub fn gauge(&self, metric: Metric, dimensions: &[&str], value: f64) {
        self.with(metric, dimensions, None, |v| {
            if let Value::Gauge(g) = v {
                *g = value;
            }
        });
    }

    /// Every series, as they stand.
    pub fn snapshot(&self) -> BTreeMap<Key, Value> {
        self.series.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every series, emptied: what was recorded since the last call.
    pub fn take(&self) -> BTreeMap<Key, Value> {
        std::mem::take(&mut *self.series.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The process's registry.
pub fn global() -> &'static Registry {
    static GLOBAL: OnceLock<Registry> = OnceLock::new();
    GLOBAL.get_or_init(Registry::default)
}

/// Adds `n` to a counter of the process's registry.
pub fn count(metric: Metric, dimensions: &[&str], job: Option<&JobId>, n: u64) {
    global().count(metric, dimensions, job, n);
}

/// Records one value of a histogram of the process's registry.
pub fn observe(metric: Metric, dimensions: &[&str], job: Option<&JobId>, value: f64) {
    global().observe(metric, dimensions, job, value);
}

/// Records a value of a histogram of the process's registry `times` times.
pub fn observe_n(metric: Metric, dimensions: &[&str], job: Option<&JobId>, value: f64, times: u64) {
    global().observe_n(metric, dimensions, job, value, times);
}

/// Sets a gauge of the process's registry.
pub fn gauge(metric: Metric, dimensions: &[&str], value: f64) {
    global().gauge(metric, dimensions, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_kept_to_three_significant_digits_rounded_up() {
        assert_eq!([0.0, 0.2, 7.0, 999.4, 1000.0, 1234.0, 56789.0].map(bin), [0, 1, 7, 1000, 1000, 1240, 56800]);
        let mut h = Histogram::default();
        h.add(1040.5, 2);
        assert_eq!((h.counts.get(&1050), h.sum), (Some(&2), 2081.0), "the sum is exact");
    }

    #[test]
    fn names_are_unique_and_valid_in_both_formats() {
        let names: std::collections::HashSet<_> = Metric::ALL.iter().map(|m| m.definition().name).collect();
        assert_eq!(names.len(), Metric::ALL.len());
        for name in names {
            // Prometheus' metric name grammar, which CloudWatch accepts as is.
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{name}");
        }
    }

    #[test]
    fn take_empties_what_snapshot_keeps() {
        let registry = Registry::default();
        let job = JobId::parse("job-1").unwrap();
        registry.count(Metric::TasksSucceeded, &["S3PutObjectTagging"], Some(&job), 3);
        registry.count(Metric::TasksSucceeded, &["S3PutObjectTagging"], Some(&job), 2);
        registry.observe(Metric::TaskLatency, &["S3PutObjectTagging"], Some(&job), 12.0);
        assert_eq!(registry.snapshot().len(), 2);
        let taken = registry.take();
        let key = Key {
            metric: Metric::TasksSucceeded,
            dimensions: vec!["S3PutObjectTagging".into()],
            job: Some("job-1".into()),
        };
        assert_eq!(taken[&key], Value::Counter(5.0));
        assert!(registry.snapshot().is_empty());
        registry.forget_jobs();
        registry.count(Metric::TasksSucceeded, &["S3PutObjectTagging"], Some(&job), 1);
        registry.count(Metric::TasksSucceeded, &["S3PutObjectTagging"], Some(&JobId::parse("job-2").unwrap()), 1);
        let kept = registry.snapshot();
        assert_eq!(kept.len(), 1, "one series for every job: {kept:?}");
        assert!(kept.keys().all(|k| k.job.is_none()));
    }
}
