//! `batchops local`: the whole system on one machine. It creates the table, queues and specs
//! bucket (when missing), serves the HTTP API, and plays Lambda's event source mappings: it
//! polls each queue and calls the same handler code the Lambda binaries run, deleting what
//! succeeded and leaving failed messages to be delivered again. As on AWS, a message received
//! five times goes to its queue's dead-letter queue, which the sweep reads.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use batchops_aws::driver::{handle_record, Delivery};
use batchops_aws::resources::{ensure_all, Created, Names};
use batchops_aws::{Clients, Config, OpsSettings, S3ObjectStore, Visibility};
use batchops_core::pipeline::Settings;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{info, warn};

/// Options of the local runtime.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// Prefix of the table, queue and bucket names (`batchops` -> `batchops-jobs` ...).
    pub prefix: String,
    /// Where the HTTP API listens; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Chunk messages handled at the same time (each runs `task_concurrency` tasks); 0 leaves
    /// the chunk queue unpolled.
    pub chunk_workers: usize,
    /// Seconds before a failed message is delivered again.
    pub retry_delay_secs: i32,
    pub settings: Settings,
    /// Tunables of the operations (multipart copies).
    pub ops: OpsSettings,
    /// CreateJob requires `iam:PassRole` on the job's role, asked of IAM for the identity
    /// `batchops local` runs as (the local API has no signed callers).
    pub check_pass_role: bool,
    /// Jobs act as their `RoleArn` through STS (the deployed behaviour); false acts with
    /// batchops local's own credentials, for S3-compatible stores without STS.
    pub assume_roles: bool,
    /// The EventBridge Scheduler group whose schedules this fires (`None`: none).
    pub schedule_group: Option<String>,
    /// The task executor's time budget: the template's (270 s of its 300 s timeout) unless
    /// given, whatever `settings.time_budget` gives the chunker.
    pub executor_budget: Option<Duration>,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            prefix: "batchops".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            chunk_workers: 4,
            retry_delay_secs: 2,
            settings: Settings::default(),
            executor_budget: None,
            ops: OpsSettings::default(),
            check_pass_role: false,
            assume_roles: true,
            schedule_group: Some(crate::schedules::GROUP.into()),
        }
    }
}

/// A running local system; dropping it does not stop it, call [`LocalHandle::stop`].
pub struct LocalHandle {
    pub api_url: String,
    pub names: Names,
    pub created: Created,
    pub config: Config,
    shutdown: watch::Sender<bool>,
    /// Tells running chunks to start no more tasks and hand their chunk back.
    stopping: batchops_core::pipeline::Shutdown,
    tasks: JoinSet<()>,
}

impl LocalHandle {
    /// Stops polling and serving, letting the messages in hand finish.
    pub async fn stop(mut self) {
        self.stopping.begin();
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }

    /// Resolves when Ctrl-C is pressed or SIGTERM arrives, then stops: no more messages are
    /// taken, and those in hand are finished or handed back.
    pub async fn run_until_ctrl_c(self) {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term => {},
        }
        info!("stopping");
        self.stop().await;
    }
}

/// A message handler: one delivery of one message (its body and attempt number).
type Handler = Arc<dyn Fn(Delivery) -> Pin<Box<dyn Future<Output = batchops_core::Result<()>> + Send>> + Send + Sync>;

fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = batchops_core::Result<()>> + Send + 'static,
{
    Arc::new(move |delivery| Box::pin(f(delivery)))
}

/// How often jobs left unconfirmed are looked for (hourly, as deployed).
const EXPIRE_EVERY: Duration = Duration::from_secs(3600);

/// The task executor's time budget, as the template sets it (`BATCHOPS_TIME_BUDGET_SECS` of
/// TaskExecutorFunction, whose timeout is 300 s).
const EXECUTOR_BUDGET: Duration = Duration::from_secs(270);

/// The chunker's timeout beyond its time budget (the template: 900 s, budget 780 s).
const CHUNKER_MARGIN: Duration = Duration::from_secs(120);

