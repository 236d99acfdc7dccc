//! Job control through `batchops local` on moto: status events on EventBridge, job tags,
//! dry runs, retries of the failed tasks and scheduled jobs.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use batchops_core::pipeline::Settings;
use batchops_e2e::{spec, System};
use jiff::{SignedDuration, Timestamp};
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

/// Puts `n` small objects `obj-<i>` into `bucket`, 32 at a time.
async fn put_many(sys: &System, bucket: &str, n: usize) -> Result<()> {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let (s3, bucket) = (sys.clients.s3.clone(), bucket.to_string());
        set.spawn(async move {
            s3.put_object()
                .bucket(bucket)
                .key(format!("obj-{i}"))
                .body(format!("body {i}").into_bytes().into())
                .send()
                .await
                .map(|_| ())
        });
        if set.len() >= 32 {
            set.join_next().await.context("task")???;
        }
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dry_run_over_1000_objects_changes_none_and_reports_each() -> Result<()> {
    let sys = System::start(Settings { chunk_size: 100, ..Settings::default() }, 4).await?;
    let [src, dst, man, rep] = sys.buckets(["src", "dst", "man", "rep"]).await?;
    put_many(&sys, &src, 1000).await?;
    let lines: String = (0..1000).map(|i| format!("{src},obj-{i}\n")).chain([format!("{src},never-there\n")]).collect();
    let etag = sys.put(&man, "m.csv", lines).await?;
    let mut dry =
        spec(json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{dst}")}}), &man, "m.csv", &etag, &rep);
    dry["DryRun"] = json!(true);
    let id = sys.api.create_job(&dry).await?;
    let job = sys.wait_for(&id, &["Complete", "Failed"], LONG).await?;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 1000);
    assert_eq!(job["ProgressSummary"]["NumberOfTasksFailed"], 1);
    assert_eq!(job["DryRunEstimate"]["RequestsOfTheRealRun"], json!({"CopyObject": 1000}), "{job}");
    let copied = sys.clients.s3.list_objects_v2().bucket(&dst).send().await?;
    assert_eq!(copied.key_count(), Some(0), "a dry run copies nothing");
    let (_, rows) = sys.report(&rep, "reports", &id).await?;
    assert_eq!(rows.len(), 1001);
    let dry_rows = rows.iter().filter(|(s, r)| s == "succeeded" && r.contains(r#"""DryRun"":true"#)).count();
    assert_eq!(dry_rows, 1000);
    assert!(rows.iter().any(|(s, r)| s == "failed" && r.contains("never-there,,failed,404,NoSuchKey")), "{rows:?}");
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_failed_of_a_job_with_10_missing_keys_runs_exactly_those_10() -> Result<()> {
    let sys = System::start(Settings { chunk_size: 25, ..Settings::default() }, 4).await?;
    let [src, dst, man, rep] = sys.buckets(["src", "dst", "man", "rep"]).await?;
    put_many(&sys, &src, 90).await?;
    // 100 rows: 90 objects and 10 missing keys spread among them.
    let lines: String = (0..100)
        .map(|i| {
            if i % 10 == 4 {
                format!("{src},missing/k%20{i}\n")
            } else {
                format!("{src},obj-{}\n", i - i / 10 - usize::from(i % 10 > 4))
            }
        })
        .collect();
    let etag = sys.put(&man, "m.csv", lines).await?;
    let mut parent =
        spec(json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{dst}")}}), &man, "m.csv", &etag, &rep);
    parent["Tags"] = json!([{"Key": "team", "Value": "data"}]);
    let id = sys.api.create_job(&parent).await?;
    let job = sys.wait_for(&id, &["Complete", "Failed"], LONG).await?;
    assert_eq!(job["ProgressSummary"]["NumberOfTasksFailed"], 10, "{job}");
    // What failed, and why, read back from the report through the API.
    let failures = sys.api.failures(&id, Some(3)).await?;
    assert_eq!((failures["RowsRead"].as_u64(), failures["Complete"].as_bool()), (Some(10), Some(true)), "{failures}");
    let groups = failures["Groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{failures}");
    assert_eq!((groups[0]["ErrorCode"].as_str(), groups[0]["HTTPStatusCode"].as_u64()), (Some("NoSuchKey"), Some(404)));
    assert_eq!(groups[0]["Count"], 10);
    let shown = groups[0]["Tasks"].as_array().unwrap();
    assert_eq!(shown.len(), 3, "{failures}");
    assert!(shown.iter().all(|t| t["Key"].as_str().unwrap().starts_with("missing/k%20")), "{failures}");
    let err = sys.api.failures(&id, Some(1001)).await.unwrap_err().to_string();
    assert!(err.contains("limit"), "{err}");
    // The report's files, downloadable through their presigned URLs without credentials.
    let links = sys.api.report_files(&id).await?;
    let files = links["Files"].as_array().unwrap();
    let failed: Vec<&Value> = files.iter().filter(|f| f["TaskExecutionStatus"] == "failed").collect();
    assert_eq!(failed.iter().map(|f| f["Rows"].as_u64().unwrap()).sum::<u64>(), 10, "{links}");
    let body = reqwest::get(failed[0]["Url"].as_str().unwrap()).await?.error_for_status()?.text().await?;
    assert_eq!(body.lines().count() as u64, failed[0]["Rows"].as_u64().unwrap(), "{body}");
    assert!(body.lines().all(|l| l.contains("missing/k%20") && l.contains("NoSuchKey")), "{body}");
    let manifest = reqwest::get(links["Manifest"]["Url"].as_str().unwrap()).await?.error_for_status()?.text().await?;
    assert!(manifest.contains(failed[0]["Key"].as_str().unwrap()), "{manifest}");
    // The missing objects arrive; the retry finds them.
    for i in (4..100).step_by(10) {
        sys.put(&src, &format!("missing/k {i}"), "late").await?;
    }
    let child = sys.api.retry_failed(&id).await?;
    assert_eq!(sys.api.retry_failed(&id).await?, child, "asked twice, one job");
    let done = sys.wait_for(&child, &["Complete", "Failed"], LONG).await?;
    assert_eq!(done["Status"], "Complete", "{done}");
    assert_eq!(done["ProgressSummary"]["TotalNumberOfTasks"], 10);
    assert_eq!(done["ProgressSummary"]["NumberOfTasksSucceeded"], 10);
    assert_eq!(done["Description"], format!("Retry of the 10 failed tasks of job {id}"));
    let tags = sys.api.get_job_tagging(&child).await?;
    assert_eq!(tags["Tags"], json!([{"Key": "team", "Value": "data"}, {"Key": "batchops:retry-of", "Value": id}]));
    let (_, rows) = sys.report(&rep, "reports", &child).await?;
    let mut keys: Vec<String> = rows.iter().map(|(_, r)| batchops_e2e::columns(r)[1].clone()).collect();
    keys.sort();
    let mut expected: Vec<String> = (4..100).step_by(10).map(|i| format!("missing/k%20{i}")).collect();
    expected.sort();
    assert_eq!(keys, expected);
    for i in (4..100).step_by(10) {
        assert_eq!(sys.get(&dst, &format!("missing/k {i}")).await?, b"late");
    }
    // A job with nothing failed has nothing to retry.
    let err = sys.api.retry_failed(&child).await.unwrap_err().to_string();
    assert!(err.contains("has no failed tasks"), "{err}");
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_tags_through_the_local_api_keep_s3s_limits() -> Result<()> {
    let sys = System::start(Settings::default(), 1).await?;
    let [man, rep] = sys.buckets(["man", "rep"]).await?;
    let etag = sys.put(&man, "m.csv", format!("{man},nothing\n")).await?;
    let mut s = spec(json!({"S3DeleteObjectTagging": {}}), &man, "m.csv", &etag, &rep);
    s["ConfirmationRequired"] = json!(true);
    s["Tags"] = json!([{"Key": "a", "Value": "1"}]);
    let id = sys.api.create_job(&s).await?;
    assert_eq!(sys.api.get_job_tagging(&id).await?["Tags"], json!([{"Key": "a", "Value": "1"}]));
    let fifty: Vec<Value> = (0..50).map(|i| json!({"Key": format!("k{i}"), "Value": "v"})).collect();
    sys.api.put_job_tagging(&id, &json!(fifty)).await?;
    assert_eq!(sys.api.get_job_tagging(&id).await?["Tags"].as_array().map(Vec::len), Some(50));
    let fifty_one: Vec<Value> = (0..51).map(|i| json!({"Key": format!("k{i}"), "Value": "v"})).collect();
    let err = sys.api.put_job_tagging(&id, &json!(fifty_one)).await.unwrap_err().to_string();
    assert!(err.contains("TooManyTagsException"), "{err}");
    sys.api.delete_job_tagging(&id).await?;
    assert_eq!(sys.api.get_job_tagging(&id).await?["Tags"], json!([]));
    sys.stop().await;
    Ok(())
}

/// The jobs of this system whose Description is `description`.
async fn jobs_described(sys: &System, description: &str) -> Result<Vec<String>> {
    let page = sys.api.list_jobs(&[], Some(1000), None).await?;
    Ok(page["Jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|j| j["Description"] == description)
        .map(|j| j["JobId"].as_str().unwrap_or_default().to_string())
        .collect())
}

/// Waits until `n` jobs carry `description`.
async fn until_jobs(sys: &System, description: &str, n: usize, timeout: Duration) -> Result<Vec<String>> {
    let start = Instant::now();
    loop {
        let jobs = jobs_described(sys, description).await?;
        if jobs.len() >= n {
            return Ok(jobs);
        }
        if start.elapsed() > timeout {
            bail!("{} jobs '{description}' after {timeout:?}, expected {n}", jobs.len());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn new_schedule<'a>(
    sys: &'a System,
    name: &'a str,
    expression: &'a str,
    spec: Value,
) -> batchops::schedules::NewSchedule<'a> {
    batchops::schedules::NewSchedule {
        group: &sys.prefix,
        name,
        expression,
        timezone: None,
        source: batchops::schedules::SpecSource::Inline(spec),
        target_arn: "arn:aws:lambda:us-east-1:123456789012:function:batchops-schedule",
        role_arn: "arn:aws:iam::123456789012:role/batchops-scheduler",
    }
}

/// A CreateJob request running `op` over the objects of `src` modified after `created_after`.
fn generator_spec(description: &str, op: Value, src: &str, created_after: &str, rep: &str) -> Value {
    json!({
        "AccountId": "123456789012", "Priority": 10, "Description": description,
        "RoleArn": "arn:aws:iam::123456789012:role/batchops-tests",
        "Operation": op,
        "ManifestGenerator": {"S3JobManifestGenerator": {"SourceBucket": format!("arn:aws:s3:::{src}"),
            "EnableManifestOutput": false, "Filter": {"CreatedAfter": created_after}}},
        "Report": {"Bucket": format!("arn:aws:s3:::{rep}"), "Format": "Report_CSV_20180820",
                   "Enabled": true, "Prefix": "reports", "ReportScope": "AllTasks"}
    })
}

/// Where DescribeJob shows a generator's CreatedAfter, resolved when it was given relative.
const CREATED_AFTER: &str = "/ManifestGenerator/S3JobManifestGenerator/Filter/CreatedAfter";

/// A time DescribeJob shows (ISO 8601).
fn shown_time(job: &Value, pointer: &str) -> Result<Timestamp> {
    let text = job.pointer(pointer).and_then(Value::as_str).with_context(|| format!("{pointer} of {job}"))?;
    Ok(text.parse()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_at_schedule_creates_one_job_over_its_relative_window_even_when_delivered_twice() -> Result<()> {
    let sys = System::start(Settings::default(), 2).await?;
    let [src, dst, rep] = sys.buckets(["src", "dst", "rep"]).await?;
    for i in 0..5 {
        sys.put(&src, &format!("old/{i}"), "before the window").await?;
    }
    // The store stamps objects in whole seconds: two seconds on, the new objects are at least
    // two of its seconds after the old ones, room for a window that opens between them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..3 {
        sys.put(&src, &format!("new/{i}"), "inside the window").await?;
    }
    // The window opens just after the old objects as the store lists them (the generator keeps
    // what is listed after it), counted back from a firing time chosen here: it resolves to
    // the same instant however long any step takes.
    let listed = sys.clients.s3.list_objects_v2().bucket(&src).send().await?;
    let stamps = |prefix: &'static str| {
        listed
            .contents()
            .iter()
            .filter(move |o| o.key().is_some_and(|k| k.starts_with(prefix)))
            .filter_map(|o| Timestamp::from_nanosecond(o.last_modified()?.as_nanos()).ok())
    };
    let (old, new) = (stamps("old/").max().context("old/ listed")?, stamps("new/").min().context("new/ listed")?);
    let opens = Timestamp::from_second(old.as_second())? + SignedDuration::from_secs(1);
    assert!(opens < new, "the store stamped new/ ({new}) after the window opens ({opens})");
    let at = Timestamp::from_second(Timestamp::now().as_second())? + SignedDuration::from_secs(4);
    let back = at.duration_since(opens).as_secs();
    let description = format!("nightly {}", sys.prefix);
    let op = json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{dst}")}});
    let spec = generator_spec(&description, op, &src, &format!("-PT{back}S"), &rep);
    let at = at.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let scheduler = aws_sdk_scheduler::Client::new(&sys.clients.sdk);
    let expression = format!("at({at})");
    batchops::schedules::create(&scheduler, &new_schedule(&sys, "once", &expression, spec)).await?;
    let jobs = until_jobs(&sys, &description, 1, Duration::from_secs(60)).await?;
    // The scheduler delivers the same firing again: no second job.
    let input = batchops::schedules::firing_input(&scheduler, &sys.prefix, "once", &format!("{at}Z")).await?;
    let intake = job_intake::intake(&sys.handle.config, &sys.clients);
    let objects = batchops_aws::S3ObjectStore::new(sys.clients.s3.clone());
    let again = job_intake::schedule::handle(&intake, &objects, input.as_bytes()).await?;
    assert_eq!(jobs, [again.to_string()]);
    let job = sys.wait_for(&jobs[0], &["Complete", "Failed"], LONG).await?;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["TotalNumberOfTasks"], 3, "only the objects inside the window: {job}");
    assert_eq!(
        shown_time(&job, CREATED_AFTER)?,
        opens,
        "DescribeJob shows the window resolved from the firing's time: {job}"
    );
    for i in 0..3 {
        assert_eq!(sys.get(&dst, &format!("new/{i}")).await?, b"inside the window");
    }
    for i in 0..5 {
        assert!(sys.get(&dst, &format!("old/{i}")).await.is_err(), "old/{i} is outside the window");
    }
    assert_eq!(jobs_described(&sys, &description).await?.len(), 1);
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_schedule_fires_every_minute() -> Result<()> {
    let sys = System::start(Settings::default(), 1).await?;
    let [src, rep] = sys.buckets(["src", "rep"]).await?;
    let description = format!("every minute {}", sys.prefix);
    // A relative window resolves from the firing's scheduled time (not from when the job was
    // made), so each job's DescribeJob tells when its firing was due: an hour after CreatedAfter.
    let spec = generator_spec(&description, json!({"S3DeleteObjectTagging": {}}), &src, "-PT1H", &rep);
    let scheduler = aws_sdk_scheduler::Client::new(&sys.clients.sdk);
    batchops::schedules::create(&scheduler, &new_schedule(&sys, "minutely", "rate(1 minute)", spec)).await?;
    let listed = batchops::schedules::list(&scheduler, &sys.prefix).await?;
    assert_eq!(listed[0]["ScheduleExpression"], "rate(1 minute)");
    let jobs = until_jobs(&sys, &description, 2, LONG).await?;
    batchops::schedules::delete(&scheduler, &sys.prefix, "minutely").await?;
    let mut due = Vec::new();
    for id in &jobs {
        let job = sys.api.describe_job(id).await?["Job"].clone();
        let scheduled = shown_time(&job, CREATED_AFTER)? + SignedDuration::from_hours(1);
        // Fired when due, not before: not all at once.
        assert!(shown_time(&job, "/CreationTime")? >= scheduled, "job {id} made before {scheduled}: {job}");
        due.push(scheduled);
    }
    due.sort();
    let gaps: Vec<i64> = due.windows(2).map(|w| w[1].duration_since(w[0]).as_secs()).collect();
    assert!(gaps.iter().all(|&g| g == 60), "one job per firing, firings a minute apart: {due:?}");
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_of_more_chunks_than_report_segments_reports_merged_files_and_its_failures_can_be_retried() -> Result<()>
{
    // 404 tasks in 41 chunks of 10, reported in 8 segments at most: 7 segments of 6 chunks,
    // merged by the finalizer on its own queue (in production: 500 segments).
    let settings = Settings { chunk_size: 10, report_segments: 8, ..Settings::default() };
    let sys = System::start(settings, 4).await?;
    let [src, man, rep] = sys.buckets(["src", "man", "rep"]).await?;
    put_many(&sys, &src, 400).await?;
    let lines: String =
        (0..400).map(|i| format!("{src},obj-{i}\n")).chain((0..4).map(|i| format!("{src},gone-{i}\n"))).collect();
    let etag = sys.put(&man, "m.csv", lines).await?;
    let op = json!({"S3PutObjectTagging": {"TagSet": [{"Key": "k", "Value": "v"}]}});
    let id = sys.api.create_job(&spec(op, &man, "m.csv", &etag, &rep)).await?;
    let job = sys.wait_for(&id, &["Complete", "Failed"], LONG).await?;
    assert_eq!(job["Status"], "Complete", "{job}");
    let (manifest, rows) = sys.report(&rep, "reports", &id).await?;
    let files = manifest["Results"].as_array().context("Results")?;
    // 7 files of successes; the 4 missing keys are in the last chunk: one file of failures.
    assert_eq!(files.len(), 8, "{manifest}");
    assert_eq!(rows.len(), 404);
    let mut keys: Vec<String> = rows.iter().map(|(_, r)| batchops_e2e::columns(r)[1].clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 404, "each row once");
    assert_eq!(rows.iter().filter(|(s, _)| s == "failed").count(), 4);
    // The chunks' own files were merged away: only the listed files are left.
    let listed =
        sys.clients.s3.list_objects_v2().bucket(&rep).prefix(format!("reports/job-{id}/results/")).send().await?;
    assert_eq!(listed.key_count(), Some(8));
    // The retry job reads the failed rows from the merged files.
    let child = sys.api.retry_failed(&id).await?;
    let done = sys.wait_for(&child, &["Complete", "Failed"], LONG).await?;
    assert_eq!(done["ProgressSummary"]["TotalNumberOfTasks"], 4, "{done}");
    sys.stop().await;
    Ok(())
}
