//! `make sim-scale`: one copy job of many tasks (10^8 by default) through the real intake,
//! chunker, dispatcher, executor and finalizer, against AWS as [`aws`] models it from
//! published figures, in virtual time. It checks the report (every manifest line once, by
//! count and a digest, never stored), samples how busy each modelled resource is every
//! minute, names the one that binds, and projects the run to larger jobs ([`usage`]).

pub mod aws;
pub mod usage;

use std::sync::Arc;
use std::time::Duration;

use batchops_core::events::NoEvents;
use batchops_core::job::{Job, JobId};
use batchops_core::memory::{InMemoryJobStore, InMemoryObjectStore, InMemoryRoles};
use batchops_core::pipeline::dispatcher::{depth_for, Dispatcher};
use batchops_core::pipeline::intake::Caller;
use batchops_core::pipeline::{Settings, StagePorts};
use batchops_core::ports::JobRecords;
use serde_json::json;
use tokio::time::Instant;

use crate::dynamo::FlakyStore;
use crate::lambda::{Fleet, Function, Invocations, Mapping};
use crate::limits::Limits;
use crate::rng::Rng;
use crate::sqs::SimQueue;
use crate::world::{chunker_handler, executor_handler, finalizer_handler, timer, Stages, World};
use batchops_core::pipeline::Executor;
pub use usage::{Checked, Options};
use usage::{Marks, Measured, Sample, Summary};

/// How long a job may run before the simulation gives up on it.
const HORIZON: Duration = Duration::from_secs(7 * 24 * 3600);

/// The concurrency the chunker and finalizer functions scale to (no cap in the template: the
/// account's).
const UNCAPPED: usize = aws::LAMBDA_ACCOUNT_CONCURRENCY;

/// Everything the run is made of.
struct Scale {
    store: Arc<InMemoryJobStore>,
    dynamo: Arc<aws::Dynamo>,
    objects: Arc<aws::Objects>,
    s3: Arc<aws::S3>,
    chunks: Arc<SimQueue>,
    executor: Arc<Function>,
    functions: Vec<Arc<Function>>,
    control: Arc<SimQueue>,
    intake: Arc<batchops_core::pipeline::Intake>,
    invocations: Arc<Invocations>,
}

/// Runs the job to its end on a paused clock and reports it.
pub fn run(opts: &Options, limits: &Limits) -> anyhow::Result<Summary> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?;
    rt.block_on(play(opts, limits))
}

/// Ends the simulated clock however the run ends (an error returns early).
struct Simulating;

impl Drop for Simulating {
    fn drop(&mut self) {
        batchops_core::clock::stop_simulating();
    }
}

async fn play(opts: &Options, limits: &Limits) -> anyhow::Result<Summary> {
    batchops_core::clock::simulate(crate::EPOCH, opts.seed);
    let _simulating = Simulating;
    batchops_core::metrics::global().take();
    let rng = Rng::new(opts.seed);
    let started = std::time::Instant::now();
    let inner = Arc::new(InMemoryObjectStore::default());
    let (manifest_etag, manifest_bytes) = write_manifest(&inner, opts);
    let s = build(opts, limits, &rng, inner.clone());
    let mut background: Vec<tokio::task::JoinHandle<()>> =
        s.functions.iter().map(|f| tokio::spawn(f.clone().run(rng.clone(), s.invocations.clone()))).collect();
    background.push(tokio::spawn(timer(s.control.clone())));
    let begin = Instant::now();
    let id = create(&s, opts, &manifest_etag).await?;
    let job = s.store.get(&id).await?;
    // The job item as the adapter writes it: the job's JSON and about 300 bytes of keys,
    // status, counters and index attributes (our estimate of the attributes beside `body`).
    s.dynamo.job_bytes.store(serde_json::to_vec(&job)?.len() as u64 + 300, std::sync::atomic::Ordering::Relaxed);
    let (end, samples, marks) = watch(&s, opts, &id, begin).await?;
    for task in background {
        task.abort();
    }
    let measured = Measured {
        marks,
        checked: check(&inner, &end, opts),
        busy: s.invocations.busy.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        dynamo: s.dynamo.totals(),
        s3_requests: s.objects.counts.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        manifest_bytes,
        wall: started.elapsed(),
    };
    Ok(Summary::new(opts, &end, samples, measured))
}