/// ReportFinalizerFunction's and SpecTriggerFunction's timeouts in the template.
const FINALIZER_TIMEOUT: Duration = Duration::from_secs(300);
const SPECS_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the dispatcher runs a round on its own.
const DISPATCH_EVERY: Duration = Duration::from_secs(1);

/// How long handlers in hand may run after a stop is asked before they are abandoned and
/// their messages handed back (an executor stops starting tasks at once and gives its chunk
/// back when the tasks running end).
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Serves the HTTP API until the stop; returns where it listens.
async fn serve_api(
    tasks: &mut JoinSet<()>,
    stop: watch::Receiver<bool>,
    opts: &LocalOptions,
    clients: &Clients,
    intake: Arc<batchops_core::pipeline::Intake>,
    health: crate::health::HealthSource,
) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    let addr = listener.local_addr()?;
    let mut app = job_intake::api::router(intake)
        .merge(crate::console::routes())
        .merge(crate::health::routes(Arc::new(health)))
        .merge(crate::health::metrics_route())
        .layer(axum::middleware::from_fn(crate::console::browser_guard));
    if opts.check_pass_role {
        let me = batchops_aws::roles::caller_arn(&clients.sdk).await.context("sts:GetCallerIdentity")?;
        info!(caller = %me, "CreateJob checks iam:PassRole for this caller");
        app = app.layer(axum::Extension(job_intake::api::LocalCaller(me)));
    }
    tasks.spawn(async move {
        crate::http::serve(listener, app, stop).await;
    });
    Ok(addr)
}

/// The timers the deployed stack runs on a schedule: a dispatcher round every second (besides
/// the rounds after every chunk pushed or run, so a round that failed, or a job that lost its
/// turn, waits no longer), the sweep (`BATCHOPS_SWEEP_SECS`) and the hourly expiry.
fn spawn_timers(
    tasks: &mut JoinSet<()>,
    stop: &watch::Receiver<bool>,
    dispatcher: Arc<batchops_core::pipeline::dispatcher::Dispatcher>,
    chunker: Arc<batchops_core::pipeline::Chunker>,
) {
    tasks.spawn(every(DISPATCH_EVERY, "dispatch round", stop.clone(), move || {
        let dispatcher = dispatcher.clone();
        async move { dispatcher.dispatch().await.map(|_| ()) }
    }));
    let sweeping = chunker.clone();
    tasks.spawn(every(chunker.ports.settings.sweep_every, "sweep", stop.clone(), move || {
        let chunker = sweeping.clone();
        async move { chunker.sweep().await.map(|_| ()) }
    }));
    tasks.spawn(every(EXPIRE_EVERY, "expiry", stop.clone(), move || {
        let chunker = chunker.clone();
        async move { chunker.expire().await }
    }));
}

/// Runs `f` every `period` until the stop, logging its failures (the next run makes up).
async fn every<F, Fut>(period: Duration, what: &'static str, mut stop: watch::Receiver<bool>, f: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = batchops_core::Result<()>>,
{
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = f().await {
            warn!(error = %e, "{what} failed");
        }
    }
}

/// Plays an SQS event source mapping for one queue and one function: receive, handle with
/// bounded concurrency under a message lease renewed by a heartbeat, delete on success, hand
/// back on failure (after the delay the error asks for). A handler still running at the
/// function's timeout is dropped as Lambda ends the invocation: its message is neither
/// deleted nor handed back, and comes again when its lease runs out. On stop it receives no
/// more, and messages not finished within [`STOP_GRACE`] are handed back at once
/// (visibility 0), so a restart resumes them.
#[derive(Clone)]
struct Poller {
    /// The queue, as `make cost` prices its invocations.
    name: &'static str,
    /// The Lambda function the poller plays, as the message spans name it.
    function: &'static str,
    sqs: aws_sdk_sqs::Client,
    visibility: Visibility,
    handle: Handler,
    /// The function's timeout in the template.
    timeout: Duration,
}

