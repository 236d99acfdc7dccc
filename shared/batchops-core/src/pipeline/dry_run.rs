//! Dry runs (`"DryRun": true`, a batchops member): everything runs but the operation's writes.
//! Each task is checked as far as a read can check it, with one HEAD of its object (or
//! version): the object must exist and be readable by the job's role. Its report row says
//! what would have happened; nothing is changed. What only the write itself would reveal
//! (the destination accepting a copy, Object Lock refusing a retention, a Lambda function's
//! answer) is not checked: the README lists it per operation.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::ops::compute_checksum::ChecksumType;
use crate::ops::put_object_tagging::TaggingMode;
use crate::ops::{Operation, Task};
use crate::ports::{JobPorts, ObjectStore, OperationRunner};
use crate::retry::{Outcome, TaskFailure};

/// HEADs of one batch run at once.
const BATCH_CONCURRENCY: usize = 32;

/// The runner of a dry run: reads, never writes.
pub struct DryRunner {
    objects: Arc<dyn ObjectStore>,
}

impl DryRunner {
    /// The ports of a dry run: the job's object store, and this runner instead of the real one.
    pub fn ports(real: &JobPorts) -> JobPorts {
        JobPorts { objects: real.objects.clone(), runner: Arc::new(DryRunner { objects: real.objects.clone() }) }
    }
}

#[async_trait]
impl OperationRunner for DryRunner {
    async fn run(&self, op: &Operation, task: &Task) -> Outcome {
        let t = &task.target;
        match self.objects.head(&t.bucket, &t.key, t.version_id.as_deref()).await {
            Ok(head) => Outcome::Succeeded {
                message: json!({"DryRun": true, "Operation": op.name(), "Size": head.size, "ETag": head.etag})
                    .to_string(),
            },
            // HEAD answers carry no body: name a missing object as GET would.
            Err(e) if e.http_status == 404 => {
                Outcome::Failed(TaskFailure::permanent(404, "NoSuchKey", "The specified key does not exist."))
            }
            Err(e) => {
                let status = if e.http_status == 0 { 500 } else { e.http_status };
                Outcome::Failed(TaskFailure::classify(status, &e.code, e.message))
            }
        }
    }

    async fn run_batch(&self, op: &Operation, tasks: &[Task]) -> Vec<Outcome> {
        let runs: Vec<_> = tasks.iter().map(|t| self.run(op, t)).collect();
        futures::stream::iter(runs).buffered(BATCH_CONCURRENCY).collect().await
    }
}

/// The requests the real run of `op` makes per task, by S3 (or Lambda) action.
pub fn requests_per_task(op: &Operation) -> Vec<(&'static str, f64)> {
    match op {
        Operation::PutObjectCopy(_) => vec![("CopyObject", 1.0)],
        Operation::PutObjectTagging(t) if t.mode == TaggingMode::Merge => {
            vec![("GetObjectTagging", 1.0), ("PutObjectTagging", 1.0)]
        }
        Operation::PutObjectTagging(_) => vec![("PutObjectTagging", 1.0)],
        Operation::DeleteObjectTagging => vec![("DeleteObjectTagging", 1.0)],
        Operation::PutObjectAcl(_) => vec![("PutObjectAcl", 1.0)],
        Operation::InitiateRestoreObject(_) => vec![("RestoreObject", 1.0)],
        Operation::PutObjectRetention(_) => vec![("PutObjectRetention", 1.0)],
        Operation::PutObjectLegalHold(_) => vec![("PutObjectLegalHold", 1.0)],
        Operation::ReplicateObject => vec![("CopyObject", 1.0)],
        Operation::ComputeObjectChecksum(c) if c.checksum_type == ChecksumType::Composite => {
            vec![("HeadObject", 1.0), ("GetObject", 1.0)]
        }
        Operation::ComputeObjectChecksum(_) => vec![("GetObject", 1.0)],
        Operation::UpdateObjectEncryption(_) => vec![("GetObjectAcl", 1.0), ("CopyObject", 1.0)],
        Operation::LambdaInvoke(_) => vec![("lambda:Invoke", 1.0)],
        Operation::DeleteObject(_) => {
            vec![("DeleteObjects", 1.0 / crate::ops::delete_object::MAX_KEYS_PER_CALL as f64)]
        }
    }
}

/// DescribeJob's `DryRun` member: the tasks that would run and the requests the real run
/// would make for them (at least: multipart copies, composite checksums and replication to
/// several destinations make more, as the note says).
pub fn estimate(op: &Operation, would_run: u64) -> Value {
    let requests: BTreeMap<&str, u64> =
        requests_per_task(op).into_iter().map(|(action, n)| (action, (would_run as f64 * n).ceil() as u64)).collect();
    json!({
        "TasksThatWouldRun": would_run,
        "RequestsOfTheRealRun": requests,
        "Note": "at least: copies above the multipart threshold make one UploadPartCopy per part, \
                 COMPOSITE checksums one HEAD per part, replication one copy per destination",
    })
}
