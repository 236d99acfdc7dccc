//! What the contract suites build their cases from: jobs of accounts of their own, chunk
//! records, claims.

use jiff::{SignedDuration, Timestamp};

use crate::job::{Job, JobId, JobStatus};
use crate::ports::{now_ms, ChunkLease, ChunkRecord, CreateOutcome, JobRecords, ResultFile};
use crate::spec::JobSpec;
use crate::Result;

/// A fresh account ID: jobs are listed by account, so cases (and suites sharing a table) do
/// not see each other's jobs.
pub(super) fn account() -> String {
    format!("{:012}", uuid::Uuid::new_v4().as_u128() % 1_000_000_000_000)
}

/// A new job of `account`, created `offset_secs` from now.
pub(super) fn job(account: &str, offset_secs: i64) -> Job {
    let spec = JobSpec { priority: Some(3), description: Some("contract".into()), ..JobSpec::default() };
    let created = Timestamp::now() + SignedDuration::from_secs(offset_secs);
    let id = JobId::new_random();
    Job::new(id.clone(), spec, format!("arn:aws:s3:us-east-1:{account}:job/{id}"), created)
}

/// Stores `job` under a token of its own.
pub(super) async fn create(store: &dyn JobRecords, job: &Job) -> Result<()> {
    let token = format!("{}#{}", job.account(), job.id);
    assert_eq!(store.create(job, &token, "hash").await?, CreateOutcome::Created, "job {}", job.id);
    Ok(())
}

/// A stored job of a fresh account, in `status`.
pub(super) async fn stored_job(store: &dyn JobRecords, status: JobStatus) -> Result<Job> {
    let job = job(&account(), 0);
    create(store, &job).await?;
    set_status(store, &job.id, status).await
}

/// Writes the job's status as it is read now (the store checks no transition).
pub(super) async fn set_status(store: &dyn JobRecords, id: &JobId, status: JobStatus) -> Result<Job> {
    let mut job = store.get(id).await?;
    job.status = status;
    store.put(&job).await
}

/// A chunk's record: `ok` tasks succeeded, `ko` failed, one result file.
pub(super) fn chunk(index: u64, ok: u64, ko: u64) -> ChunkRecord {
    let file = ResultFile { key: format!("r/{index}.csv"), status: "succeeded".into(), md5: "00".into(), rows: ok };
    ChunkRecord { index, succeeded: ok, failed: ko, files: vec![file] }
}

/// `n` result files whose keys are `key_bytes` long: records of many make a query page stop
/// at DynamoDB's 1 MB before its limit.
pub(super) fn files(n: usize, key_bytes: usize) -> Vec<ResultFile> {
    (0..n)
        .map(|i| ResultFile {
            key: format!("{i:06}{}", "k".repeat(key_bytes.saturating_sub(6))),
            status: "failed".into(),
            md5: "00".into(),
            rows: 1,
        })
        .collect()
}

/// A claim of `owner` on chunk `index` that holds `secs` from now (lapsed when negative).
pub(super) fn lease(index: u64, owner: &str, secs: i64) -> ChunkLease {
    ChunkLease { index, owner: owner.into(), until_ms: (now_ms() as i64 + secs * 1000) as u64 }
}
