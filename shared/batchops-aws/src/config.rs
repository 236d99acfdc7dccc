//! Configuration from the environment, read once into a typed struct; a missing variable is an
//! error that names it.

use std::time::Duration;

use batchops_core::events::{Events, NoEvents};
use batchops_core::pipeline::dispatcher::{depth_for, Dispatcher};
use batchops_core::pipeline::finalizer::report::MAX_SEGMENTS;
use batchops_core::pipeline::{Settings, StagePorts};
use batchops_core::retry::RetryPolicy;

use crate::clients::Clients;
use crate::ops::OpsSettings;
use crate::roles::{OwnCredentials, StsRoles};
use batchops_core::ports::RoleAccess;
use std::sync::Arc;

/// How long a message that failed with a transient error waits before it is delivered again.
pub const RETRY_DELAY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is not set")]
    Missing { name: &'static str },
    #[error("environment variable {name}='{value}': {reason}")]
    Invalid { name: &'static str, value: String, reason: String },
}

/// Names of the resources and the tunables every function reads.
#[derive(Clone, Debug)]
pub struct Config {
    pub table: String,
    pub control_queue_url: String,
    pub chunk_queue_url: String,
    pub finalize_queue_url: String,
    /// The dead-letter queues of the chunk, control and finalize queues, read by the sweep
    /// (`BATCHOPS_CHUNK_DLQ_URL`, `BATCHOPS_CONTROL_DLQ_URL`, `BATCHOPS_FINALIZE_DLQ_URL`; only
    /// the manifest chunker, which sweeps, is given them).
    pub chunk_dlq_url: Option<String>,
    pub control_dlq_url: Option<String>,
    pub finalize_dlq_url: Option<String>,
    pub settings: Settings,
    pub ops: OpsSettings,
    /// CreateJob requires `iam:PassRole` of the caller on the job's role
    /// (`BATCHOPS_CHECK_PASS_ROLE`, on in the SAM template).
    pub check_pass_role: bool,
    /// Jobs act as their `RoleArn` (sts:AssumeRole); false only for S3-compatible stores
    /// without STS (`BATCHOPS_ASSUME_JOB_ROLES`, default true).
    pub assume_roles: bool,
    /// Chunks the executors run at once (`BATCHOPS_EXECUTOR_CAPACITY`: the template's
    /// `ExecutorMaxConcurrency`, `--chunk-workers` locally); the dispatcher keeps the chunk
    /// queue about this deep.
    pub executor_capacity: u64,
    /// The EventBridge bus status events go to (`BATCHOPS_EVENT_BUS`, default `default`;
    /// `none` sends none).
    pub event_bus: String,
}

fn var(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name).map_err(|_| ConfigError::Missing { name })
}

/// An optional variable: `None` when unset or empty.
pub fn optional_var(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A variable parsed as `T`, `default` when unset; a value that does not parse names the variable.
pub fn parse_var<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => v.parse().map_err(|e: T::Err| ConfigError::Invalid { name, value: v.clone(), reason: e.to_string() }),
    }
}