/// Reads the job every second until it ends: a sample of the resources every `opts.sample`,
/// and when its first task and its last ran (to the second).
async fn watch(s: &Scale, opts: &Options, id: &JobId, begin: Instant) -> anyhow::Result<(Job, Vec<Sample>, Marks)> {
    const TICK: Duration = Duration::from_secs(1);
    let (mut samples, mut marks, mut last) = (Vec::new(), Marks::default(), 0u64);
    let mut next_sample = begin + opts.sample;
    loop {
        tokio::time::sleep(TICK).await;
        let job = s.store.get(id).await?;
        let run = job.progress.tasks_run();
        if run > 0 && marks.first_task.is_none() {
            marks.first_task = Some(begin.elapsed());
        }
        if run >= opts.tasks && marks.all_ran.is_none() {
            marks.all_ran = Some(begin.elapsed());
        }
        let ended = job.status.is_terminal() || begin.elapsed() > HORIZON;
        if Instant::now() >= next_sample || ended {
            let taken = sample(s, opts, &job, begin, &mut last);
            // A long run says how far it is (virtual time, tasks run).
            eprintln!("sim-scale: {} {} tasks run, {:.0}/s", usage::hms(taken.at), taken.tasks, taken.tasks_per_sec);
            samples.push(taken);
            next_sample += opts.sample;
        }
        if ended {
            return Ok((job, samples, marks));
        }
    }
}

/// The manifest: `src,p<prefix>/<n>` for `tasks` keys sorted, `prefixes` first segments.
/// Returns its ETag and size.
fn write_manifest(objects: &InMemoryObjectStore, opts: &Options) -> (String, u64) {
    let per_prefix = opts.tasks.div_ceil(opts.prefixes.max(1));
    let mut body = Vec::with_capacity((opts.tasks * 24) as usize);
    for i in 0..opts.tasks {
        use std::io::Write;
        let _ = writeln!(body, "src,{}", key(i, per_prefix));
    }
    let size = body.len() as u64;
    (objects.insert("manifests", "scale.csv", body), size)
}

/// Task `i`'s key.
fn key(i: u64, per_prefix: u64) -> String {
    format!("p{:05}/{:010}", i / per_prefix, i)
}

fn build(opts: &Options, limits: &Limits, rng: &Rng, inner: Arc<InMemoryObjectStore>) -> Scale {
    let store = Arc::new(InMemoryJobStore::default());
    let dynamo = Arc::new(aws::Dynamo::new(rng.clone()));
    let modelled = Arc::new(FlakyStore::new(store.clone(), rng.clone(), 0.0, 0.0).modelled(dynamo.clone()));
    let objects = Arc::new(aws::Objects::new(inner, rng.clone()));
    let s3 = Arc::new(aws::S3::new(rng.clone(), opts.cpu_per_task, opts.executor_mb));
    let roles = Arc::new(InMemoryRoles::new(objects.clone(), s3.clone()));
    let events = Arc::new(NoEvents);
    let queue = |name, receives| SimQueue::modelled(name, receives, rng.clone(), aws::SQS_MS);
    let control = queue("control", limits.control_receives);
    let chunks = queue("chunks", limits.chunk_receives);
    let finalize = queue("finalize", limits.finalize_receives);
    let dispatcher = Arc::new(Dispatcher {
        store: modelled.clone(),
        events: events.clone(),
        backlog: modelled.clone(),
        chunks: chunks.clone(),
        depth: depth_for(opts.executors as u64),
    });
    let settings =
        Settings { chunk_size: opts.chunk_size, task_concurrency: opts.task_concurrency, ..Settings::default() };
    let executor_settings = Settings { time_budget: limits.executor_budget, ..settings.clone() };
    let ports =
        StagePorts { store: modelled.clone(), events, roles, finalize: finalize.clone(), settings: settings.clone() };
    let queues = [control.clone(), chunks.clone(), finalize.clone()];
    let Stages { chunker, executor, finalizer, intake } =
        World::stages(ports, &store, &queues, dispatcher, executor_settings);
    // Lambda's pollers long-poll: a message waiting is received within a request's latency
    // (SQS_MS, on `start`); the 20 ms poll is the simulation's own step, not a delay of AWS's.
    let mapping = Mapping {
        poll: Duration::from_millis(20),
        ramp: Some((aws::ESM_FIRST, aws::ESM_PER_MINUTE)),
        start: Some(aws::SQS_MS),
    };
    let fleet = Fleet { lease: settings.lease, crash: 0.0, mapping };
    let function =
        |name, queue, handler, timeout, concurrency| fleet.function(name, queue, handler, timeout, concurrency);
    let chunker_timeout = limits.chunker_timeout;
    let executor = function("task-executor", &chunks, environments(&executor), limits.executor_timeout, opts.executors);
    let functions = vec![
        function("manifest-chunker", &control, chunker_handler(chunker, chunker_timeout), chunker_timeout, UNCAPPED),
        executor.clone(),
        function("report-finalizer", &finalize, finalizer_handler(finalizer), limits.finalizer_timeout, UNCAPPED),
    ];
    Scale { store, dynamo, objects, s3, chunks, executor, functions, control, intake, invocations: Arc::default() }
}

