//! One run: the real intake, chunker, dispatcher, executor, finalizer and sweep over the
//! in-memory job store and object store, the SQS and Lambda models, and an S3 model for the
//! tasks, with the jobs, the faults and every timing drawn from one seed. At the end it checks
//! what batchops promises: every job ended, report rows = counters = tasks that ran, no row
//! twice, nothing ran after its job ended.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use batchops_core::chunk::{ChunkMessage, ControlMessage, FinalizeMessage};
use batchops_core::events::NoEvents;
use batchops_core::job::{Job, JobId, JobStatus};
use batchops_core::memory::{InMemoryJobStore, InMemoryObjectStore, InMemoryRoles};
use batchops_core::ops::{Operation, Task};
use batchops_core::pipeline::dead_letters::DeadLetterQueues;
use batchops_core::pipeline::dispatcher::{depth_for, Dispatcher};
use batchops_core::pipeline::intake::Caller;
use batchops_core::pipeline::{Chunker, Executor, Finalizer, Intake, Settings, StagePorts};
use batchops_core::ports::{JobRecords, OperationRunner};
use batchops_core::retry::{Outcome, TaskFailure};
use serde_json::json;
use tokio::time::Instant;

use crate::dynamo::FlakyStore;
use crate::lambda::{Fleet, Function, Handler, Invocations};
use crate::limits::Limits;
use crate::rng::Rng;
use crate::sqs::{SendFaults, SimQueue};

/// One task as the simulated S3 saw it start.
#[derive(Clone, Debug)]
struct Run {
    job: String,
    key: String,
    invocation: Option<u64>,
    at: jiff::Timestamp,
}

/// S3 answering the operation: a latency, SlowDown now and then and above a request rate per
/// prefix (S3 takes 3,500 writes a second per prefix and sheds the rest; here a world's rate,
/// 50-3,500, over a job's first key segment), 404 for missing keys, and tasks that take
/// minutes (keys named `slow`). Every start is noted.
struct SimS3 {
    rng: Rng,
    slowdown: f64,
    prefix_rate: f64,
    /// Per prefix: the requests it may still take now (a tenth of a second's at most), and when.
    buckets: Mutex<std::collections::HashMap<String, (f64, tokio::time::Instant)>>,
    runs: Mutex<Vec<Run>>,
}

impl SimS3 {
    /// True when the key's prefix has used its rate.
    fn over_rate(&self, key: &str) -> bool {
        let prefix = key.split('/').next().unwrap_or_default().to_string();
        let now = tokio::time::Instant::now();
        let burst = (self.prefix_rate / 10.0).max(1.0);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, at) = buckets.entry(prefix).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.prefix_rate).min(burst);
        *at = now;
        if *tokens < 1.0 {
            return true;
        }
        *tokens -= 1.0;
        false
    }
}

#[async_trait]
impl OperationRunner for SimS3 {
    async fn run(&self, _op: &Operation, task: &Task) -> Outcome {
        let key = task.target.key.clone();
        let run = Run {
            job: task.job_id.clone(),
            key: key.clone(),
            invocation: crate::lambda::invocation(),
            at: batchops_core::clock::now(),
        };
        self.runs.lock().unwrap_or_else(|e| e.into_inner()).push(run);
        let latency = if key.contains("slow") { self.rng.millis(20_000, 150_000) } else { self.rng.millis(5, 400) };
        tokio::time::sleep(latency).await;
        if key.contains("missing") {
            Outcome::Failed(TaskFailure::classify(404, "NoSuchKey", "The specified key does not exist."))
        } else if self.over_rate(&key) || self.rng.chance(self.slowdown) {
            Outcome::Failed(TaskFailure::classify(503, "SlowDown", "Please reduce your request rate."))
        } else {
            Outcome::Succeeded { message: "Successful".into() }
        }
    }
}

