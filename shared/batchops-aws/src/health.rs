//! The adapters' half of operating batchops: a Lambda invocation's metrics printed as EMF
//! lines ([`flush_metrics`]), and what SQS and CloudWatch say for the health view
//! ([`batchops_core::pipeline::health`]): each queue's depth, a dead-letter queue's first
//! message, the stack's alarms in ALARM and its queues' oldest ages (feature `cloudwatch`).

use std::io::Write;
use std::time::Duration;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use batchops_core::pipeline::health::{dead_message, jobs_status, AlarmStatus, QueueStatus, SystemStatus};
use batchops_core::ports::{now_ms, JobRecords};
use batchops_core::Result;

use crate::errors::backend;
use crate::resources::Created;

/// Prints what the process's metrics recorded since the last call as CloudWatch EMF lines on
/// stdout, which Lambda sends to the function's log group, where CloudWatch makes metrics of
/// them: a function calls it after every invocation. Their namespace is
/// `BATCHOPS_METRICS_NAMESPACE` (the template's `MetricsNamespace`), read once.
pub fn flush_metrics(function: &str) {
    static NAMESPACE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let namespace = NAMESPACE.get_or_init(|| {
        std::env::var("BATCHOPS_METRICS_NAMESPACE")
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| batchops_core::metrics::emf::NAMESPACE.to_string())
    });
    let lines = batchops_core::metrics::emf::drain(namespace, function);
    let mut out = std::io::stdout().lock();
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
}

/// A queue the health view measures.
#[derive(Clone, Debug)]
pub struct WatchedQueue {
    /// `control`, `chunk`, `finalize`, `specs`, or one of those with `-dlq`.
    pub name: String,
    pub url: String,
}

impl WatchedQueue {
    pub fn new(name: &str, url: impl Into<String>) -> WatchedQueue {
        WatchedQueue { name: name.to_string(), url: url.into() }
    }

    pub fn dead_letter(&self) -> bool {
        self.name.ends_with("-dlq")
    }

    /// What the queue's messages are: `chunk`, `control`, `finalize` or `spec`.
    fn kind(&self) -> &str {
        match self.name.trim_end_matches("-dlq") {
            "specs" => "spec",
            other => other,
        }
    }

    /// The queues `batchops local` created (its specs queue has no dead-letter queue).
    pub fn local(created: &Created) -> Vec<WatchedQueue> {
        vec![
            WatchedQueue::new("control", &created.control_queue_url),
            WatchedQueue::new("chunk", &created.chunk_queue_url),
            WatchedQueue::new("finalize", &created.finalize_queue_url),
            WatchedQueue::new("specs", &created.specs_queue_url),
            WatchedQueue::new("control-dlq", &created.control_dlq_url),
            WatchedQueue::new("chunk-dlq", &created.chunk_dlq_url),
            WatchedQueue::new("finalize-dlq", &created.finalize_dlq_url),
        ]
    }

    /// The queue's name in SQS (the URL's last segment): CloudWatch's `QueueName` dimension.
    pub fn sqs_name(&self) -> &str {
        self.url.rsplit('/').next().unwrap_or(&self.url)
    }
}

/// What SQS counts in `queue`; for a dead-letter queue that holds messages, its first one too.
pub async fn measure(sqs: &aws_sdk_sqs::Client, queue: &WatchedQueue) -> Result<QueueStatus> {
    let counts = crate::sqs::counts(sqs, &queue.url).await?;
    let mut status = QueueStatus {
        name: queue.name.clone(),
        url: queue.url.clone(),
        dead_letter: queue.dead_letter(),
        visible: counts.visible,
        in_flight: counts.in_flight,
        delayed: counts.delayed,
        ..QueueStatus::default()
    };
    if status.dead_letter && status.visible > 0 {
        first_dead(sqs, queue, &mut status).await?;
    }
    Ok(status)
}

/// Reads a dead-letter queue's first message without taking it: a receive with a visibility
/// timeout of 0 leaves it visible. It counts as a receive, which only matters on a queue with
/// a redrive policy, and dead-letter queues have none.
async fn first_dead(sqs: &aws_sdk_sqs::Client, queue: &WatchedQueue, status: &mut QueueStatus) -> Result<()> {
    let out = sqs
        .receive_message()
        .queue_url(&queue.url)
        .max_number_of_messages(1)
        .visibility_timeout(0)
        // A short poll samples some of SQS's servers and may miss the one message there.
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
        .send()
        .await
        .map_err(|e| backend("ReceiveMessage", e))?;
    if let Some(m) = out.messages().first() {
        let sent = m
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
            .and_then(|v| v.parse::<u64>().ok());
        status.oldest_age_seconds = sent.map(|ms| now_ms().saturating_sub(ms) / 1000);
        status.first_dead =
            Some(dead_message(queue.kind(), m.message_id().unwrap_or_default(), m.body().unwrap_or_default(), sent));
    }
    Ok(())
}