impl Poller {
    async fn run(self, concurrency: usize, mut shutdown: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(concurrency));
        let mut running = JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            while running.try_join_next().is_some() {}
            let free = permits.available_permits().min(10);
            if free == 0 {
                tokio::select! {
                    _ = running.join_next() => {},
                    _ = shutdown.changed() => {},
                }
                continue;
            }
            let messages = self.receive(free).await;
            if *shutdown.borrow() {
                let receipts: Vec<String> = messages.into_iter().filter_map(|m| m.receipt_handle).collect();
                self.visibility.set(&receipts, Duration::ZERO).await;
                break;
            }
            for m in messages {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let (poller, stop) = (self.clone(), shutdown.clone());
                running.spawn(async move {
                    let _permit = permit;
                    poller.deliver(m, stop).await;
                });
            }
        }
        while running.join_next().await.is_some() {}
    }

    /// Up to `n` messages (none when the receive fails).
    async fn receive(&self, n: usize) -> Vec<aws_sdk_sqs::types::Message> {
        // Not cancelled by a stop: messages SQS handed out must be handed back, not dropped
        // with the request (they would stay invisible for a whole window).
        let received = self
            .sqs
            .receive_message()
            .queue_url(self.visibility.url())
            .max_number_of_messages(n as i32)
            .wait_time_seconds(1)
            .visibility_timeout(self.visibility.window.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await;
        match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                warn!(queue = self.name, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "receive failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                Vec::new()
            }
        }
    }

    /// One invocation for one message, settled by the same driver Lambda's runs through
    /// ([`handle_record`]); deleted when done with.
    async fn deliver(&self, m: aws_sdk_sqs::types::Message, mut stop: watch::Receiver<bool>) {
        let started = Instant::now();
        let delivery = Delivery::from_sqs(m, tokio::time::Instant::now() + self.timeout);
        let work = tokio::time::timeout(
            self.timeout,
            self.visibility.hold(&delivery.receipt, (self.handle)(delivery.clone())),
        );
        let abandoned = async {
            let _ = stop.wait_for(|s| *s).await;
            tokio::time::sleep(STOP_GRACE).await;
        };
        let run = async {
            let result = tokio::select! {
                r = work => r.ok(),
                _ = abandoned => Some(Err(batchops_core::Error::NotYet { message: "stopping".into(), retry_after: Duration::ZERO })),
            };
            // Where Lambda would have been invoked (make cost prices it).
            #[cfg(feature = "metering")]
            batchops_aws::metering::invoked(self.name, started.elapsed());
            #[cfg(not(feature = "metering"))]
            let _ = started;
            result
        };
        if handle_record(self.function, &delivery, Some(&self.visibility), run, || {}).await {
            let deleted = self
                .sqs
                .delete_message()
                .queue_url(self.visibility.url())
                .receipt_handle(&delivery.receipt)
                .send()
                .await;
            if let Err(e) = deleted {
                warn!(queue = self.name, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "delete failed; the message will come again");
            }
        }
    }
}

/// Creates what is missing and starts the API and the pollers.
pub async fn start(clients: Clients, opts: LocalOptions) -> Result<LocalHandle> {
    let names = Names::with_prefix(&opts.prefix);
    // A message is leased for this long at a time (a heartbeat renews it), so the message of
    // a worker that died comes back within it.
    let window = opts.settings.lease;
    let created = ensure_all(&clients, &names, window.as_secs() as u32)
        .await
        .context("cannot create the table, queues and bucket (is the endpoint in AWS_ENDPOINT_URL up?)")?;
    let config = local_config(&names, &created, &opts);
    let (tx, rx) = watch::channel(false);
    let mut tasks = JoinSet::new();

    let intake = Arc::new(job_intake::intake(&config, &clients));
    // Scraped, never drained: a series per job would grow with every job.
    batchops_core::metrics::global().forget_jobs();
    let health = crate::health::HealthSource::local(&clients, &created, &names.table);
    let addr = serve_api(&mut tasks, rx.clone(), &opts, &clients, intake.clone(), health).await?;
    let chunker = Arc::new(manifest_chunker::chunker(&config, &clients));
    spawn_timers(&mut tasks, &rx, config.dispatcher(&clients), chunker.clone());
    let objects = Arc::new(S3ObjectStore::new(clients.s3.clone()));
    if let Some(group) = opts.schedule_group.clone() {
        let scheduler = aws_sdk_scheduler::Client::new(&clients.sdk);
        let fire = crate::schedules::fire_schedules(scheduler, group, intake.clone(), objects.clone(), rx.clone());
        tasks.spawn(fire);
    }
    let functions = Functions { intake, chunker, objects };
    let (pollers, stopping) = pollers(&clients, &config, &created, &opts, functions);
    for (poller, concurrency) in pollers {
        tasks.spawn(poller.run(concurrency, rx.clone()));
    }
    let api_url = format!("http://{addr}");
    info!(api = %api_url, table = %names.table, specs_bucket = %names.specs_bucket, "batchops local is running");
    Ok(LocalHandle { api_url, names, created, config, shutdown: tx, stopping, tasks })
}