/// The executor as Lambda runs it: each invocation in an execution environment of its own,
/// so with the limits on requests in flight of its own process (one shared executor would
/// share one bucket's cap among all the invocations). Environments are kept warm and reused,
/// as Lambda reuses them, so what a process learned of a bucket's throttling carries on.
fn environments(shared: &Arc<Executor>) -> crate::lambda::Handler {
    let warm: Arc<std::sync::Mutex<Vec<Arc<Executor>>>> = Arc::default();
    let shared = shared.clone();
    Arc::new(move |body, attempt| {
        let (warm, shared) = (warm.clone(), shared.clone());
        Box::pin(async move {
            let taken = warm.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let executor = taken.unwrap_or_else(|| {
                Arc::new(Executor {
                    ports: shared.ports.clone(),
                    shutdown: Default::default(),
                    limits: Default::default(),
                    dispatcher: shared.dispatcher.clone(),
                })
            });
            let result = executor_handler(executor.clone())(body, attempt).await;
            warm.lock().unwrap_or_else(|e| e.into_inner()).push(executor);
            result
        })
    })
}

/// CreateJob: copy every object of the manifest to another bucket, report every task.
async fn create(s: &Scale, opts: &Options, etag: &str) -> anyhow::Result<JobId> {
    let spec = json!({
        "ClientRequestToken": "scale",
        "Priority": 10,
        "RoleArn": "arn:aws:iam::123456789012:role/batch",
        "Operation": {"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::dst"}},
        "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                     "Location": {"ObjectArn": "arn:aws:s3:::manifests/scale.csv", "ETag": etag}},
        "Report": {"Enabled": true, "Bucket": "arn:aws:s3:::reports", "Format": "Report_CSV_20180820",
                   "Prefix": "r", "ReportScope": "AllTasks"},
        "Description": format!("{} copies", opts.tasks),
    });
    Ok(s.intake.create_job(spec.to_string().as_bytes(), Caller::Unknown).await?)
}

/// One minute of the run, as the resources saw it.
fn sample(s: &Scale, opts: &Options, job: &Job, begin: Instant, last: &mut u64) -> Sample {
    use std::sync::atomic::Ordering::Relaxed;
    let done = job.progress.tasks_run();
    let requests = s.s3.requests.swap(0, Relaxed);
    let slowdowns = s.s3.slowdowns.swap(0, Relaxed);
    let (busiest_prefix, prefixes) = s.s3.take_window();
    let used = s.dynamo.take();
    let secs = opts.sample.as_secs_f64();
    let item = |i: aws::Item| used.get(&i).copied().unwrap_or_default();
    let (job_item, runnable, lock) = (item(aws::Item::Job), item(aws::Item::Runnable), item(aws::Item::Lock));
    let out = Sample {
        at: begin.elapsed(),
        status: job.status.to_string(),
        tasks: done,
        tasks_per_sec: done.saturating_sub(*last) as f64 / secs,
        executors: s.executor.running.load(Relaxed),
        executor_cap: opts.executors,
        requests_per_sec: requests as f64 / secs,
        slowdowns,
        busiest_prefix_per_sec: busiest_prefix as f64,
        prefixes,
        job_item_wcu: job_item.wcu / secs,
        job_item_rcu: job_item.rcu / secs,
        job_item_waits: job_item.throttled,
        runnable_wcu: runnable.wcu / secs,
        lock_wcu: lock.wcu / secs,
        job_item_conflicts: job_item.conflicts,
        chunk_queue: s.chunks.len(),
        task_concurrency: opts.task_concurrency,
    };
    *last = done;
    out
}

/// A multiset digest of (bucket, key) lines: the wrapping sum of each line's hash, so order
/// does not matter and a line twice or missing changes it.
fn digest_of(line: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    line.hash(&mut h);
    h.finish()
}