/// Every queue measured, in order.
pub async fn measure_all(sqs: &aws_sdk_sqs::Client, queues: &[WatchedQueue]) -> Result<Vec<QueueStatus>> {
    let mut measured = Vec::with_capacity(queues.len());
    for queue in queues {
        measured.push(measure(sqs, queue).await?);
    }
    Ok(measured)
}

/// The whole view from the queues measured: the jobs read, with the alarms given (`None`
/// where there are none to read).
pub async fn system_status(
    measured: Vec<QueueStatus>,
    store: &dyn JobRecords,
    alarms: Option<Vec<AlarmStatus>>,
    stalled_after: Duration,
) -> Result<SystemStatus> {
    let now = now_ms();
    let jobs = jobs_status(store, stalled_after, now).await?;
    Ok(SystemStatus::assemble(measured, jobs, alarms, stalled_after, now))
}

#[cfg(feature = "cloudwatch")]
pub use self::cloudwatch::{alarms_in_alarm, oldest_ages};

#[cfg(feature = "cloudwatch")]
mod cloudwatch {
    use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricAlarm, MetricDataQuery, MetricStat, StateValue};
    use batchops_core::ids::iso8601;
    use batchops_core::pipeline::health::{AlarmStatus, QueueStatus};
    use batchops_core::Result;

    use super::WatchedQueue;
    use crate::errors::backend;

    /// The stack's alarms in ALARM: named `<stack>-...` (`prefix`) and notifying its `topic`
    /// (so the alarms of a stack `prod-eu` are not `prod`'s).
    pub async fn alarms_in_alarm(
        cw: &aws_sdk_cloudwatch::Client,
        prefix: &str,
        topic: &str,
    ) -> Result<Vec<AlarmStatus>> {
        let mut alarms = Vec::new();
        let mut pages =
            cw.describe_alarms().alarm_name_prefix(prefix).state_value(StateValue::Alarm).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| backend("DescribeAlarms", e))?;
            // Filtered here too: a CloudWatch that ignores StateValue (moto) answers every alarm.
            let ours = |a: &&MetricAlarm| {
                a.state_value() == Some(&StateValue::Alarm) && a.alarm_actions().iter().any(|t| t == topic)
            };
            for a in page.metric_alarms().iter().filter(ours) {
                alarms.push(AlarmStatus {
                    name: a.alarm_name().unwrap_or_default().to_string(),
                    state: a.state_value().map(|s| s.as_str().to_string()).unwrap_or_default(),
                    reason: a.state_reason().unwrap_or_default().to_string(),
                    since: a
                        .state_updated_timestamp()
                        .and_then(|t| jiff::Timestamp::from_millisecond(t.to_millis().ok()?).ok())
                        .map(iso8601),
                });
            }
        }
        Ok(alarms)
    }

    /// Fills the work queues' oldest message ages from CloudWatch's `ApproximateAgeOfOldestMessage`
    /// (the newest minute's maximum of the last 15 minutes; SQS itself has no such attribute,
    /// and reading a work queue's messages would count as receives toward its dead-letter queue).
    pub async fn oldest_ages(
        cw: &aws_sdk_cloudwatch::Client,
        queues: &[WatchedQueue],
        measured: &mut [QueueStatus],
    ) -> Result<()> {
        let now = std::time::SystemTime::now();
        let queries: Vec<MetricDataQuery> = queues
            .iter()
            .enumerate()
            .filter(|(_, q)| !q.dead_letter())
            .map(|(i, q)| {
                let metric = Metric::builder()
                    .namespace("AWS/SQS")
                    .metric_name("ApproximateAgeOfOldestMessage")
                    .dimensions(Dimension::builder().name("QueueName").value(q.sqs_name()).build())
                    .build();
                let stat = MetricStat::builder().metric(metric).period(60).stat("Maximum").build();
                MetricDataQuery::builder().id(format!("q{i}")).metric_stat(stat).build()
            })
            .collect();
        let out = cw
            .get_metric_data()
            .set_metric_data_queries(Some(queries))
            .start_time((now - std::time::Duration::from_secs(900)).into())
            .end_time(now.into())
            .send()
            .await
            .map_err(|e| backend("GetMetricData", e))?;
        for result in out.metric_data_results() {
            let index = result.id().and_then(|id| id.strip_prefix('q')).and_then(|i| i.parse::<usize>().ok());
            let newest = result.values().first();
            if let (Some(i), Some(age)) = (index, newest) {
                if let Some(q) = measured.get_mut(i) {
                    q.oldest_age_seconds = Some(*age as u64);
                }
            }
        }
        Ok(())
    }
}
