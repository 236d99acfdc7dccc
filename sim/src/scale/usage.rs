//! What a scale run measured: a sample a minute of each modelled resource, their use in the
//! steady part of the run, the one that binds, the projection to larger jobs, and the
//! executor's Lambda bill.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::time::Duration;

use batchops_core::job::Job;

use super::aws::{self, Item, Used};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub tasks: u64,
    /// Distinct first key segments (S3 partitions prefixes on them here); the manifest lists
    /// the keys sorted, as S3 Inventory and listings do, so a prefix's keys are together.
    pub prefixes: u64,
    /// `ExecutorMaxConcurrency` (the template's default unless given).
    pub executors: usize,
    pub task_concurrency: usize,
    pub chunk_size: u64,
    /// The executor's CPU time per task on one core (measured by `make bench`).
    pub cpu_per_task: Duration,
    /// The executor's memory (its share of a vCPU follows).
    pub executor_mb: f64,
    pub seed: u64,
    /// How often the resources are sampled.
    pub sample: Duration,
}

/// The report against the manifest: every line once, by count and digest.
#[derive(Clone, Debug, Default)]
pub struct Checked {
    pub rows: u64,
    pub succeeded_rows: u64,
    pub failed_rows: u64,
    pub result_files: usize,
    /// Empty when the report is exact.
    pub problems: Vec<String>,
}

/// One minute of the run.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Since the job was created.
    pub at: Duration,
    pub status: String,
    /// Tasks run so far.
    pub tasks: u64,
    pub tasks_per_sec: f64,
    pub executors: usize,
    pub executor_cap: usize,
    pub requests_per_sec: f64,
    pub slowdowns: u64,
    pub busiest_prefix_per_sec: f64,
    pub prefixes: usize,
    pub job_item_wcu: f64,
    pub job_item_rcu: f64,
    pub job_item_waits: u64,
    pub runnable_wcu: f64,
    pub lock_wcu: f64,
    pub job_item_conflicts: u64,
    pub chunk_queue: usize,
    pub task_concurrency: usize,
}

/// The mean S3 request time an executor's task slot is held for (Little's law).
fn slot_secs(opts: &Options) -> f64 {
    aws::mid_secs(aws::S3_LATENCY_MS) + opts.cpu_per_task.as_secs_f64() / aws::vcpu_share(opts.executor_mb)
}

/// Each modelled resource's use in one sample, as a fraction of its limit: (name, use).
fn uses(s: &Sample, opts: &Options) -> Vec<(String, f64)> {
    let slots = (s.executors * s.task_concurrency) as f64;
    let slots_busy = if slots > 0.0 { s.requests_per_sec * slot_secs(opts) / slots } else { 0.0 };
    vec![
        (
            format!("Lambda executors (ExecutorMaxConcurrency {})", s.executor_cap),
            s.executors as f64 / s.executor_cap as f64,
        ),
        (format!("task slots of the running executors (TaskConcurrency {})", s.task_concurrency), slots_busy),
        ("DynamoDB job item writes (1,000 WCU/s)".into(), s.job_item_wcu / aws::DYNAMODB_PARTITION_WCU),
        ("DynamoDB job item reads (3,000 RCU/s)".into(), s.job_item_rcu / aws::DYNAMODB_PARTITION_RCU),
        ("DynamoDB runnable-jobs item writes (1,000 WCU/s)".into(), s.runnable_wcu / aws::DYNAMODB_PARTITION_WCU),
        ("DynamoDB dispatcher lock item writes (1,000 WCU/s)".into(), s.lock_wcu / aws::DYNAMODB_PARTITION_WCU),
        ("S3 busiest prefix (3,500 writes/s)".into(), s.busiest_prefix_per_sec / aws::S3_PREFIX_WRITES),
        ("SQS chunk queue messages (120,000 in flight)".into(), s.chunk_queue as f64 / aws::SQS_IN_FLIGHT),
        (
            format!("Lambda account concurrency ({})", aws::LAMBDA_ACCOUNT_CONCURRENCY),
            s.executors as f64 / aws::LAMBDA_ACCOUNT_CONCURRENCY as f64,
        ),
    ]
}

/// The whole run.
#[derive(Debug)]
pub struct Summary {
    pub opts: Options,
    pub status: String,
    /// Created to ended, virtual.
    pub duration: Duration,
    pub samples: Vec<Sample>,
    pub checked: Checked,
    /// Per resource: (mean, highest) use in the steady minutes.
    pub steady_use: Vec<(String, f64, f64)>,
    pub steady_rate: f64,
    /// Minutes from creation to the first task, and from the last task to the end.
    pub head: Duration,
    pub tail: Duration,
    pub busy: BTreeMap<&'static str, Duration>,
    pub dynamo: HashMap<Item, Used>,
    pub s3_requests: BTreeMap<&'static str, u64>,
    pub manifest_bytes: u64,
    pub wall: Duration,
}