/// A job the scenario creates, and what it does to it.
#[derive(Clone, Debug)]
struct Plan {
    name: String,
    at: Duration,
    keys: Vec<String>,
    priority: u64,
    confirm: Option<Duration>,
    rate: Option<u64>,
    cancel: Option<Duration>,
    reprioritize: Option<Duration>,
    manifest: ManifestKind,
}

/// Where a job's tasks come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ManifestKind {
    Csv,
    /// An S3 Inventory report of this many files.
    Inventory(u64),
    /// A `ManifestGenerator` listing the job's keys (their objects put in the bucket first).
    Generator,
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub violations: Vec<String>,
    pub jobs: usize,
    pub tasks: u64,
    /// The longest a job took from creation to its end.
    pub longest: Duration,
    pub ended: BTreeMap<String, usize>,
    pub failures: BTreeMap<String, usize>,
    pub crashes: u64,
    pub timeouts: u64,
    pub invocations: u64,
    pub lost_messages: u64,
    pub dead_letters: usize,
    pub chunks_split: u64,
    /// A digest of everything the run decided: the same seed gives the same digest.
    pub digest: u64,
    /// The jobs' histories, for a failing run's trace.
    pub trace: Vec<String>,
}

/// How long the simulation lets the jobs run before it calls a job that has not ended hung.
const HORIZON: Duration = Duration::from_secs(12 * 3600);

/// The simulated Unix time at which every run begins.
pub const EPOCH: Duration = Duration::from_secs(1_800_000_000);

/// Runs one seed to its end (in virtual time) and checks it.
pub async fn run(seed: u64, limits: &Limits) -> Report {
    batchops_core::clock::simulate(EPOCH, seed);
    // The metrics of this run only (seeds run one after another; `check` compares them).
    batchops_core::metrics::global().take();
    let rng = Rng::new(seed);
    let world = World::build(&rng, limits);
    let plans = scenario(&rng);
    if std::env::var_os("SIM_PLANS").is_some() {
        for p in &plans {
            eprintln!(
                "plan {} at {:?}: {} tasks, priority {}, confirm {:?}, rate {:?}, cancel {:?}, reprioritize {:?}",
                p.name,
                p.at,
                p.keys.len(),
                p.priority,
                p.confirm,
                p.rate,
                p.cancel,
                p.reprioritize
            );
        }
    }
    let jobs: Arc<Mutex<Vec<(Plan, JobId)>>> = Arc::default();
    let mut background = Vec::new();
    for f in world.functions.iter().cloned() {
        background.push(tokio::spawn(f.run(rng.clone(), world.invocations.clone())));
    }
    background.push(tokio::spawn(timer(world.control.clone())));
    for plan in plans.iter().cloned() {
        let parts = Parts { intake: world.intake.clone(), store: world.store.clone(), objects: world.objects.clone() };
        background.push(tokio::spawn(drive(plan, parts, rng.clone(), jobs.clone())));
    }
    let start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let created = jobs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut all_ended = created.len() == plans.len();
        for (_, id) in &created {
            all_ended &= world.store.get(id).await.map(|j| j.status.is_terminal()).unwrap_or(false);
        }
        if all_ended || start.elapsed() > HORIZON {
            break;
        }
    }
    for task in background {
        task.abort();
    }
    let created = jobs.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let report = world.check(seed, &created).await;
    batchops_core::clock::stop_simulating();
    report
}

/// Everything one run is made of.
pub(crate) struct World {
    store: Arc<InMemoryJobStore>,
    objects: Arc<InMemoryObjectStore>,
    s3: Arc<SimS3>,
    intake: Arc<Intake>,
    control: Arc<SimQueue>,
    queues: Vec<Arc<SimQueue>>,
    functions: Vec<Arc<Function>>,
    invocations: Arc<Invocations>,
}

