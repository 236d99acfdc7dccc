//! `batchops status` and the console's System page: the health view
//! ([`batchops_core::pipeline::health`]) of a deployed stack (its outputs name the queues and
//! the table; CloudWatch has its alarms) or of `batchops local` (its own queues and table,
//! served at `GET /v20180820/system`), and the local `GET /metrics` scrape.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use batchops_aws::health::{alarms_in_alarm, measure_all, oldest_ages, system_status, WatchedQueue};
use batchops_aws::resources::Created;
use batchops_aws::{Clients, DynamoJobStore};
use batchops_core::pipeline::health::SystemStatus;

/// How long an open job may look the same before the view calls it stalled, by default.
pub const STALLED_MINUTES: u64 = 30;

/// The stack outputs naming each queue the view measures.
const STACK_QUEUES: [(&str, &str); 8] = [
    ("control", "ControlQueue"),
    ("chunk", "ChunkQueue"),
    ("finalize", "FinalizeQueue"),
    ("specs", "SpecsQueue"),
    ("control-dlq", "ControlDeadLetterQueue"),
    ("chunk-dlq", "ChunkDeadLetterQueue"),
    ("finalize-dlq", "FinalizeDeadLetterQueue"),
    ("specs-dlq", "SpecsDeadLetterQueue"),
];

/// Where the view reads from.
pub struct HealthSource {
    sqs: aws_sdk_sqs::Client,
    queues: Vec<WatchedQueue>,
    store: DynamoJobStore,
    cloudwatch: Option<StackAlarms>,
}

/// A deployed stack's CloudWatch, its alarms' name prefix (`<stack>-`) and their topic.
struct StackAlarms {
    client: aws_sdk_cloudwatch::Client,
    prefix: String,
    topic: String,
}

impl HealthSource {
    /// A deployed stack, from its outputs.
    pub async fn for_stack(sdk: &aws_config::SdkConfig, stack: &str) -> Result<HealthSource> {
        let outputs = crate::client::stack_outputs(sdk, stack).await?;
        let output = |key: &str| match outputs.get(key) {
            Some(v) => Ok(v.clone()),
            None => {
                Err(anyhow::anyhow!("the stack {stack} has no {key} output: is it a batchops stack of this version?"))
            }
        };
        let queues =
            STACK_QUEUES.iter().map(|(name, key)| Ok(WatchedQueue::new(name, output(key)?))).collect::<Result<_>>()?;
        Ok(HealthSource {
            sqs: aws_sdk_sqs::Client::new(sdk),
            queues,
            store: DynamoJobStore::new(aws_sdk_dynamodb::Client::new(sdk), output("JobsTable")?),
            cloudwatch: Some(StackAlarms {
                client: aws_sdk_cloudwatch::Client::new(sdk),
                prefix: format!("{stack}-"),
                topic: output("AlarmTopic")?,
            }),
        })
    }

    /// `batchops local`'s queues and table.
    pub fn local(clients: &Clients, created: &Created, table: &str) -> HealthSource {
        HealthSource {
            sqs: clients.sqs.clone(),
            queues: WatchedQueue::local(created),
            store: DynamoJobStore::from_clients(clients, table),
            cloudwatch: None,
        }
    }

    /// The view now.
    pub async fn check(&self, stalled_after: Duration) -> Result<SystemStatus> {
        let mut measured = measure_all(&self.sqs, &self.queues).await?;
        let alarms = match &self.cloudwatch {
            Some(alarms) => {
                oldest_ages(&alarms.client, &self.queues, &mut measured).await?;
                Some(alarms_in_alarm(&alarms.client, &alarms.prefix, &alarms.topic).await?)
            }
            None => None,
        };
        Ok(system_status(measured, &self.store, alarms, stalled_after).await?)
    }
}

#[derive(serde::Deserialize)]
struct SystemQuery {
    #[serde(rename = "stalledMinutes")]
    stalled_minutes: Option<u64>,
}

