//! Job control through `batchops local` on moto: status events on EventBridge, job tags,
//! dry runs, retries of the failed tasks and scheduled jobs.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use batchops_core::pipeline::Settings;
use batchops_e2e::{spec, System};
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(300);

/// A queue subscribed by a rule on the default bus to every batchops event.
struct Subscription {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

impl Subscription {
    async fn start(sys: &System) -> Result<Subscription> {
        let sqs = sys.clients.sqs.clone();
        let name = format!("{}-events", sys.prefix);
        let url = sqs.create_queue().queue_name(&name).send().await?.queue_url.context("queue url")?;
        let arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}");
        let events = &sys.clients.events;
        let rule = format!("{}-rule", sys.prefix);
        events
            .put_rule()
            .name(&rule)
            .event_pattern(
                json!({"source": ["batchops"], "detail-type": ["Batch Operations Job State Change"]}).to_string(),
            )
            .send()
            .await?;
        let target = aws_sdk_eventbridge::types::Target::builder().id("q").arn(arn).build()?;
        events.put_targets().rule(&rule).targets(target).send().await?;
        Ok(Subscription { sqs, url })
    }

    /// The events of one job received so far, in order.
    async fn of(&self, job_id: &str, seen: &mut Vec<Value>) -> Result<()> {
        loop {
            let out = self.sqs.receive_message().queue_url(&self.url).max_number_of_messages(10).send().await?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(());
            }
            for m in messages {
                let event: Value = serde_json::from_str(m.body().unwrap_or_default())?;
                if event["detail"]["jobId"] == job_id {
                    seen.push(event);
                }
                self.sqs
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await?;
            }
        }
    }

    /// Reads the job's events until one has status `last`.
    async fn until(&self, job_id: &str, last: &str) -> Result<Vec<Value>> {
        let start = Instant::now();
        let mut seen = Vec::new();
        while !seen.iter().any(|e: &Value| e["detail"]["status"] == last) {
            if start.elapsed() > LONG {
                bail!("no {last} event for job {job_id}; got {seen:?}");
            }
            self.of(job_id, &mut seen).await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(seen)
    }
}

fn statuses(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["detail"]["status"].as_str().unwrap_or_default().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rule_on_the_bus_receives_every_status_of_a_job_in_order() -> Result<()> {
    let sys = System::start(Settings { chunk_size: 5, ..Settings::default() }, 2).await?;
    let events = Subscription::start(&sys).await?;
    let [src, dst, man, rep] = sys.buckets(["src", "dst", "man", "rep"]).await?;
    for i in 0..12 {
        sys.put(&src, &format!("k{i}"), format!("body {i}")).await?;
    }
    let lines: String = (0..12).map(|i| format!("{src},k{i}\n")).collect();
    let etag = sys.put(&man, "m.csv", lines).await?;
    let mut good =
        spec(json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{dst}")}}), &man, "m.csv", &etag, &rep);
    good["Tags"] = json!([{"Key": "team", "Value": "data"}]);
    let id = sys.api.create_job(&good).await?;
    let seen = events.until(&id, "Complete").await?;
    assert_eq!(statuses(&seen), ["New", "Preparing", "Ready", "Active", "Completing", "Complete"], "{seen:?}");
    assert_eq!(seen[0]["source"], "batchops");
    assert_eq!(seen[0]["detail-type"], "Batch Operations Job State Change");
    assert_eq!(seen[0]["detail"]["eventName"], "JobCreated");
    assert_eq!(seen[0]["detail"]["tags"], json!([{"Key": "team", "Value": "data"}]));
    let done = &seen[5]["detail"];
    assert_eq!(done["previousStatus"], "Completing");
    assert_eq!(done["progressSummary"]["NumberOfTasksSucceeded"], 12);
    assert_eq!(done["report"]["location"], format!("s3://{rep}/reports/job-{id}/manifest.json"));

    // A job whose manifest does not match its ETag: Failing, then Failed, with the code.
    let bad = spec(
        json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{dst}")}}),
        &man,
        "m.csv",
        "0123",
        &rep,
    );
    let failed = sys.api.create_job(&bad).await?;
    let seen = events.until(&failed, "Failed").await?;
    assert_eq!(statuses(&seen), ["New", "Preparing", "Failing", "Failed"], "{seen:?}");
    assert_eq!(seen[3]["detail"]["failureCodes"], json!(["ManifestETagMismatch"]));
    sys.stop().await;
    Ok(())
}
