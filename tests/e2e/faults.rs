//! Faults injected on purpose, against `batchops local` run as its own process (so it can be
//! killed) with S3 behind the fault proxy. Every test ends with the same check: one report row
//! per task that ran (each key once), counters equal to the rows, the job in a final status.
//! Sizes fit CI; `BATCHOPS_CHAOS_TASKS` (as `make chaos` sets it) makes the big ones bigger.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use aws_sdk_s3::primitives::ByteStream;
use batchops_e2e::faults::{most_within, FaultProxy, Faults, Injected, Scope};
use batchops_e2e::process::LocalProcess;
use batchops_e2e::{clients, columns, endpoint, read_report, spec, unique};
use futures::StreamExt;
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(600);

/// Tasks of the bigger fault tests: 2,000 in `make test`, `BATCHOPS_CHAOS_TASKS` otherwise.
fn big() -> usize {
    std::env::var("BATCHOPS_CHAOS_TASKS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
}

/// One fault scenario: buckets with `n` source objects, a manifest of them, the proxy, and
/// `batchops local` with S3 behind the proxy.
struct Scene {
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    proxy: FaultProxy,
    local: LocalProcess,
    src: String,
    dst: String,
    rep: String,
    man: String,
    etag: String,
    keys: Vec<String>,
}

/// The environment of `batchops local`: AWS at the emulator, S3 (or everything, `all`)
/// through the proxy, small chunks, and `extra`.
fn env(proxy: &FaultProxy, all: bool, extra: &[(&str, &str)]) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = vec![
        ("AWS_ENDPOINT_URL", if all { proxy.url.clone() } else { endpoint() }),
        ("AWS_ENDPOINT_URL_S3", proxy.url.clone()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("BATCHOPS_CHUNK_SIZE", "100".into()),
        ("RUST_LOG", "info".into()),
    ];
    for (k, v) in extra {
        let k: &'static str = Box::leak(k.to_string().into_boxed_str());
        env.retain(|(name, _)| *name != k);
        env.push((k, v.to_string()));
    }
    env
}

impl Scene {
    async fn start(n: usize, faults: Faults, all: bool, extra: &[(&str, &str)], workers: usize) -> Result<Scene> {
        let c = clients().await;
        let prefix = unique("f");
        let [src, dst, rep, man] = ["src", "dst", "rep", "man"].map(|t| format!("{prefix}-{t}"));
        for b in [&src, &dst, &rep, &man] {
            c.s3.create_bucket().bucket(b).send().await.with_context(|| format!("create {b}"))?;
        }
        let keys: Vec<String> = (0..n).map(|i| format!("obj/{i:06}")).collect();
        let puts = futures::stream::iter(keys.iter().cloned())
            .map(|k| {
                let (s3, src) = (c.s3.clone(), src.clone());
                async move {
                    s3.put_object().bucket(&src).key(&k).body(ByteStream::from(k.clone().into_bytes())).send().await
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        for p in puts {
            p?;
        }
        let body: String = keys.iter().map(|k| format!("{src},{k}\n")).collect();
        let out = c.s3.put_object().bucket(&man).key("m.csv").body(ByteStream::from(body.into_bytes())).send().await?;
        let etag = out.e_tag().unwrap_or_default().to_string();
        let proxy = FaultProxy::start(&endpoint(), faults).await?;
        let local = LocalProcess::start(&prefix, workers, &env(&proxy, all, extra)).await?;
        Ok(Scene { s3: c.s3, sqs: c.sqs, proxy, local, src, dst, rep, man, etag, keys })
    }

    async fn copy_job(&self, priority: i64) -> Result<String> {
        let op = json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{}", self.dst)}});
        let mut body = spec(op, &self.man, "m.csv", &self.etag, &self.rep);
        body["Priority"] = json!(priority);
        self.local.api.create_job(&body).await
    }

    async fn job(&self, id: &str) -> Result<Value> {
        Ok(self.local.api.describe_job(id).await?["Job"].clone())
    }

    /// Polls until `done` holds of the job (or fails after `LONG`).
    async fn until(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Result<Value> {
        let start = Instant::now();
        loop {
            let job = self.job(id).await;
            if let Ok(job) = &job {
                if done(job) {
                    return Ok(job.clone());
                }
            }
            ensure!(start.elapsed() < LONG, "job {id} not {what} after {LONG:?}: {job:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn ended(&self, id: &str) -> Result<Value> {
        self.until(id, "ended", is_final).await
    }

    /// Waits until the store has received `n` copies (or fails after `LONG`).
    async fn until_copies(&self, n: u64) -> Result<()> {
        let prefix = format!("/{}/", self.dst);
        let start = Instant::now();
        while self.proxy.stats.forwarded_count("PUT", &prefix) < n {
            ensure!(start.elapsed() < LONG, "fewer than {n} copies after {LONG:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// The destination keys the proxy saw copied (2xx answers), in order.
    fn copied(&self) -> Vec<String> {
        let prefix = format!("/{}/", self.dst);
        self.proxy
            .stats
            .succeeded_paths("PUT")
            .into_iter()
            .filter_map(|p| p.strip_prefix(&prefix).map(String::from))
            .collect()
    }

    /// Waits for the job to end, checks the invariant, and that it completed with every task
    /// succeeded (the faults were all waited out); returns the report's rows.
    async fn every_task_succeeded(&self, id: &str) -> Result<Vec<(String, String, String)>> {
        let job = self.ended(id).await?;
        let rows = self.invariant(&job).await?;
        ensure!(job["Status"] == "Complete", "job {id} did not complete: {job}");
        let failed: Vec<_> = rows.iter().filter(|(s, _, _)| s != "succeeded").collect();
        ensure!(failed.is_empty(), "{} tasks failed, the first: {:?}", failed.len(), failed.first());
        Ok(rows)
    }

    /// The invariant every fault test ends with: the job ended; its report has at most one row
    /// per manifest line, each key once, every row one of the manifest's; the counters equal
    /// the rows. Returns the rows as (status, key, error code).
    async fn invariant(&self, job: &Value) -> Result<Vec<(String, String, String)>> {
        let id = job["JobId"].as_str().context("JobId")?;
        let status = job["Status"].as_str().unwrap_or_default();
        ensure!(["Complete", "Failed", "Cancelled"].contains(&status), "not final: {job}");
        let p = &job["ProgressSummary"];
        let (ok, ko) =
            (p["NumberOfTasksSucceeded"].as_u64().unwrap_or(0), p["NumberOfTasksFailed"].as_u64().unwrap_or(0));
        let rows: Vec<(String, String, String)> = if ok + ko == 0 {
            Vec::new()
        } else {
            read_report(&self.s3, &self.rep, "reports", id)
                .await?
                .1
                .iter()
                .map(|(s, r)| {
                    let c = columns(r);
                    (s.clone(), c[1].clone(), c[5].clone())
                })
                .collect()
        };
        let mut keys: Vec<&str> = rows.iter().map(|(_, k, _)| k.as_str()).collect();
        keys.sort();
        let before = keys.len();
        keys.dedup();
        ensure!(keys.len() == before, "a key is reported twice ({before} rows, {} keys)", keys.len());
        ensure!(keys.iter().all(|k| self.keys.binary_search(&k.to_string()).is_ok()), "a row names no manifest line");
        let succeeded = rows.iter().filter(|(s, _, _)| s == "succeeded").count() as u64;
        ensure!(
            (succeeded, rows.len() as u64 - succeeded) == (ok, ko),
            "counters {ok}/{ko} but {} rows, {succeeded} succeeded",
            rows.len()
        );
        if status == "Complete" {
            ensure!(rows.len() == self.keys.len(), "complete with {} rows of {} lines", rows.len(), self.keys.len());
        }
        Ok(rows)
    }

    /// Messages received from the chunk queue and not deleted or handed back.
    async fn chunks_in_flight(&self) -> Result<u64> {
        let url = self.sqs.get_queue_url().queue_name(format!("{}-chunks", self.local.prefix)).send().await?;
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(url.queue_url().unwrap_or_default())
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await?;
        let n = attrs
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(n)
    }
}

fn succeeded(job: &Value) -> u64 {
    job["ProgressSummary"]["NumberOfTasksSucceeded"].as_u64().unwrap_or(0)
}

fn is_final(job: &Value) -> bool {
    ["Complete", "Failed", "Cancelled"].contains(&job["Status"].as_str().unwrap_or(""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_20_percent_slowdown_and_some_500s_and_cut_connections_every_task_succeeds() -> Result<()> {
    let faults = Faults { scope: Scope::Tasks, slowdown: 0.2, error500: 0.02, reset: 0.02, ..Faults::default() };
    let scene = Scene::start(big(), faults, false, &[], 4).await?;
    let id = scene.copy_job(10).await?;
    let rows = scene.every_task_succeeded(&id).await?;
    assert_eq!(scene.copied().len(), scene.keys.len());
    assert!(scene.proxy.stats.injected() as usize > scene.keys.len() / 5, "faults were injected");
    eprintln!("20% SlowDown: {} tasks, {} faults injected, all succeeded", rows.len(), scene.proxy.stats.injected());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_60_percent_slowdown_at_random_the_job_keeps_its_requests_in_flight_and_ends() -> Result<()> {
    // As while S3 splits a partition: throttling that does not follow the rate. The limiter
    // sees that cutting does not lower it and keeps its requests in flight (cutting for it
    // settled near 3 in flight: the same job had recorded no chunk after 320 s).
    let faults = Faults { scope: Scope::Tasks, slowdown: 0.6, ..Faults::default() };
    let n = big() / 2;
    let scene = Scene::start(n, faults, false, &[], 4).await?;
    let started = Instant::now();
    let id = scene.copy_job(10).await?;
    let job = scene.ended(&id).await?;
    let took = started.elapsed().as_secs_f64();
    let rows = scene.invariant(&job).await?;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(rows.len(), n);
    // A task fails only if all 12 of its throttle attempts are refused (0.6^12: 0.2 %).
    let failed = rows.iter().filter(|(s, _, _)| s == "failed").count();
    assert!(failed <= n / 50, "{failed} of {n} tasks failed");
    let refused = scene.proxy.stats.injected_of(Injected::SlowDown);
    eprintln!(
        "60% SlowDown at random: {n} tasks in {took:.1} s ({:.0}/s), {refused} SlowDowns, {failed} failed",
        n as f64 / took
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_100_percent_slowdown_each_task_fails_with_slowdown_and_the_job_ends() -> Result<()> {
    let faults = Faults { scope: Scope::Tasks, slowdown: 1.0, ..Faults::default() };
    let extra = [("BATCHOPS_MAX_ATTEMPTS", "2"), ("BATCHOPS_THROTTLE_ATTEMPTS", "3")];
    let scene = Scene::start(20, faults, false, &extra, 2).await?;
    let id = scene.copy_job(10).await?;
    let job = scene.ended(&id).await?;
    let rows = scene.invariant(&job).await?;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(rows.len(), 20);
    assert!(rows.iter().all(|(s, _, code)| s == "failed" && code == "SlowDown"), "{rows:?}");
    assert!(scene.copied().is_empty());
    Ok(())
}

/// A job Active (or Preparing) when `batchops local` is killed with SIGKILL completes after a
/// restart, with an exact report.
async fn killed_and_restarted(preparing: bool) -> Result<()> {
    let extra: Vec<(&str, &str)> = if preparing {
        // The chunker continues itself after every chunk: preparation takes a while.
        vec![("BATCHOPS_LEASE_SECS", "10"), ("BATCHOPS_TIME_BUDGET_SECS", "0"), ("BATCHOPS_CHUNK_SIZE", "20")]
    } else {
        vec![("BATCHOPS_LEASE_SECS", "10")]
    };
    let mut scene = Scene::start(1500, Faults::default(), false, &extra, 4).await?;
    let id = scene.copy_job(10).await?;
    let at = if preparing {
        scene
            .until(&id, "preparing with tasks found", |j| {
                j["Status"] == "Preparing" && j["PreparationProgress"]["TasksPrepared"].as_u64().unwrap_or(0) > 0
            })
            .await?
    } else {
        scene.until(&id, "active with work done", |j| j["Status"] == "Active" && succeeded(j) >= 300).await?
    };
    scene.local.kill9().await?;
    let restarted = Instant::now();
    scene.local.restart().await?;
    let job = scene.ended(&id).await?;
    let took = restarted.elapsed();
    scene.invariant(&job).await?;
    assert_eq!(job["Status"], "Complete", "{job}");
    eprintln!(
        "killed while {} ({} succeeded): complete {:.1} s after the restart",
        at["Status"],
        succeeded(&at),
        took.as_secs_f64()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_active_when_batchops_is_killed_completes_exactly_after_a_restart() -> Result<()> {
    killed_and_restarted(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_preparing_when_batchops_is_killed_completes_exactly_after_a_restart() -> Result<()> {
    killed_and_restarted(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_while_chunks_run_reports_exactly_the_copies_made() -> Result<()> {
    let scene = Scene::start(big(), Faults { scope: Scope::Tasks, ..Faults::default() }, false, &[], 4).await?;
    let id = scene.copy_job(10).await?;
    scene.until(&id, "active with work done", |j| succeeded(j) >= 200).await?;
    scene.local.api.update_job_status(&id, "Cancelled", Some("enough")).await?;
    let job = scene.ended(&id).await?;
    let rows = scene.invariant(&job).await?;
    assert_eq!(job["Status"], "Cancelled", "{job}");
    let reported: Vec<String> =
        rows.iter().map(|(_, k, _)| k.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    assert_eq!(reported, scene.copied(), "the report holds exactly the copies the store received");
    assert!(rows.len() < scene.keys.len(), "cancelled before the end");
    eprintln!("cancelled: {} of {} tasks ran, each reported once", rows.len(), scene.keys.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_failed_by_the_threshold_reports_every_task_that_ran() -> Result<()> {
    let scene = Scene::start(big(), Faults { scope: Scope::Tasks, ..Faults::default() }, false, &[], 4).await?;
    // Most sources vanish: their copies fail (404), and the job crosses S3's threshold.
    let mut gone = 0;
    for k in scene.keys.iter().filter(|k| !k.ends_with('0')) {
        scene.s3.delete_object().bucket(&scene.src).key(k).send().await?;
        gone += 1;
    }
    let id = scene.copy_job(10).await?;
    let job = scene.ended(&id).await?;
    let rows = scene.invariant(&job).await?;
    assert_eq!(job["Status"], "Failed", "{job}");
    assert_eq!(job["FailureReasons"][0]["FailureCode"], "TaskFailureThresholdExceeded");
    let prefix = format!("/{}/", scene.dst);
    let requested = scene.proxy.stats.forwarded_count("PUT", &prefix);
    assert_eq!(rows.len() as u64, requested, "one row per copy request the store received");
    eprintln!(
        "threshold: {} of {} tasks ran ({gone} sources missing), each reported once",
        rows.len(),
        scene.keys.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_the_chunks_back_and_a_restart_resumes_them() -> Result<()> {
    let mut scene = Scene::start(1500, Faults::default(), false, &[], 4).await?;
    let id = scene.copy_job(10).await?;
    scene.until(&id, "active with work done", |j| j["Status"] == "Active" && succeeded(j) >= 200).await?;
    let status = scene.local.term(Duration::from_secs(60)).await?;
    assert!(status.success(), "exit status {status}");
    assert_eq!(scene.chunks_in_flight().await?, 0, "every chunk in hand was handed back");
    let restarted = Instant::now();
    scene.local.restart().await?;
    let job = scene.ended(&id).await?;
    scene.invariant(&job).await?;
    assert_eq!(job["Status"], "Complete", "{job}");
    eprintln!("SIGTERM: complete {:.1} s after the restart", restarted.elapsed().as_secs_f64());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_longer_than_its_lease_keeps_its_message() -> Result<()> {
    // One chunk of 40 tasks, one at a time, 250 ms each: 10 s, against a 6 s lease.
    let faults = Faults { scope: Scope::Tasks, latency: Duration::from_millis(250), ..Faults::default() };
    let extra = [("BATCHOPS_LEASE_SECS", "6"), ("BATCHOPS_CHUNK_SIZE", "40"), ("BATCHOPS_TASK_CONCURRENCY", "1")];
    let scene = Scene::start(40, faults, false, &extra, 2).await?;
    let id = scene.copy_job(10).await?;
    let job = scene.ended(&id).await?;
    scene.invariant(&job).await?;
    assert_eq!(job["Status"], "Complete", "{job}");
    let prefix = format!("/{}/", scene.dst);
    assert_eq!(scene.proxy.stats.forwarded_count("PUT", &prefix), 40, "no second executor ran the chunk");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_throttling_and_an_sqs_outage_are_waited_out() -> Result<()> {
    // Every AWS request goes through the proxy; one in ten DynamoDB requests is throttled.
    let faults = Faults { scope: Scope::DynamoDb, slowdown: 0.1, ..Faults::default() };
    let scene = Scene::start(500, faults, true, &[], 4).await?;
    let stats = &scene.proxy.stats;
    let id = scene.copy_job(10).await?;
    // The outage starts once the job runs and has met the throttling (the job's every read,
    // this test's polls included, is a DynamoDB request).
    let throttled = |j: &Value| j["Status"] == "Active" && stats.injected_of(Injected::SlowDown) > 0;
    let at = scene.until(&id, "active and throttled", |j| throttled(j) || is_final(j)).await?;
    ensure!(at["Status"] == "Active", "the job ended before a DynamoDB request was throttled: {at}");
    let throttles = stats.injected_of(Injected::SlowDown);
    scene.proxy.set(Faults {
        scope: Scope::Sqs,
        outage_until: Some(Instant::now() + Duration::from_secs(3)),
        ..Faults::default()
    });
    let job = scene.ended(&id).await?;
    scene.invariant(&job).await?;
    assert_eq!(job["Status"], "Complete", "{job}");
    // Counted apart from the throttles: the outage itself refused requests.
    let refused = stats.injected_of(Injected::Outage);
    assert!(refused > 0, "the SQS outage refused no request");
    eprintln!("{throttles} DynamoDB requests throttled, then {refused} SQS requests refused in a 3 s outage; complete");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_jobs_created_within_a_second_all_complete_exactly() -> Result<()> {
    let scene = Scene::start(150, Faults::default(), false, &[("BATCHOPS_CHUNK_SIZE", "25")], 4).await?;
    let mut ids = Vec::new();
    for p in 0..8 {
        ids.push(scene.copy_job(p * 10).await?);
    }
    for id in &ids {
        let job = scene.ended(id).await?;
        scene.invariant(&job).await?;
        assert_eq!(job["Status"], "Complete", "{job}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_higher_priority_job_overtakes_and_the_lower_one_pauses_then_resumes() -> Result<()> {
    // Two executors, chunks of 50, every copy 20 ms: the low job takes a while.
    let faults = Faults { scope: Scope::Tasks, latency: Duration::from_millis(20), ..Faults::default() };
    let extra = [("BATCHOPS_CHUNK_SIZE", "50"), ("BATCHOPS_TASK_CONCURRENCY", "8")];
    let scene = Scene::start(1500, faults, false, &extra, 2).await?;
    let low = scene.copy_job(1).await?;
    scene.until(&low, "active with work done", |j| j["Status"] == "Active" && succeeded(j) >= 100).await?;
    let created = Instant::now();
    let high = scene.copy_job(100).await?;
    let mut low_statuses: Vec<String> = Vec::new();
    let (mut first_task, mut high_done, mut low_done_then) = (None, None, 0);
    loop {
        let (l, h) = (scene.job(&low).await?, scene.job(&high).await?);
        let status = l["Status"].as_str().unwrap_or_default().to_string();
        if low_statuses.last() != Some(&status) {
            low_statuses.push(status.clone());
        }
        if first_task.is_none() && succeeded(&h) > 0 {
            first_task = Some(created.elapsed());
        }
        if high_done.is_none() && h["Status"] == "Complete" {
            high_done = Some(created.elapsed());
            low_done_then = succeeded(&l);
        }
        if high_done.is_some() && ["Complete", "Failed", "Cancelled"].contains(&status.as_str()) {
            break;
        }
        ensure!(created.elapsed() < LONG, "jobs still running: {l} {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in [&low, &high] {
        let job = scene.ended(id).await?;
        scene.invariant(&job).await?;
        assert_eq!(job["Status"], "Complete", "{job}");
    }
    assert!(low_statuses.iter().any(|s| s == "Paused"), "the low job paused: {low_statuses:?}");
    let paused_at = low_statuses.iter().position(|s| s == "Paused").unwrap_or(0);
    assert!(low_statuses[paused_at..].iter().any(|s| s == "Active"), "and resumed: {low_statuses:?}");
    assert!(low_done_then < 1500, "the high job completed while the low one had work left");
    eprintln!(
        "priority: the high job's first task {:.1} s after it was created, complete after {:.1} s (the low job had {low_done_then} of 1500 done); low job statuses {low_statuses:?}",
        first_task.unwrap_or_default().as_secs_f64(),
        high_done.unwrap_or_default().as_secs_f64()
    );
    Ok(())
}

/// The most copies a job limited to `rate` a second may send within `window`: the rate over
/// the window and two seconds' worth more, for each chunk's token bucket (a fifth of a second
/// of its share, at least one task), for a share that lags a change by a job check, and for
/// copies a stall bunched on their way to the store. A slower machine otherwise sends fewer.
fn most_at_rate(rate: u64, window: Duration) -> usize {
    (rate as f64 * (window.as_secs_f64() + 2.0)) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_rate_limit_holds_across_executors_and_can_change_while_it_runs() -> Result<()> {
    // Four chunks of 250, one per executor: all four share the job's rate to the end, and the
    // change reaches chunks that are running (at 40/s none is through before it).
    let extra = [("BATCHOPS_CHUNK_SIZE", "250"), ("BATCHOPS_JOB_CHECK_MS", "500")];
    let scene = Scene::start(1000, Faults { scope: Scope::Tasks, ..Faults::default() }, false, &extra, 4).await?;
    let op = json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{}", scene.dst)}});
    let mut body = spec(op, &scene.man, "m.csv", &scene.etag, &scene.rep);
    body["MaxTasksPerSecond"] = json!(40);
    let id = scene.local.api.create_job(&body).await?;
    // Counted once every chunk runs on its share: one that starts before the others has more
    // until its next job check.
    scene.until_copies(80).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fast = Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let changing = Instant::now();
    scene.local.api.update_job_rate(&id, 15).await?;
    // Running chunks take their new share at their next job check, every 500 ms.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let slow = Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let raising = Instant::now();
    assert_eq!(scene.job(&id).await?["MaxTasksPerSecond"], 15);
    scene.local.api.update_job_rate(&id, 1000).await?;
    scene.every_task_succeeded(&id).await?;
    let window = Duration::from_secs(4);
    let (at40, at15) = (scene.proxy.stats.forwarded_at(fast, changing), scene.proxy.stats.forwarded_at(slow, raising));
    let (busiest40, busiest15) = (most_within(&at40, window), most_within(&at15, window));
    eprintln!(
        "rate limit: at 40/s {} copies in 8 s, at most {busiest40} within 4 s; changed to 15/s, {} in 8 s, at most {busiest15} within 4 s",
        at40.len(),
        at15.len()
    );
    assert!(!at40.is_empty() && !at15.is_empty(), "no copies while the job was limited: nothing was counted");
    assert!(busiest40 <= most_at_rate(40, window), "{busiest40} copies within {window:?} at a limit of 40/s");
    assert!(busiest15 <= most_at_rate(15, window), "{busiest15} copies within {window:?} after the change to 15/s");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_store_that_throttles_above_a_fixed_rate_no_task_fails_and_the_rate_is_used() -> Result<()> {
    // The store answers SlowDown to copies beyond 60 a second (with a second's burst); four
    // executors of 64 tasks each would send far more.
    let limit = 60.0;
    let faults = Faults { scope: Scope::Tasks, rate_limit: Some(limit), ..Faults::default() };
    let scene = Scene::start(1200, faults, false, &[("BATCHOPS_CHUNK_SIZE", "100")], 4).await?;
    let created = Instant::now();
    let id = scene.copy_job(10).await?;
    scene.every_task_succeeded(&id).await?;
    assert_eq!(scene.copied().len(), scene.keys.len(), "every copy reached the store");
    // The store refuses a copy only when the job has used all of its rate: the job reached the
    // limit, and no task failed for it.
    let refused = scene.proxy.stats.injected_of(Injected::SlowDown);
    assert!(refused > 0, "the store never throttled: the job never used its whole rate");
    // How fast it went is a figure, not a check (speed belongs to the benchmarks).
    let at = scene.proxy.stats.forwarded_at(created, Instant::now());
    let busiest = most_within(&at, Duration::from_secs(1));
    let span = match (at.first(), at.last()) {
        (Some(first), Some(last)) => last.duration_since(*first).as_secs_f64(),
        _ => 0.0,
    };
    eprintln!(
        "throttled store: {} copies in {span:.1} s against a limit of {limit}/s, at most {busiest} in one second; {refused} SlowDowns, no task failed",
        at.len()
    );
    Ok(())
}

/// Runs a copy job while `share` of the requests in `scope` reach the store, which applies
/// them, and then lose their answer to a cut connection: the client cannot tell whether its
/// write happened, and tries again. From the job's creation on (a retried CreateJob finds its
/// client request token); the start of `batchops local` is spared. Checks the invariant, that
/// the job completed with every task succeeded, and that answers were lost.
async fn with_answers_lost(scope: Scope, share: f64, n: usize, extra: &[(&str, &str)]) -> Result<Scene> {
    // Only S3 is behind the proxy unless everything is.
    let all = scope != Scope::Tasks;
    let scene = Scene::start(n, Faults { scope, ..Faults::default() }, all, extra, 4).await?;
    scene.proxy.set(Faults { scope, lost: share, ..Faults::default() });
    let id = scene.copy_job(10).await?;
    let rows = scene.every_task_succeeded(&id).await?;
    let lost = scene.proxy.stats.injected_of(Injected::Lost);
    assert!(lost > 0, "no answer was lost: nothing was tested");
    eprintln!(
        "{scope:?}: {lost} answers lost after the store applied the request; {} tasks, each reported once",
        rows.len()
    );
    Ok(scene)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_writes_whose_answers_are_lost_are_counted_once() -> Result<()> {
    // One DynamoDB request in ten is carried out and its answer lost; the SDK tries it again.
    // Chunks of 20 make many chunk claims and records (conditional writes whose retry meets
    // the write it repeats); a claim whose every answer was lost lapses within the 10 s lease.
    let extra = [("BATCHOPS_CHUNK_SIZE", "20"), ("BATCHOPS_LEASE_SECS", "10")];
    with_answers_lost(Scope::DynamoDb, 0.1, 400, &extra).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_whose_answers_are_lost_are_tried_again_and_reported_once() -> Result<()> {
    // One copy in twenty is made unseen; its task tries again (five attempts).
    let scene = with_answers_lost(Scope::Tasks, 0.05, 400, &[("BATCHOPS_CHUNK_SIZE", "50")]).await?;
    assert_eq!(scene.copied().len(), scene.keys.len(), "every copy reached the store");
    Ok(())
}