/// `GET /v20180820/system` (`?stalledMinutes=N`): the view as JSON, for `batchops status` and
/// the console.
pub fn routes<S: Clone + Send + Sync + 'static>(source: Arc<HealthSource>) -> Router<S> {
    Router::new().route("/v20180820/system", get(system)).with_state(source)
}

async fn system(State(source): State<Arc<HealthSource>>, Query(q): Query<SystemQuery>) -> Response {
    let minutes = q.stalled_minutes.unwrap_or(STALLED_MINUTES);
    match source.check(Duration::from_secs(minutes * 60)).await {
        Ok(status) => axum::Json(status).into_response(),
        Err(e) => {
            let body = serde_json::json!({"Code": "ServiceUnavailable", "Message": format!("cannot read the system's state: {e:#}")});
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}

/// `GET /metrics`: the process's metrics in Prometheus' text format.
pub fn metrics_route<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route(
        "/metrics",
        get(|| async {
            let text = batchops_core::metrics::prometheus::render(&batchops_core::metrics::global().snapshot());
            ([(header::CONTENT_TYPE, batchops_core::metrics::prometheus::CONTENT_TYPE)], text)
        }),
    )
}

/// `batchops status`'s exit code: 0 healthy, 1 when something needs a person.
pub fn exit_code(status: &SystemStatus) -> i32 {
    i32::from(!status.healthy)
}

/// The view as text for a terminal.
pub fn render(status: &SystemStatus) -> String {
    let mut out = String::new();
    let verdict = if status.healthy { "healthy" } else { "NEEDS ATTENTION" };
    let _ = writeln!(out, "batchops: {verdict} (checked {})", status.checked_at);
    for p in &status.problems {
        let _ = writeln!(out, "  ! {p}");
    }
    let _ = writeln!(out, "\nqueues                 visible  in flight  delayed  oldest");
    for q in &status.queues {
        let oldest = q.oldest_age_seconds.map(|s| format!("{s} s")).unwrap_or_else(|| "-".into());
        let _ = writeln!(out, "  {:<20} {:>7}  {:>9}  {:>7}  {oldest}", q.name, q.visible, q.in_flight, q.delayed);
        if let Some(d) = &q.first_dead {
            let job = d.job_id.as_deref().unwrap_or("-");
            let sent = d.sent_at.as_deref().unwrap_or("-");
            let _ = writeln!(out, "    first dead message: {} of job {job}: {} (sent {sent})", d.kind, d.detail);
        }
    }
    let counts = |m: &std::collections::BTreeMap<String, u64>| {
        if m.is_empty() {
            "none".to_string()
        } else {
            m.iter().map(|(s, n)| format!("{s} {n}")).collect::<Vec<_>>().join(", ")
        }
    };
    let _ = writeln!(out, "\njobs open: {}", counts(&status.jobs.open));
    let capped = if status.jobs.ended_last_day_capped { " (the newest only)" } else { "" };
    let _ = writeln!(out, "jobs ended in the last day{capped}: {}", counts(&status.jobs.ended_last_day));
    let _ = writeln!(
        out,
        "jobs with no progress for {} min or more: {}",
        status.stalled_after_minutes,
        status.jobs.stalled.len()
    );
    for j in &status.jobs.stalled {
        let what = j.description.as_deref().unwrap_or("");
        let _ = writeln!(
            out,
            "  {} {} idle {} min since {} {what}",
            j.job_id, j.status, j.idle_minutes, j.last_progress_at
        );
    }
    match &status.alarms {
        None => {
            let _ = writeln!(out, "\nalarms: none here (a deployed stack's are read with --stack)");
        }
        Some(alarms) => {
            let _ = writeln!(out, "\nalarms in ALARM: {}", alarms.len());
            for a in alarms {
                let _ = writeln!(out, "  {} since {}: {}", a.name, a.since.as_deref().unwrap_or("-"), a.reason);
            }
        }
    }
    out
}