/// When the job's first task ran and when all had, since its creation (to the second).
#[derive(Clone, Copy, Debug, Default)]
pub struct Marks {
    pub first_task: Option<Duration>,
    pub all_ran: Option<Duration>,
}

/// What the run measured besides the samples.
pub struct Measured {
    pub marks: Marks,
    pub checked: Checked,
    pub busy: BTreeMap<&'static str, Duration>,
    pub dynamo: HashMap<Item, Used>,
    /// The manifest's and the report's S3 requests, by name.
    pub s3_requests: BTreeMap<&'static str, u64>,
    pub manifest_bytes: u64,
    pub wall: Duration,
}

impl Summary {
    pub fn new(opts: &Options, job: &Job, samples: Vec<Sample>, m: Measured) -> Summary {
        let Measured { marks, checked, busy, dynamo, s3_requests, manifest_bytes, wall } = m;
        let ended = job.terminated.unwrap_or(job.created);
        let duration = Duration::try_from(ended - job.created).unwrap_or_default();
        let first = samples.iter().position(|s| s.tasks > 0).unwrap_or(0);
        let last = samples.iter().position(|s| s.tasks >= opts.tasks).unwrap_or(samples.len().saturating_sub(1));
        // The steady samples: past the first two of running, and before the one in which the
        // executors ran down (the last before all tasks had run).
        let steady: Vec<&Sample> = match samples.get(first + 2..last.saturating_sub(1)) {
            Some(s) if !s.is_empty() => s.iter().collect(),
            _ => samples.get(first..=last).map(|s| s.iter().collect()).unwrap_or_default(),
        };
        let n = steady.len().max(1) as f64;
        let steady_rate = steady.iter().map(|s| s.tasks_per_sec).sum::<f64>() / n;
        let mut steady_use: Vec<(String, f64, f64)> = Vec::new();
        for s in &steady {
            for (i, (name, u)) in uses(s, opts).into_iter().enumerate() {
                match steady_use.get_mut(i) {
                    Some(e) => {
                        e.1 += u / n;
                        e.2 = e.2.max(u);
                    }
                    None => steady_use.push((name, u / n, u)),
                }
            }
        }
        let head = marks.first_task.unwrap_or_default();
        let tail = duration.saturating_sub(marks.all_ran.unwrap_or(duration));
        Summary {
            opts: opts.clone(),
            status: job.status.to_string(),
            duration,
            samples,
            checked,
            steady_use,
            steady_rate,
            head,
            tail,
            busy,
            dynamo,
            s3_requests,
            manifest_bytes,
            wall,
        }
    }

    /// The resource nearest its limit in the steady minutes, and how near. The executors are
    /// at their cap whenever chunks wait, so they bind only when no limit that grows with the
    /// rate (the first two entries are the executors and their task slots) is at 95% or more.
    pub fn binding(&self) -> (String, f64) {
        let by_use = |a: &&(String, f64, f64), b: &&(String, f64, f64)| a.1.total_cmp(&b.1);
        let others = self.steady_use.iter().skip(2).max_by(by_use).filter(|(_, mean, _)| *mean >= 0.95);
        let best = others.or_else(|| self.steady_use.iter().max_by(by_use));
        best.map(|(name, mean, _)| (name.clone(), *mean)).unwrap_or_default()
    }

    /// How long `tasks` would take: this run's duration, the tasks beyond its own at the
    /// steady rate, and the tail (the report's merges, which grow with the rows) grown by size.
    /// The ramp and the first chunks are in the duration once.
    pub fn projected(&self, tasks: u64) -> Duration {
        let scale = tasks as f64 / self.opts.tasks.max(1) as f64;
        let more = tasks.saturating_sub(self.opts.tasks) as f64 / self.steady_rate.max(1.0);
        self.duration + Duration::from_secs_f64(more) + self.tail.mul_f64((scale - 1.0).max(0.0))
    }