fn check(objects: &InMemoryObjectStore, job: &Job, opts: &Options) -> Checked {
    let mut c = Checked::default();
    if job.status != batchops_core::job::JobStatus::Complete {
        c.problems.push(format!("the job ended {}, not Complete", job.status));
    }
    let per_prefix = opts.tasks.div_ceil(opts.prefixes.max(1));
    let expected = (0..opts.tasks).fold(0u64, |d, i| d.wrapping_add(digest_of(&format!("src,{}", key(i, per_prefix)))));
    let Some(manifest) = objects.get("reports", &format!("r/job-{}/manifest.json", job.id)) else {
        c.problems.push("no report manifest.json".into());
        return c;
    };
    let doc: serde_json::Value = serde_json::from_slice(&manifest).unwrap_or_default();
    let mut digest = 0u64;
    for f in doc["Results"].as_array().cloned().unwrap_or_default() {
        c.result_files += 1;
        let Some(body) = f["Key"].as_str().and_then(|k| objects.get("reports", k)) else {
            c.problems.push(format!("result file {} is missing", f["Key"]));
            continue;
        };
        for line in String::from_utf8_lossy(&body).lines() {
            let mut fields = line.splitn(5, ',');
            let (bucket, key, _version, status) = (fields.next(), fields.next(), fields.next(), fields.next());
            let (Some(bucket), Some(key)) = (bucket, key) else { continue };
            c.rows += 1;
            match status {
                Some("succeeded") => c.succeeded_rows += 1,
                _ => c.failed_rows += 1,
            }
            digest = digest.wrapping_add(digest_of(&format!("{bucket},{key}")));
        }
    }
    let p = &job.progress;
    if c.rows != opts.tasks || digest != expected {
        c.problems.push(format!(
            "{} report rows for {} manifest lines (digests differ: {})",
            c.rows,
            opts.tasks,
            digest != expected
        ));
    }
    if (c.succeeded_rows, c.failed_rows) != (p.succeeded, p.failed) {
        c.problems.push(format!(
            "report rows {} succeeded / {} failed, counters {} / {}",
            c.succeeded_rows, c.failed_rows, p.succeeded, p.failed
        ));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small job end to end: the report is exact, every sample is in order, the binding
    /// limit is named, and a larger job is projected to take longer.
    #[test]
    fn a_small_job_runs_to_an_exact_report_and_is_projected() {
        let limits = Limits::from_template().unwrap();
        let opts = Options {
            tasks: 30_000,
            prefixes: 30,
            executors: 8,
            task_concurrency: 64,
            chunk_size: 1000,
            cpu_per_task: Duration::from_micros(262),
            executor_mb: 1024.0,
            seed: 3,
            sample: Duration::from_secs(2),
        };
        let s = run(&opts, &limits).unwrap();
        assert!(s.checked.problems.is_empty(), "{:?}", s.checked);
        assert_eq!(s.checked.rows, 30_000);
        assert_eq!(s.status, "Complete");
        assert!(s.samples.windows(2).all(|w| w[0].tasks <= w[1].tasks && w[0].at < w[1].at));
        // Eight executors of 64 tasks, each at least 100 ms: at most 5,120 tasks a second.
        assert!(s.steady_rate > 100.0 && s.steady_rate <= 5_120.0, "{}", s.steady_rate);
        let (binding, share) = s.binding();
        assert!(!binding.is_empty() && share > 0.0, "{binding} {share}");
        // The projection is anchored on the run: its own size takes what it took.
        assert_eq!(s.projected(30_000), s.duration);
        assert!(s.projected(1_000_000_000) > s.duration + Duration::from_secs_f64(999_970_000.0 / s.steady_rate) / 2);
        let text = s.render();
        assert!(text.contains("report exact") && text.contains("binding limit"), "{text}");
    }

    /// The digest counts a line twice or missing: the report check relies on it.
    #[test]
    fn the_digest_sees_a_line_twice() {
        let lines = ["src,p0/1", "src,p0/2"];
        let once = lines.iter().fold(0u64, |d, l| d.wrapping_add(digest_of(l)));
        let twice = once.wrapping_add(digest_of(lines[0]));
        let swapped = lines.iter().rev().fold(0u64, |d, l| d.wrapping_add(digest_of(l)));
        assert_eq!(once, swapped);
        assert_ne!(once, twice);
    }
}