/// Reads the pipeline tunables (`BATCHOPS_CHUNK_SIZE`, `BATCHOPS_TASK_CONCURRENCY`,
/// `BATCHOPS_MAX_ATTEMPTS`, `BATCHOPS_TIME_BUDGET_SECS`, `BATCHOPS_ACCOUNT_ID`, `AWS_REGION`,
/// `BATCHOPS_MAX_TASKS`, `BATCHOPS_MAX_LINE_BYTES`, `BATCHOPS_LEASE_SECS`, `BATCHOPS_JOB_CHECK_MS`,
/// `BATCHOPS_THROTTLE_ATTEMPTS`, `BATCHOPS_SWEEP_SECS`, `BATCHOPS_STALL_SECS`).
pub fn settings_from_env() -> Result<Settings, ConfigError> {
    let d = Settings::default();
    let chunk_size: u64 = parse_var("BATCHOPS_CHUNK_SIZE", d.chunk_size)?;
    if chunk_size == 0 {
        return Err(ConfigError::Invalid {
            name: "BATCHOPS_CHUNK_SIZE",
            value: "0".into(),
            reason: "must be at least 1".into(),
        });
    }
    Ok(Settings {
        chunk_size,
        task_concurrency: parse_var("BATCHOPS_TASK_CONCURRENCY", d.task_concurrency)?,
        chunks_per_process: d.chunks_per_process,
        retry: RetryPolicy {
            max_attempts: parse_var("BATCHOPS_MAX_ATTEMPTS", d.retry.max_attempts)?,
            throttle_attempts: parse_var("BATCHOPS_THROTTLE_ATTEMPTS", d.retry.throttle_attempts)?,
            ..d.retry
        },
        max_chunk_attempts: parse_var("BATCHOPS_MAX_CHUNK_ATTEMPTS", d.max_chunk_attempts)?,
        time_budget: Duration::from_secs(parse_var("BATCHOPS_TIME_BUDGET_SECS", d.time_budget.as_secs())?),
        region: std::env::var("AWS_REGION").or_else(|_| std::env::var("AWS_DEFAULT_REGION")).unwrap_or(d.region),
        account_id: parse_var("BATCHOPS_ACCOUNT_ID", d.account_id)?,
        max_tasks: parse_var("BATCHOPS_MAX_TASKS", d.max_tasks)?,
        max_line_bytes: parse_var("BATCHOPS_MAX_LINE_BYTES", d.max_line_bytes)?,
        lease: Duration::from_secs(parse_var("BATCHOPS_LEASE_SECS", d.lease.as_secs())?.max(3)),
        job_check: Duration::from_millis(parse_var("BATCHOPS_JOB_CHECK_MS", d.job_check.as_millis() as u64)?.max(100)),
        report_segments: parse_var("BATCHOPS_REPORT_SEGMENTS", d.report_segments)?.clamp(1, MAX_SEGMENTS),
        sweep_every: Duration::from_secs(parse_var("BATCHOPS_SWEEP_SECS", d.sweep_every.as_secs())?.max(1)),
        stall: Duration::from_secs(parse_var("BATCHOPS_STALL_SECS", d.stall.as_secs())?.max(1)),
    })
}

impl Config {
    /// Reads `BATCHOPS_TABLE`, `BATCHOPS_CONTROL_QUEUE_URL`, `BATCHOPS_CHUNK_QUEUE_URL`,
    /// `BATCHOPS_FINALIZE_QUEUE_URL`, the dead-letter queues' `BATCHOPS_*_DLQ_URL` (optional),
    /// `BATCHOPS_CHECK_PASS_ROLE` and the tunables.
    pub fn from_env() -> Result<Config, ConfigError> {
        Ok(Config {
            table: var("BATCHOPS_TABLE")?,
            control_queue_url: var("BATCHOPS_CONTROL_QUEUE_URL")?,
            chunk_queue_url: var("BATCHOPS_CHUNK_QUEUE_URL")?,
            finalize_queue_url: var("BATCHOPS_FINALIZE_QUEUE_URL")?,
            chunk_dlq_url: optional_var("BATCHOPS_CHUNK_DLQ_URL"),
            control_dlq_url: optional_var("BATCHOPS_CONTROL_DLQ_URL"),
            finalize_dlq_url: optional_var("BATCHOPS_FINALIZE_DLQ_URL"),
            settings: settings_from_env()?,
            ops: ops_from_env()?,
            check_pass_role: parse_var("BATCHOPS_CHECK_PASS_ROLE", false)?,
            assume_roles: parse_var("BATCHOPS_ASSUME_JOB_ROLES", true)?,
            executor_capacity: parse_var("BATCHOPS_EXECUTOR_CAPACITY", 10u64)?.max(1),
            event_bus: event_bus_from_env(),
        })
    }

    /// Where status changes are announced: the configured EventBridge bus.
    pub fn events(&self, clients: &Clients) -> Arc<dyn Events> {
        if self.event_bus == "none" {
            return Arc::new(NoEvents);
        }
        Arc::new(crate::EventBridgeEvents::new(clients.events.clone(), &self.event_bus))
    }

