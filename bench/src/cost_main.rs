//! `make cost`: a copy job and a tagging job of `--tasks` tasks (20,000) run through
//! `batchops local` (every AWS service on the emulator), every request counted
//! (`batchops_aws::metering`) and priced (`batchops_bench::cost`): dollars per million tasks
//! for orchestration and for the operation, next to S3 Batch Operations. Then a small job of
//! every other operation, for its S3 requests per task. Prints figures; asserts nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Result};
use aws_sdk_s3::types::StorageClass;
use batchops::client::ApiClient;
use batchops_aws::{metering, Clients, OpsSettings};
use batchops_bench::cost::{Bill, Model};
use batchops_bench::harness::{self, job_spec, make_buckets, put_manifest, put_objects, run_job};
use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    /// Tasks of the copy and tagging jobs that are priced (two chunks of the stack's size).
    #[arg(long, default_value_t = 20_000)]
    tasks: usize,
    /// Tasks of each other operation's job (S3 requests per task).
    #[arg(long, default_value_t = 200)]
    op_tasks: usize,
    #[arg(long, default_value_t = 4)]
    chunk_workers: usize,
    /// The stack's `TaskConcurrency` and `ChunkSize` defaults (infra/template.yaml): what a
    /// deployed job's chunks cost.
    #[arg(long, default_value_t = 128)]
    task_concurrency: usize,
    #[arg(long, default_value_t = 10_000)]
    chunk_size: u64,
}

/// Everything one run shares: the system, its buckets, and the settings bills are made with.
struct Run {
    clients: Clients,
    api: ApiClient,
    tag: String,
    man: String,
    rep: String,
    task_concurrency: usize,
}

impl Run {
    /// Runs `op` over `keys` of `bucket`, counting from zero; returns the bill.
    async fn priced(&self, name: &str, op: Value, bucket: &str, keys: &[String]) -> Result<Bill> {
        Ok(self.counted(name, op, bucket, keys).await?.0)
    }