impl World {
    /// What SQS loses, duplicates and fails of the messages sent, and how often a function's
    /// invocation crashes.
    fn message_faults(rng: &Rng) -> (SendFaults, f64) {
        let faults = SendFaults {
            lost: if rng.chance(0.5) { 0.0 } else { rng.between(1, 30) as f64 / 1000.0 },
            duplicated: rng.between(0, 50) as f64 / 1000.0,
            failed: if rng.chance(0.5) { 0.0 } else { rng.between(1, 50) as f64 / 1000.0 },
        };
        let crash = if rng.chance(0.3) { 0.0 } else { rng.between(1, 150) as f64 / 1000.0 };
        (faults, crash)
    }

    /// DynamoDB over `store`: throttling per attempt (up to 40%, bursts of a hot partition)
    /// and answers lost after the write applied (up to 1%), in most worlds.
    fn flaky_store(rng: &Rng, store: &Arc<InMemoryJobStore>) -> Arc<FlakyStore> {
        let (throttled, lost) = if rng.chance(0.3) {
            (0.0, 0.0)
        } else {
            (rng.between(0, 400) as f64 / 1000.0, rng.between(0, 10) as f64 / 1000.0)
        };
        Arc::new(FlakyStore::new(store.clone(), rng.clone(), throttled, lost))
    }

    /// S3's answers to tasks: SlowDown, and a request rate per prefix.
    fn s3(rng: &Rng) -> Arc<SimS3> {
        Arc::new(SimS3 {
            rng: rng.clone(),
            slowdown: rng.between(0, 150) as f64 / 1000.0,
            prefix_rate: rng.between(50, 3_500) as f64,
            buckets: Mutex::default(),
            runs: Mutex::default(),
        })
    }

    /// The four stages over `ports`, the executor with its own settings; the intake's own
    /// calls go to the store directly (see `FlakyStore`). `queues`: control, chunks, finalize.
    pub(crate) fn stages(
        ports: StagePorts,
        store: &Arc<InMemoryJobStore>,
        queues: &[Arc<SimQueue>; 3],
        dispatcher: Arc<Dispatcher>,
        executor_settings: Settings,
    ) -> Stages {
        let [control, chunks, finalize] = queues;
        let dead_letters = DeadLetterQueues {
            chunks: Some(chunks.clone()),
            control: Some(control.clone()),
            finalize: Some(finalize.clone()),
        };
        let chunker =
            Chunker { ports: ports.clone(), control: control.clone(), dispatcher: dispatcher.clone(), dead_letters };
        let executor = Executor {
            ports: StagePorts { settings: executor_settings, ..ports.clone() },
            shutdown: Default::default(),
            limits: Default::default(),
            dispatcher,
        };
        Stages {
            chunker: Arc::new(chunker),
            executor: Arc::new(executor),
            finalizer: Arc::new(Finalizer { ports: ports.clone() }),
            intake: Arc::new(Intake {
                ports: StagePorts { store: store.clone(), ..ports },
                control: control.clone(),
                pass_role: None,
            }),
        }
    }