/// The configuration the deployed functions read from their environment, for the table,
/// queues and bucket `batchops local` made.
fn local_config(names: &Names, created: &Created, opts: &LocalOptions) -> Config {
    Config {
        table: names.table.clone(),
        control_queue_url: created.control_queue_url.clone(),
        chunk_queue_url: created.chunk_queue_url.clone(),
        finalize_queue_url: created.finalize_queue_url.clone(),
        // The sweep reads them, as the deployed chunker does.
        chunk_dlq_url: Some(created.chunk_dlq_url.clone()),
        control_dlq_url: Some(created.control_dlq_url.clone()),
        finalize_dlq_url: Some(created.finalize_dlq_url.clone()),
        // Its chunk workers share one limit per bucket, as one Lambda invocation's chunk has its own.
        settings: Settings { chunks_per_process: opts.chunk_workers.max(1), ..opts.settings.clone() },
        ops: opts.ops.clone(),
        check_pass_role: opts.check_pass_role,
        assume_roles: opts.assume_roles,
        executor_capacity: opts.chunk_workers.max(1) as u64,
        event_bus: batchops_aws::config::event_bus_from_env(),
    }
}

/// The stages the API and the timers share with the pollers.
struct Functions {
    intake: Arc<batchops_core::pipeline::Intake>,
    chunker: Arc<batchops_core::pipeline::Chunker>,
    objects: Arc<S3ObjectStore>,
}

/// The executor's invocation as deployed (the template's 270 s budget of its 300 s timeout),
/// whatever budget the chunker is given: it hands a chunk on at 90 % of it. With its timeout.
fn executor(
    clients: &Clients,
    config: &Config,
    opts: &LocalOptions,
) -> (Arc<batchops_core::pipeline::Executor>, Duration) {
    let time_budget = opts.executor_budget.unwrap_or(EXECUTOR_BUDGET);
    let executor_config = Config { settings: Settings { time_budget, ..config.settings.clone() }, ..config.clone() };
    let timeout = time_budget + (time_budget / 9).max(Duration::from_secs(5));
    (Arc::new(task_executor::executor(&executor_config, clients)), timeout)
}