    /// What every stage is wired with: this configuration's table, event bus, job roles,
    /// finalize queue and settings.
    pub fn stage_ports(&self, clients: &Clients) -> StagePorts {
        StagePorts {
            store: Arc::new(crate::DynamoJobStore::from_clients(clients, &self.table)),
            events: self.events(clients),
            roles: self.roles(clients),
            finalize: Arc::new(crate::SqsQueue::new(clients.sqs.clone(), &self.finalize_queue_url)),
            settings: self.settings.clone(),
        }
    }

    /// The dispatcher over this configuration's table and chunk queue.
    pub fn dispatcher(&self, clients: &Clients) -> Arc<Dispatcher> {
        let store = Arc::new(crate::DynamoJobStore::from_clients(clients, &self.table));
        Arc::new(Dispatcher {
            store: store.clone(),
            events: self.events(clients),
            backlog: store,
            chunks: Arc::new(crate::SqsQueue::new(clients.sqs.clone(), &self.chunk_queue_url)),
            depth: depth_for(self.executor_capacity),
        })
    }

    /// Message leases on `queue_url`: a window of `lease` renewed while a message is handled,
    /// failed messages back after [`RETRY_DELAY`].
    pub fn visibility(&self, clients: &Clients, queue_url: &str) -> crate::Visibility {
        crate::Visibility::new(clients.sqs.clone(), queue_url, self.settings.lease, RETRY_DELAY)
    }

    /// Job roles assumed with the functions' own credentials; each session's operation
    /// runner has this configuration's tunables.
    pub fn roles(&self, clients: &Clients) -> Arc<dyn RoleAccess> {
        let (ops, retry) = (self.ops.clone(), self.settings.retry.clone());
        if self.assume_roles {
            Arc::new(StsRoles::new(&clients.sdk, ops, retry))
        } else {
            Arc::new(OwnCredentials::new(&clients.sdk, ops, retry))
        }
    }
}

/// `BATCHOPS_EVENT_BUS`: the bus status events go to (`default` unless set; `none` for none).
pub fn event_bus_from_env() -> String {
    std::env::var("BATCHOPS_EVENT_BUS").ok().filter(|b| !b.is_empty()).unwrap_or_else(|| "default".into())
}

/// Reads the operations' tunables: `BATCHOPS_MULTIPART_THRESHOLD` (bytes, default 5 GiB),
/// `BATCHOPS_COPY_PART_SIZE` (bytes, default 128 MiB), `BATCHOPS_COPY_PART_CONCURRENCY` (16).
pub fn ops_from_env() -> Result<OpsSettings, ConfigError> {
    let d = OpsSettings::default();
    let ops = OpsSettings {
        multipart_threshold: parse_var("BATCHOPS_MULTIPART_THRESHOLD", d.multipart_threshold)?,
        part_size: parse_var("BATCHOPS_COPY_PART_SIZE", d.part_size)?,
        part_concurrency: parse_var("BATCHOPS_COPY_PART_CONCURRENCY", d.part_concurrency)?,
    };
    if ops.part_size < 5 * 1024 * 1024 {
        return Err(ConfigError::Invalid {
            name: "BATCHOPS_COPY_PART_SIZE",
            value: ops.part_size.to_string(),
            reason: "S3 parts are at least 5 MiB (5242880 bytes)".into(),
        });
    }
    Ok(ops)
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`): one JSON object a line on Lambda
/// ([`json_logs`]), readable text elsewhere.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if std::env::var("AWS_LAMBDA_FUNCTION_NAME").is_ok() {
        let _ = tracing::subscriber::set_global_default(json_logs(filter, std::io::stderr));
    } else {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// Logs as the functions write them on Lambda: one JSON object a line, with the fields of the
/// span the line was written in under `span` (a message's `function`, `message_id`,
/// `attempt`, `job_id`, `chunk`: see [`crate::driver`]), which CloudWatch Logs Insights
/// queries as `span.job_id`.
pub fn json_logs<W>(filter: tracing_subscriber::EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
}