    fn build(rng: &Rng, limits: &Limits) -> World {
        // Drawn in this order, so a seed makes the same world as before.
        let (faults, crash) = World::message_faults(rng);
        let store = Arc::new(InMemoryJobStore::default());
        let flaky = World::flaky_store(rng, &store);
        let objects = Arc::new(InMemoryObjectStore::default());
        let s3 = World::s3(rng);
        let roles = Arc::new(InMemoryRoles::new(objects.clone(), s3.clone()));
        let events = Arc::new(NoEvents);
        let control = SimQueue::new("control", limits.control_receives, faults, rng.clone());
        let chunks = SimQueue::new("chunks", limits.chunk_receives, faults, rng.clone());
        let finalize = SimQueue::new("finalize", limits.finalize_receives, faults, rng.clone());
        // Far fewer executors than the template's default, so jobs contend and pause.
        let executors = rng.between(2, 16) as usize;
        let dispatcher = Arc::new(Dispatcher {
            store: flaky.clone(),
            events: events.clone(),
            backlog: flaky.clone(),
            chunks: chunks.clone(),
            depth: depth_for(executors as u64),
        });
        // Half the worlds report in a few segments, so merges meet the faults too.
        let report_segments = if rng.chance(0.5) { rng.between(1, 8) } else { Settings::default().report_segments };
        let settings = Settings { chunk_size: rng.between(10, 400), report_segments, ..Settings::default() };
        let executor_settings = Settings { time_budget: limits.executor_budget, ..settings.clone() };
        let ports = StagePorts {
            store: flaky.clone(),
            events: events.clone(),
            roles: roles.clone(),
            finalize: finalize.clone(),
            settings: settings.clone(),
        };
        let queues = [control.clone(), chunks.clone(), finalize.clone()];
        let Stages { chunker, executor, finalizer, intake } =
            World::stages(ports, &store, &queues, dispatcher, executor_settings);
        let fleet = Fleet { lease: settings.lease, crash, mapping: Default::default() };
        let function =
            |name, queue, handler, timeout, concurrency| fleet.function(name, queue, handler, timeout, concurrency);
        let chunker_timeout = limits.chunker_timeout;
        let functions = vec![
            function("manifest-chunker", &control, chunker_handler(chunker, chunker_timeout), chunker_timeout, 4),
            function("task-executor", &chunks, executor_handler(executor), limits.executor_timeout, executors),
            function("report-finalizer", &finalize, finalizer_handler(finalizer), limits.finalizer_timeout, 4),
        ];
        World { store, objects, s3, intake, control, queues: queues.to_vec(), functions, invocations: Arc::default() }
    }
}

/// The margin the chunker function keeps before its deadline (as `manifest-chunker` does).
const DEADLINE_MARGIN: Duration = Duration::from_secs(30);

pub(crate) fn chunker_handler(chunker: Arc<Chunker>, timeout: Duration) -> Handler {
    Arc::new(move |body, _| {
        let chunker = chunker.clone();
        Box::pin(async move {
            let msg: ControlMessage = serde_json::from_str(&body)
                .map_err(|e| batchops_core::Error::field("control message", format!("unreadable: {e}")))?;
            chunker.handle(msg, Instant::now() + timeout.saturating_sub(DEADLINE_MARGIN)).await
        })
    })
}

pub(crate) fn executor_handler(executor: Arc<Executor>) -> Handler {
    Arc::new(move |body, attempt| {
        let executor = executor.clone();
        Box::pin(async move {
            let msg = ChunkMessage::decode(&body)
                .map_err(|e| batchops_core::Error::field("chunk message", format!("unreadable: {e}")))?;
            executor.handle_attempt(&msg, attempt).await.map(|_| ())
        })
    })
}

pub(crate) fn finalizer_handler(finalizer: Arc<Finalizer>) -> Handler {
    Arc::new(move |body, _| {
        let finalizer = finalizer.clone();
        Box::pin(async move {
            let msg: FinalizeMessage = serde_json::from_str(&body)
                .map_err(|e| batchops_core::Error::field("finalize message", format!("unreadable: {e}")))?;
            finalizer.handle(&msg).await.map(|_| ())
        })
    })
}

/// The stack's schedule: a dispatcher round (and with it the sweep) every minute.
pub(crate) async fn timer(control: Arc<SimQueue>) {
    let tick = serde_json::to_string(&ControlMessage::Dispatch).unwrap_or_default();
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
        control.put(tick.clone(), Duration::ZERO);
    }
}