/// One poller per queue, with how many of its messages are handled at once, as the
/// template's event source mappings and function timeouts have it; and the executor's
/// shutdown flag (a stop makes running chunks hand back).
fn pollers(
    clients: &Clients,
    config: &Config,
    created: &Created,
    opts: &LocalOptions,
    functions: Functions,
) -> (Vec<(Poller, usize)>, batchops_core::pipeline::Shutdown) {
    let Functions { intake, chunker, objects } = functions;
    let budget = opts.settings.time_budget;
    let (executor, executor_timeout) = executor(clients, config, opts);
    let stopping = executor.shutdown.clone();
    let finalizer = Arc::new(report_finalizer::finalizer(config, clients));
    // The chunker's timeout in the template: its budget and the margin the template leaves,
    // so a test's shorter budget keeps its proportions.
    let chunker_timeout = budget + CHUNKER_MARGIN;
    // Inventory files are read in parallel, one control message each.
    let control_concurrency = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
    let specs: Vec<(&'static str, &'static str, &String, usize, Duration, Handler)> = vec![
        (
            "control",
            "manifest-chunker",
            &created.control_queue_url,
            control_concurrency,
            chunker_timeout,
            handler(move |m| {
                let chunker = chunker.clone();
                async move {
                    manifest_chunker::handle_message(&chunker, &m.body, tokio::time::Instant::now() + budget).await
                }
            }),
        ),
        (
            "chunks",
            "task-executor",
            &created.chunk_queue_url,
            opts.chunk_workers,
            executor_timeout,
            handler(move |m| {
                let executor = executor.clone();
                async move { task_executor::handle_message(&executor, &m.body, m.attempt).await.map(|_| ()) }
            }),
        ),
        (
            "finalize",
            "report-finalizer",
            &created.finalize_queue_url,
            // A big report's segments are merged in parallel, one finalize message each.
            8,
            FINALIZER_TIMEOUT,
            handler(move |m| {
                let finalizer = finalizer.clone();
                async move { report_finalizer::handle_message(&finalizer, &m.body).await }
            }),
        ),
        (
            "specs",
            "spec-trigger",
            &created.specs_queue_url,
            2,
            SPECS_TIMEOUT,
            handler(move |m| {
                let (intake, objects) = (intake.clone(), objects.clone());
                async move { job_intake::s3_trigger::handle_message(&intake, &*objects, &m.body).await }
            }),
        ),
    ];
    let retry = Duration::from_secs(opts.retry_delay_secs.max(0) as u64);
    let pollers = specs
        .into_iter()
        // Tests drive the chunk queue themselves to deliver chunks as they choose.
        .filter(|(name, ..)| !(*name == "chunks" && opts.chunk_workers == 0))
        .map(|(name, function, url, concurrency, timeout, handle)| {
            let visibility = Visibility::new(clients.sqs.clone(), url, opts.settings.lease, retry);
            (Poller { name, function, sqs: clients.sqs.clone(), visibility, handle, timeout }, concurrency)
        })
        .collect();
    (pollers, stopping)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::*;

    struct Dropped(Arc<AtomicUsize>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Against the emulator (`make test` runs one; AWS_ENDPOINT_URL points at it).
    #[tokio::test]
    async fn a_handler_past_its_functions_timeout_is_dropped_and_its_message_comes_again_after_its_lease() {
        let clients = Clients::from_env().await;
        let name = format!("poller-timeout-{}-{}", std::process::id(), batchops_core::clock::random_u64() % 1_000_000);
        let url = clients.sqs.create_queue().queue_name(&name).send().await.unwrap().queue_url.unwrap();
        clients.sqs.send_message().queue_url(&url).message_body("never ends").send().await.unwrap();
        // GIVEN a function whose handler never ends, a timeout of 1 s and messages leased 2 s
        let (attempts, dropped) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicUsize::new(0)));
        let (seen, gone) = (attempts.clone(), dropped.clone());
        let handle = handler(move |m| {
            seen.lock().unwrap().push(m.attempt);
            let guard = Dropped(gone.clone());
            async move {
                let _guard = guard;
                std::future::pending::<batchops_core::Result<()>>().await
            }
        });
        let visibility = Visibility::new(clients.sqs.clone(), &url, Duration::from_secs(2), Duration::from_secs(1));
        let poller = Poller {
            name: "test",
            function: "test",
            sqs: clients.sqs.clone(),
            visibility,
            handle,
            timeout: Duration::from_secs(1),
        };
        let (stop, stopped) = watch::channel(false);
        let run = tokio::spawn(poller.run(1, stopped));
        tokio::time::sleep(Duration::from_millis(5_500)).await;
        stop.send(true).unwrap();
        run.await.unwrap();
        // THEN each invocation was ended at the timeout, neither deleting nor handing back its
        // message, which came again once its lease ran out (as on Lambda)
        let attempts = attempts.lock().unwrap().clone();
        assert_eq!(attempts[..2], [1, 2], "{attempts:?}");
        assert_eq!(dropped.load(Ordering::SeqCst), attempts.len());
        let _ = clients.sqs.delete_queue().queue_url(&url).send().await;
    }
}