    /// [`Run::priced`], with the DynamoDB writes by kind of item.
    async fn counted(
        &self,
        name: &str,
        op: Value,
        bucket: &str,
        keys: &[String],
    ) -> Result<(Bill, BTreeMap<String, u64>)> {
        let manifest = format!("{name}.csv");
        let etag = put_manifest(&self.clients.s3, &self.man, &manifest, bucket, keys).await?;
        let spec = job_spec(&format!("{}-{name}", self.tag), op, &self.man, &manifest, &etag, &self.rep);
        metering::enable();
        let ended = run_job(&self.api, &spec, Duration::from_millis(500)).await?;
        let (tallies, invocations, writes) = (metering::tallies(), metering::invocations(), metering::item_writes());
        let ok = ended.job["ProgressSummary"]["NumberOfTasksSucceeded"].as_u64().unwrap_or(0);
        if ended.job["Status"] != "Complete" || ok != keys.len() as u64 {
            bail!("the {name} job did not succeed on every task: {}", ended.job);
        }
        let model = Model { tasks: keys.len() as u64, task_concurrency: self.task_concurrency, cpu_secs: ended.cpu };
        Ok((Bill::new(&model, &tallies, &invocations), writes))
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let clients = Clients::from_env().await;
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let [src, dst, man, rep, locked, glacier, replica] =
        ["src", "dst", "man", "rep", "lck", "gla", "rpl"].map(|b| format!("{b}-{tag}"));
    make_buckets(&clients.s3, &[&src, &dst, &man, &rep, &glacier]).await?;
    let keys = harness::keys(args.tasks);
    put_objects(&clients.s3, &src, &keys, b"cost", 32).await?;

    let mut settings = batchops_aws::config::settings_from_env()?;
    settings.task_concurrency = args.task_concurrency;
    settings.chunk_size = args.chunk_size;
    let handle =
        harness::start_local(&clients, format!("cost-{tag}"), args.chunk_workers, settings, OpsSettings::default())
            .await?;
    let run = Run {
        clients: clients.clone(),
        api: ApiClient::new(&handle.api_url),
        tag,
        man,
        rep,
        task_concurrency: args.task_concurrency,
    };
    let copy = json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{dst}")}});
    let tags = json!({"S3PutObjectTagging": {"TagSet": [{"Key": "cost", "Value": "1"}]}});
    let (copy_bill, writes) = run.counted("copy", copy.clone(), &src, &keys).await?;
    let tag_bill = run.priced("tagging", tags.clone(), &src, &keys).await?;
    print!("{}", copy_bill.render("S3PutObjectCopy"));
    print!("{}", tag_bill.render("S3PutObjectTagging"));
    let chunks = args.tasks.div_ceil(args.chunk_size as usize) as f64;
    println!(
        "\nDynamoDB writes of the copy job by kind of item (partition key / sort key), per chunk of {} tasks:\n",
        args.chunk_size
    );
    for (kind, n) in &writes {
        println!("  {kind:<24} {n:>8} writes  {:>8.2} per chunk", *n as f64 / chunks);
    }

    let few = &keys[..args.op_tasks.min(keys.len())];
    let mut table = vec![("S3PutObjectCopy".to_string(), copy_bill), ("S3PutObjectTagging".to_string(), tag_bill)];
    for (name, op, bucket) in other_operations(&run, &src, &dst, [&locked, &glacier, &replica], few).await? {
        let bill = run.priced(&name.replace(['(', ')', ' ', ':'], "-"), op, &bucket, few).await?;
        table.push((name, bill));
    }
    println!("\nS3 requests per task (counted; `task` = the operation's own, `orchestration` = manifest, result files, report)\n");
    println!("| operation | task | orchestration | orchestration $ per million tasks |");
    println!("|---|---:|---:|---:|");
    for (name, bill) in &table {
        println!(
            "| {name} ({} tasks) | {:.3} | {:.4} | {:.4} |",
            bill.tasks,
            bill.s3_requests_per_task("task"),
            bill.s3_requests_per_task("orchestration"),
            bill.total("orchestration")
        );
    }
    handle.stop().await;
    Ok(())
}

/// The other operations' jobs: (name, operation, bucket of the objects) over `keys`, with
/// what each needs made first (an Object Lock bucket, archived objects, a replication rule).
async fn other_operations(
    run: &Run,
    src: &str,
    dst: &str,
    [locked, glacier, replica]: [&String; 3],
    keys: &[String],
) -> Result<Vec<(String, Value, String)>> {
    let s3 = &run.clients.s3;
    s3.create_bucket().bucket(locked).object_lock_enabled_for_bucket(true).send().await?;
    put_objects(s3, locked, keys, b"locked", 32).await?;
    for k in keys {
        s3.put_object()
            .bucket(glacier)
            .key(k)
            .storage_class(StorageClass::Glacier)
            .body(b"cold".to_vec().into())
            .send()
            .await?;
    }
    let replicated = make_replication(s3, src, replica).await?;
    let until = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24)).to_string();
    let key_arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let (src, dst, locked, glacier) = (src.to_string(), dst.to_string(), locked.to_string(), glacier.to_string());
    let mut ops = vec![
        (
            "S3PutObjectTagging (MERGE)".into(),
            json!({"S3PutObjectTagging": {"TaggingMode": "MERGE", "TagSet": [{"Key": "m", "Value": "1"}]}}),
            src.clone(),
        ),
        ("S3DeleteObjectTagging".into(), json!({"S3DeleteObjectTagging": {}}), src.clone()),
        (
            "S3PutObjectAcl".into(),
            json!({"S3PutObjectAcl": {"AccessControlPolicy": {"CannedAccessControlList": "private"}}}),
            src.clone(),
        ),
        (
            "S3ComputeObjectChecksum (CRC32)".into(),
            json!({"S3ComputeObjectChecksum": {"ChecksumAlgorithm": "CRC32", "ChecksumType": "FULL_OBJECT"}}),
            src.clone(),
        ),
        (
            "S3UpdateObjectEncryption".into(),
            json!({"S3UpdateObjectEncryption": {"ObjectEncryption": {"SSEKMS": {"KMSKeyArn": key_arn}}}}),
            src.clone(),
        ),
        (
            "S3InitiateRestoreObject".into(),
            json!({"S3InitiateRestoreObject": {"ExpirationInDays": 1, "GlacierJobTier": "BULK"}}),
            glacier,
        ),
        (
            "S3PutObjectRetention".into(),
            json!({"S3PutObjectRetention": {"Retention": {"Mode": "GOVERNANCE", "RetainUntilDate": until}}}),
            locked.clone(),
        ),
        ("S3PutObjectLegalHold".into(), json!({"S3PutObjectLegalHold": {"LegalHold": {"Status": "OFF"}}}), locked),
    ];
    if replicated {
        ops.push(("S3ReplicateObject".into(), json!({"S3ReplicateObject": {}}), src));
    }
    // Last: it deletes the copies.
    ops.push(("S3DeleteObject".into(), json!({"S3DeleteObject": {}}), dst));
    Ok(ops)
}

/// A replication rule from `src` to `replica` (both versioned); false when the store has none.
async fn make_replication(s3: &aws_sdk_s3::Client, src: &str, replica: &str) -> Result<bool> {
    use aws_sdk_s3::types::{
        BucketVersioningStatus, DeleteMarkerReplication, DeleteMarkerReplicationStatus, Destination,
        ReplicationConfiguration, ReplicationRule, ReplicationRuleFilter, ReplicationRuleStatus,
        VersioningConfiguration,
    };
    s3.create_bucket().bucket(replica).send().await?;
    for b in [src, replica] {
        let on = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
        s3.put_bucket_versioning().bucket(b).versioning_configuration(on).send().await?;
    }
    let rule = ReplicationRule::builder()
        .id("all")
        .priority(1)
        .status(ReplicationRuleStatus::Enabled)
        .filter(ReplicationRuleFilter::builder().prefix("").build())
        .delete_marker_replication(
            DeleteMarkerReplication::builder().status(DeleteMarkerReplicationStatus::Disabled).build(),
        )
        .destination(Destination::builder().bucket(format!("arn:aws:s3:::{replica}")).build()?)
        .build()?;
    let config = ReplicationConfiguration::builder().role("arn:aws:iam::123456789012:role/r").rules(rule).build()?;
    Ok(s3.put_bucket_replication().bucket(src).replication_configuration(config).send().await.is_ok())
}