/// The jobs of a run: one to four, of up to 2,500 tasks, created in the first two minutes;
/// some need confirmation, are rate-limited, cancelled or given another priority later.
fn scenario(rng: &Rng) -> Vec<Plan> {
    (0..rng.between(1, 4))
        .map(|j| {
            let n = if rng.chance(0.1) { 0 } else { rng.between(1, 2500) };
            let keys = (0..n)
                .map(|i| {
                    let kind = match rng.between(0, 99) {
                        0..=4 => "missing",
                        5 if rng.chance(0.3) => "slow",
                        _ => "obj",
                    };
                    format!("j{j}/{kind}-{i}")
                })
                .collect();
            let later = |p| rng.chance(p).then(|| rng.millis(1_000, 900_000));
            Plan {
                name: format!("job{j}"),
                at: rng.millis(0, 120_000),
                keys,
                priority: rng.between(1, 5),
                confirm: later(0.2),
                rate: rng.chance(0.2).then(|| rng.between(2, 80)),
                cancel: later(0.15),
                reprioritize: later(0.2),
                manifest: match rng.between(0, 9) {
                    0..=2 => ManifestKind::Inventory(rng.between(1, 4)),
                    3..=4 => ManifestKind::Generator,
                    _ => ManifestKind::Csv,
                },
            }
        })
        .collect()
}

/// What a scenario's user reaches: the API, and the bucket its manifests go to.
struct Parts {
    intake: Arc<Intake>,
    store: Arc<InMemoryJobStore>,
    objects: Arc<InMemoryObjectStore>,
}

/// Creates a job when its plan says, then confirms, cancels or reprioritizes it.
async fn drive(plan: Plan, parts: Parts, rng: Rng, jobs: Arc<Mutex<Vec<(Plan, JobId)>>>) {
    let Parts { intake, store, objects } = parts;
    tokio::time::sleep(plan.at).await;
    let mut spec = json!({
        "ClientRequestToken": plan.name,
        "Priority": plan.priority,
        "RoleArn": "arn:aws:iam::123456789012:role/batch",
        "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "k", "Value": "v"}]}},
        "Report": {"Enabled": true, "Bucket": "arn:aws:s3:::reports", "Format": "Report_CSV_20180820",
                   "Prefix": "r", "ReportScope": "AllTasks"}
    });
    let (member, value) = manifest(&plan, &objects);
    spec[member] = value;
    if plan.confirm.is_some() {
        spec["ConfirmationRequired"] = json!(true);
    }
    if let Some(rate) = plan.rate {
        spec["MaxTasksPerSecond"] = json!(rate);
    }
    // A caller whose CreateJob failed (the queue unreachable) asks again with its token.
    let mut created = None;
    for _ in 0..20 {
        match intake.create_job(spec.to_string().as_bytes(), Caller::Unknown).await {
            Ok(id) => {
                created = Some(id);
                break;
            }
            Err(e) if e.is_transient() => tokio::time::sleep(Duration::from_secs(5)).await,
            Err(e) => panic!("{}: CreateJob refused the scenario's job: {e}", plan.name),
        }
    }
    let Some(id) = created else { panic!("{}: CreateJob failed 20 times", plan.name) };
    jobs.lock().unwrap_or_else(|e| e.into_inner()).push((plan.clone(), id.clone()));
    let mut actions: Vec<(Duration, &str)> = Vec::new();
    if let Some(t) = plan.confirm {
        actions.push((t, "confirm"));
    }
    if let Some(t) = plan.cancel {
        actions.push((t, "cancel"));
    }
    if let Some(t) = plan.reprioritize {
        actions.push((t, "priority"));
    }
    actions.sort();
    let mut waited = Duration::ZERO;
    for (t, action) in actions {
        tokio::time::sleep(t.saturating_sub(waited)).await;
        waited = t;
        let id = id.as_str();
        // Refusals are expected (a job not yet Suspended, or ended): as a user would, move on.
        let _ = match action {
            "confirm" => confirm_when_suspended(&intake, &store, id).await,
            "cancel" => intake.update_job_status(id, "Cancelled", Some("simulated".into())).await.map(|_| ()),
            _ => intake.update_job_priority(id, &rng.between(1, 9).to_string()).await.map(|_| ()),
        };
    }
}

