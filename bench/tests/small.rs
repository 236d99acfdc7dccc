//! The benchmarks' code on small inputs against moto (`make test`): the request counting and
//! pricing of `make cost`, the report check of `make bench-scale` and the bare loop of
//! `make bench`. A process of its own, so its request counts are its own.

use std::time::Duration;

use anyhow::Result;
use batchops::client::ApiClient;
use batchops_aws::metering::{self, TallyKey};
use batchops_aws::{Clients, OpsSettings};
use batchops_bench::cost::{Bill, Model};
use batchops_bench::harness::{self, job_spec, make_buckets, put_manifest, put_objects, run_job};
use batchops_core::pipeline::Settings;
use serde_json::json;

async fn clients() -> Clients {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "bench-tests"))
        .load()
        .await;
    Clients::from_sdk_config(&sdk)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_job_is_counted_priced_and_its_report_checked() -> Result<()> {
    let clients = clients().await;
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let [src, dst, bare, man, rep] = ["src", "dst", "bare", "man", "rep"].map(|b| format!("b{b}-{tag}"));
    make_buckets(&clients.s3, &[&src, &dst, &bare, &man, &rep]).await?;
    let keys = harness::keys(40);
    put_objects(&clients.s3, &src, &keys, b"small", 8).await?;
    let etag = put_manifest(&clients.s3, &man, "m.csv", &src, &keys).await?;
    let settings = Settings { chunk_size: 10, ..Settings::default() };
    let local = harness::start_local(&clients, format!("bt-{tag}"), 2, settings, OpsSettings::default()).await?;
    let api = ApiClient::new(&local.api_url);
    let op = json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{dst}")}});

    metering::enable();
    let ended = run_job(&api, &job_spec(&tag, op, &man, "m.csv", &etag, &rep), Duration::from_millis(200)).await?;
    let (tallies, invocations) = (metering::tallies(), metering::invocations());
    local.stop().await;
    assert_eq!(ended.job["Status"], "Complete", "{}", ended.job);

    // Every copy is one CopyObject of the task class; the manifest read and the report are
    // orchestration's.
    let count = |class: &str, service: &str, op: &str| {
        tallies
            .iter()
            .filter(|((c, s, o), _)| *c == class && s.eq_ignore_ascii_case(service) && o == op)
            .map(|(_, t)| t.requests)
            .sum::<u64>()
    };
    assert_eq!(count("task", "s3", "CopyObject"), 40, "{tallies:?}");
    assert_eq!(count("orchestration", "s3", "CopyObject"), 0, "copies are the operation's own: {tallies:?}");
    assert!(count("orchestration", "s3", "GetObject") >= 1, "the manifest is read: {tallies:?}");
    assert!(count("orchestration", "s3", "PutObject") >= 5, "4 chunks' results and manifest.json: {tallies:?}");
    assert!(count("orchestration", "sqs", "SendMessage") + count("orchestration", "sqs", "SendMessageBatch") >= 1);
    let transactions = tallies
        .iter()
        .find(|((c, _, o), _)| *c == "orchestration" && o == "TransactWriteItems")
        .map(|(_, t)| t.clone());
    let transactions = transactions.expect("chunks are recorded in transactions");
    assert!(transactions.write_units >= 2.0 * transactions.requests as f64, "a transaction costs two units an item");
    assert!(transactions.items_written >= 4, "{transactions:?}");
    assert_eq!(
        invocations.get("chunks").map(|i| i.count),
        Some(4),
        "one executor invocation per chunk: {invocations:?}"
    );

    let bill = Bill::new(&Model { tasks: 40, task_concurrency: 64, cpu_secs: 0.05 }, &tallies, &invocations);
    assert_eq!(bill.s3_requests_per_task("task"), 1.0);
    assert!((bill.total("task") - 5.0).abs() < 1e-9, "CopyObject is $5 per million: {}", bill.render("copy"));
    assert!(bill.total("orchestration") > 0.0);
    // `make cost`'s table: per 1,000 tasks, one copy each. (Its executor invocations depend on
    // how chunks were delivered, and are not checked here.)
    let table = bill.render("copy");
    assert!(table.contains("| task | S3 | CopyObject (PUT) | 1000.000 | 5.00000 |"), "{table}");

    let (files, bytes) = harness::check_report(&clients.s3, &rep, &ended.id, &keys).await?;
    assert_eq!(files, 4, "one file per chunk (all succeeded)");
    let stored = clients.s3.head_object().bucket(&rep).key(format!("job-{}/manifest.json", ended.id)).send().await?;
    assert_eq!(Some(bytes as i64), stored.content_length(), "the size of manifest.json as stored");
    // A key listed that the report lacks is caught.
    let mut more = keys.clone();
    more.push("never-copied".into());
    assert!(harness::check_report(&clients.s3, &rep, &ended.id, &more).await.is_err());

    // The bare loop is the yardstick of `make bench`: the same request per key as the job's
    // tasks, through the same client, and no other.
    let before = metering::tallies();
    harness::bare_loop(&clients, &src, &bare, &keys, 8).await?;
    let made: Vec<(TallyKey, u64)> = metering::tallies()
        .into_iter()
        .map(|(k, t)| {
            let n = t.requests - before.get(&k).map_or(0, |b| b.requests);
            (k, n)
        })
        .filter(|((class, ..), n)| *class == "task" && *n > 0)
        .collect();
    assert_eq!(made, [(("task", "S3".to_string(), "CopyObject".to_string()), 40)]);
    let copied = clients.s3.list_objects_v2().bucket(&bare).send().await?;
    let mut copied: Vec<&str> = copied.contents().iter().filter_map(|o| o.key()).collect();
    copied.sort_unstable();
    let mut expected: Vec<&str> = keys.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(copied, expected, "each key copied under its own name");
    Ok(())
}