    /// The executor's Lambda compute: GB-seconds and dollars per million tasks.
    pub fn executor_compute(&self) -> (f64, f64) {
        let secs = self.busy.get("task-executor").copied().unwrap_or_default().as_secs_f64();
        let gb_s = secs * self.opts.executor_mb / 1024.0 / self.opts.tasks.max(1) as f64 * 1e6;
        (gb_s, gb_s * LAMBDA_GB_SECOND_USD)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let o = &self.opts;
        let _ = writeln!(
            out,
            "sim-scale: {} copy tasks over {} prefixes (keys sorted), chunks of {}, ExecutorMaxConcurrency {}, \
             TaskConcurrency {}, executor {} MB, CPU {:.0} us per task; seed {}",
            o.tasks,
            o.prefixes,
            o.chunk_size,
            o.executors,
            o.task_concurrency,
            o.executor_mb,
            o.cpu_per_task.as_secs_f64() * 1e6,
            o.seed
        );
        let _ = writeln!(
            out,
            "job {} in {} of virtual time ({:.0} s of this machine's); first task after {}, report after the last task {}",
            self.status,
            hms(self.duration),
            self.wall.as_secs_f64(),
            hms(self.head),
            hms(self.tail)
        );
        let c = &self.checked;
        let verdict = if c.problems.is_empty() { "exact".to_string() } else { format!("NOT EXACT: {:?}", c.problems) };
        let _ = writeln!(
            out,
            "report {verdict}: {} rows ({} succeeded, {} failed) in {} result files, each manifest line once by count and digest",
            c.rows, c.succeeded_rows, c.failed_rows, c.result_files
        );
        let _ = writeln!(out, "steady rate {:.0} tasks/s\n", self.steady_rate);
        out.push_str(&self.table());
        let _ = writeln!(out, "\nuse in the steady minutes (mean, highest) of each modelled limit:");
        for (name, mean, max) in &self.steady_use {
            let _ = writeln!(out, "  {:>5.1}% {:>6.1}%  {name}", mean * 100.0, max * 100.0);
        }
        let (name, u) = self.binding();
        let _ = writeln!(out, "binding limit: {name} at {:.0}%", u * 100.0);
        let _ = writeln!(out, "where each limit that grows with the rate would bind (steady rate over its use):");
        // The queue's depth and the executors' count are set, not driven by the rate.
        let grows = |name: &str| name.starts_with("DynamoDB") || name.starts_with("S3");
        for (name, mean, _) in self.steady_use.iter().filter(|(name, mean, _)| grows(name) && *mean > 0.0) {
            let _ = writeln!(out, "  {:>12.0} tasks/s  {name}", self.steady_rate / mean);
        }
        let (gb_s, usd) = self.executor_compute();
        let _ = writeln!(
            out,
            "executor compute: {gb_s:.0} GB-s per million tasks (${usd:.4} at ${LAMBDA_GB_SECOND_USD_PER_MILLION}/million GB-s)"
        );
        let job = self.dynamo.get(&Item::Job).copied().unwrap_or_default();
        let _ = writeln!(
            out,
            "DynamoDB job item: {:.0} WCU and {:.0} RCU in all ({:.1} WCU per chunk); {} requests waited their turn; \
             {} transactions conflicted and were tried again",
            job.wcu,
            job.rcu,
            job.wcu * o.chunk_size as f64 / o.tasks.max(1) as f64,
            job.throttled,
            job.conflicts
        );
        let _ = writeln!(
            out,
            "\nprojection (this run, the tasks beyond at the steady rate, the tail grown with the rows):"
        );
        for tasks in [o.tasks, 1_000_000_000, 20_000_000_000] {
            let _ = writeln!(out, "  {:>14} tasks: {}", thousands(tasks), hms(self.projected(tasks)));
        }
        out
    }

    /// The samples, at most about 30 rows.
    fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| time | status | tasks run | tasks/s | executors | task slots | job item WCU/s | RCU/s | conflicts | busiest prefix/s | prefixes | SlowDowns | chunk queue |"
        );
        let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let every = self.samples.len().div_ceil(30).max(1);
        for (i, s) in self.samples.iter().enumerate() {
            if i % every != 0 && i + 1 != self.samples.len() {
                continue;
            }
            let slots = uses(s, &self.opts)[1].1;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {} | {:.0}% | {:.0} | {:.0} | {} | {:.0} | {} | {} | {} |",
                hms(s.at),
                s.status,
                thousands(s.tasks),
                s.tasks_per_sec,
                s.executors,
                slots * 100.0,
                s.job_item_wcu,
                s.job_item_rcu,
                s.job_item_conflicts,
                s.busiest_prefix_per_sec,
                s.prefixes,
                s.slowdowns,
                s.chunk_queue
            );
        }
        out
    }
}

/// Lambda arm64 compute, us-east-1 list price (aws.amazon.com/lambda/pricing, as `make cost`).
const LAMBDA_GB_SECOND_USD_PER_MILLION: f64 = 13.3334;
const LAMBDA_GB_SECOND_USD: f64 = LAMBDA_GB_SECOND_USD_PER_MILLION / 1e6;

pub fn hms(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