/// Writes where the plan's tasks come from: a CSV manifest, an S3 Inventory report
/// (`manifest.json` and its gzip CSV files, the keys dealt among them), or the objects a
/// generator lists; returns the spec's member for it (`Manifest` or `ManifestGenerator`).
fn manifest(plan: &Plan, objects: &InMemoryObjectStore) -> (&'static str, serde_json::Value) {
    let count = match plan.manifest {
        ManifestKind::Csv => {
            let key = format!("{}.csv", plan.name);
            let manifest: String = plan.keys.iter().map(|k| format!("data,{k}\n")).collect();
            let etag = objects.insert("manifests", &key, manifest.into_bytes());
            let value = json!({"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                               "Location": {"ObjectArn": format!("arn:aws:s3:::manifests/{key}"), "ETag": etag}});
            return ("Manifest", value);
        }
        ManifestKind::Generator => {
            for k in &plan.keys {
                objects.insert("data", k, b"x".to_vec());
            }
            // Every key of a job starts with its own `j<n>/`.
            let prefix = plan.keys.first().and_then(|k| k.split('/').next()).unwrap_or("none");
            let value = json!({"S3JobManifestGenerator": {"SourceBucket": "arn:aws:s3:::data",
                "EnableManifestOutput": false, "Filter": {"KeyNameConstraint": {"MatchAnyPrefix": [format!("{prefix}/")]}}}});
            return ("ManifestGenerator", value);
        }
        ManifestKind::Inventory(count) => count,
    };
    use md5::{Digest, Md5};

    let files: Vec<serde_json::Value> = (0..count)
        .map(|f| {
            let rows: String = plan
                .keys
                .iter()
                .skip(f as usize)
                .step_by(count as usize)
                .map(|k| format!("\"data\",\"{k}\"\n"))
                .collect();
            let body = batchops_core::inventory::gzip(rows.as_bytes());
            let key = format!("{}/data/{f}.csv.gz", plan.name);
            let md5 = hex::encode(Md5::digest(&body));
            let size = body.len();
            objects.insert("manifests", &key, body);
            json!({"key": key, "size": size, "MD5checksum": md5})
        })
        .collect();
    let doc = json!({"sourceBucket": "data", "destinationBucket": "arn:aws:s3:::manifests", "version": "2016-11-30",
        "creationTimestamp": "1514944800000", "fileFormat": "CSV", "fileSchema": "Bucket, Key", "files": files});
    let key = format!("{}/manifest.json", plan.name);
    let etag = objects.insert("manifests", &key, doc.to_string().into_bytes());
    let value = json!({"Spec": {"Format": "S3InventoryReport_CSV_20161130"},
                       "Location": {"ObjectArn": format!("arn:aws:s3:::manifests/{key}"), "ETag": etag}});
    ("Manifest", value)
}

/// Confirms a job once it waits for confirmation (checking every 10 s for up to an hour).
async fn confirm_when_suspended(intake: &Intake, store: &InMemoryJobStore, id: &str) -> batchops_core::Result<()> {
    let job_id = JobId::parse(id)?;
    for _ in 0..360 {
        match store.get(&job_id).await?.status {
            JobStatus::Suspended => return intake.update_job_status(id, "Ready", None).await.map(|_| ()),
            s if s.is_terminal() => return Ok(()),
            _ => tokio::time::sleep(Duration::from_secs(10)).await,
        }
    }
    Ok(())
}

impl World {
    /// What batchops promises, checked job by job.
    async fn check(&self, seed: u64, created: &[(Plan, JobId)]) -> Report {
        let mut r = Report { seed, jobs: created.len(), ..Report::default() };
        let runs = self.s3.runs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let killed = self.invocations.killed.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut by_job: HashMap<&str, Vec<&Run>> = HashMap::new();
        for run in &runs {
            by_job.entry(run.job.as_str()).or_default().push(run);
        }
        let counted = tasks_counted();
        let mut digest = std::collections::hash_map::DefaultHasher::new();
        for (plan, id) in created {
            let job = match self.store.get(id).await {
                Ok(j) => j,
                Err(e) => {
                    r.violations.push(format!("{}: job {id} cannot be read: {e}", plan.name));
                    continue;
                }
            };
            r.tasks += plan.keys.len() as u64;
            r.chunks_split += job.progress.chunks_split;
            *r.ended.entry(job.status.to_string()).or_default() += 1;
            for f in &job.failure_reasons {
                *r.failures.entry(f.failure_code.clone()).or_default() += 1;
            }
            r.trace.push(history(plan, &job));
            (job.status.as_str(), job.progress.succeeded, job.progress.failed, job.history.len()).hash(&mut digest);
            let ran = by_job.get(id.as_str()).cloned().unwrap_or_default();
            self.check_job(plan, &job, &ran, &killed, &mut r);
            let hit_by_kill = ran.iter().any(|run| run.invocation.is_some_and(|i| killed.contains(&i)));
            let metrics = counted.get(id.as_str()).copied().unwrap_or_default();
            check_metrics(plan, &job, metrics, hit_by_kill, &mut r.violations);
        }
        for q in &self.queues {
            r.dead_letters += q.dead_lettered();
            r.lost_messages += q.lost();
            for size in q.oversized() {
                r.violations.push(format!("a {} message of {size} bytes, over SQS's 256 KiB", q.name));
            }
        }
        let inv = &self.invocations;
        for function in inv.timed_out.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            // Every stage hands its work on before its invocation ends.
            r.violations.push(format!("an invocation of {function} ran into its timeout and was killed"));
        }
        r.crashes = inv.crashes.load(std::sync::atomic::Ordering::SeqCst);
        r.timeouts = inv.timeouts.load(std::sync::atomic::Ordering::SeqCst);
        r.invocations = inv.count.load(std::sync::atomic::Ordering::SeqCst);
        (&r.violations, r.crashes, r.timeouts, r.invocations, runs.len()).hash(&mut digest);
        r.digest = digest.finish();
        r
    }

    fn check_job(&self, plan: &Plan, job: &Job, ran: &[&Run], killed: &std::collections::HashSet<u64>, r: &mut Report) {
        let name = &plan.name;
        let v = &mut r.violations;
        if !job.status.is_terminal() {
            v.push(format!("{name}: still {} after {} h (it never ended)", job.status, HORIZON.as_secs() / 3600));
            return;
        }
        let ended = job.terminated.unwrap_or(job.created);
        let took = Duration::try_from(ended - job.created).unwrap_or_default();
        r.longest = r.longest.max(took);
        let rows = self.report_keys(job);
        let p = &job.progress;
        if rows.len() as u64 != p.tasks_run() {
            v.push(format!("{name}: {} report rows but counters say {} tasks ran", rows.len(), p.tasks_run()));
        }
        let mut seen = BTreeSet::new();
        for key in &rows {
            if !seen.insert(key.clone()) {
                v.push(format!("{name}: {key} has two report rows"));
            }
        }
        let started: BTreeSet<&str> = ran.iter().map(|run| run.key.as_str()).collect();
        for key in &seen {
            if !started.contains(key.as_str()) {
                v.push(format!("{name}: {key} is reported but never ran"));
            }
        }
        for key in started.iter().filter(|k| !seen.contains(**k)) {
            // A task of an invocation that was killed may have run with its outcome lost.
            let lost_with_a_kill =
                ran.iter().any(|run| run.key == *key && run.invocation.is_some_and(|i| killed.contains(&i)));
            if !lost_with_a_kill {
                v.push(format!("{name}: {key} ran but is not in the report"));
            }
        }
        for run in ran.iter().filter(|run| run.at > ended) {
            v.push(format!(
                "{name}: {} ran {:?} after the job ended",
                run.key,
                Duration::try_from(run.at.duration_since(ended)).unwrap_or_default()
            ));
        }
        if job.status == JobStatus::Complete && seen.len() != plan.keys.len() {
            v.push(format!("{name}: Complete with {} of its {} tasks reported", seen.len(), plan.keys.len()));
        }
    }

    /// The keys of a job's report rows, read back through its manifest.json.
    fn report_keys(&self, job: &Job) -> Vec<String> {
        let Some(manifest) = self.objects.get("reports", &format!("r/job-{}/manifest.json", job.id)) else {
            return Vec::new();
        };
        let doc: serde_json::Value = serde_json::from_slice(&manifest).unwrap_or_default();
        let mut keys = Vec::new();
        for f in doc["Results"].as_array().cloned().unwrap_or_default() {
            let Some(body) = f["Key"].as_str().and_then(|k| self.objects.get("reports", k)) else { continue };
            for line in String::from_utf8_lossy(&body).lines() {
                keys.extend(line.split(',').nth(1).map(String::from));
            }
        }
        keys
    }
}

/// The tasks the metrics counted (succeeded, failed), by job, since the run began.
fn tasks_counted() -> HashMap<String, (u64, u64)> {
    use batchops_core::metrics::{global, Metric, Value};
    let mut counted: HashMap<String, (u64, u64)> = HashMap::new();
    for (key, value) in global().take() {
        let (Some(job), Value::Counter(n)) = (key.job, value) else { continue };
        let entry = counted.entry(job).or_default();
        match key.metric {
            Metric::TasksSucceeded => entry.0 += n as u64,
            Metric::TasksFailed => entry.1 += n as u64,
            _ => {}
        }
    }
    counted
}

/// The metrics count the tasks the job's counters count: the same, unless an invocation that
/// ran some was killed (between recording a chunk and counting it: fewer, never more).
fn check_metrics(plan: &Plan, job: &Job, (succeeded, failed): (u64, u64), hit_by_kill: bool, v: &mut Vec<String>) {
    let p = &job.progress;
    let agree = match hit_by_kill {
        false => (succeeded, failed) == (p.succeeded, p.failed),
        true => succeeded <= p.succeeded && failed <= p.failed,
    };
    if !agree {
        v.push(format!(
            "{}: the metrics counted {succeeded} succeeded and {failed} failed tasks, the job {} and {}",
            plan.name, p.succeeded, p.failed
        ));
    }
}

/// A job's plan and how it went, for the trace.
fn history(plan: &Plan, job: &Job) -> String {
    let steps: Vec<String> = job
        .history
        .iter()
        .map(|c| {
            format!(
                "{}@{}s{}",
                c.status,
                c.at.duration_since(job.created).as_secs(),
                c.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
            )
        })
        .collect();
    format!(
        "{} {}: {} tasks{}, priority {}, confirm {:?}, rate {:?}, cancel {:?}; {} ran {} ok {} failed, {} chunks (+{} handed on); {}",
        plan.name,
        job.id,
        plan.keys.len(),
        match plan.manifest {
            ManifestKind::Csv => String::new(),
            ManifestKind::Inventory(n) => format!(" (an inventory of {n} files)"),
            ManifestKind::Generator => " (listed by a generator)".to_string(),
        },
        plan.priority,
        plan.confirm,
        plan.rate,
        plan.cancel,
        job.status,
        job.progress.succeeded,
        job.progress.failed,
        job.progress.total_chunks.unwrap_or(0),
        job.progress.chunks_split,
        steps.join(" -> ")
    )
}

/// The stages of one world.
pub(crate) struct Stages {
    pub(crate) chunker: Arc<Chunker>,
    pub(crate) executor: Arc<Executor>,
    pub(crate) finalizer: Arc<Finalizer>,
    pub(crate) intake: Arc<Intake>,
}
