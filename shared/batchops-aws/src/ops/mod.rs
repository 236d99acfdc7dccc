//! The operations against S3 and Lambda, one module each; [`S3OperationRunner`] dispatches a
//! task to the module of its operation and turns every SDK error into a classified task
//! failure.

mod compute_checksum;
mod delete_object;
mod delete_object_tagging;
mod initiate_restore;
mod lambda_invoke;
mod put_object_acl;
mod put_object_copy;
mod put_object_legal_hold;
mod put_object_retention;
mod put_object_tagging;
pub(crate) mod replicate_object;
mod update_object_encryption;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_s3::types::{Tag, Tagging};
use batchops_core::job::JobFailure;
use batchops_core::ops::replicate_object::ReplicationRule;
use batchops_core::ops::{BucketCheck, Operation, Task};
use batchops_core::ports::OperationRunner;
use batchops_core::retry::{Outcome, RetryPolicy, TaskFailure};
use batchops_core::spec::S3Tag;

/// S3's limit for one CopyObject; larger objects need a multipart copy.
pub const SINGLE_COPY_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

/// Tunables of the operations (read from `BATCHOPS_*` variables, see [`crate::config`]).
#[derive(Clone, Debug)]
pub struct OpsSettings {
    /// Objects larger than this are copied with multipart UploadPartCopy.
    pub multipart_threshold: u64,
    /// Part size of multipart copies (raised when an object would need more than 10,000 parts).
    pub part_size: u64,
    /// Parts of one object copied at the same time.
    pub part_concurrency: usize,
}

impl Default for OpsSettings {
    fn default() -> Self {
        OpsSettings { multipart_threshold: SINGLE_COPY_LIMIT, part_size: 128 * 1024 * 1024, part_concurrency: 16 }
    }
}

#[derive(Clone, Debug)]
pub struct S3OperationRunner {
    s3: aws_sdk_s3::Client,
    lambda: aws_sdk_lambda::Client,
    settings: OpsSettings,
    /// The executor's policy, for the requests inside one task (the parts of a multipart copy).
    retry: RetryPolicy,
    /// Replication rules per source bucket, read once per process.
    replication: Arc<Mutex<HashMap<String, Arc<Vec<ReplicationRule>>>>>,
}

impl S3OperationRunner {
    /// The clients should have SDK retries disabled: the executor retries with its own policy.
    pub fn new(
        s3: aws_sdk_s3::Client,
        lambda: aws_sdk_lambda::Client,
        settings: OpsSettings,
        retry: RetryPolicy,
    ) -> Self {
        S3OperationRunner { s3, lambda, settings, retry, replication: Arc::default() }
    }
}

#[async_trait]
impl OperationRunner for S3OperationRunner {
    async fn run(&self, op: &Operation, task: &Task) -> Outcome {
        let t = &task.target;
        let result = match op {
            Operation::PutObjectCopy(copy) => put_object_copy::run(self, copy, task).await,
            Operation::PutObjectTagging(op) => put_object_tagging::run(&self.s3, op, t).await,
            Operation::DeleteObjectTagging => delete_object_tagging::run(&self.s3, t).await,
            Operation::PutObjectAcl(op) => put_object_acl::run(&self.s3, op, t).await,
            Operation::InitiateRestoreObject(op) => initiate_restore::run(&self.s3, op, t).await,
            Operation::PutObjectRetention(op) => put_object_retention::run(&self.s3, op, t).await,
            Operation::PutObjectLegalHold(op) => put_object_legal_hold::run(&self.s3, op, t).await,
            Operation::ReplicateObject => replicate_object::run(self, task).await,
            Operation::ComputeObjectChecksum(op) => compute_checksum::run(&self.s3, op, task).await,
            Operation::UpdateObjectEncryption(op) => update_object_encryption::run(self, op, task).await,
            Operation::LambdaInvoke(op) => return lambda_invoke::run(&self.lambda, op, task).await,
            Operation::DeleteObject(op) => {
                return delete_object::run(&self.s3, op, std::slice::from_ref(task)).await.remove(0)
            }
        };
        match result {
            Ok(message) => Outcome::Succeeded { message },
            Err(f) => Outcome::Failed(f),
        }
    }

    async fn run_batch(&self, op: &Operation, tasks: &[Task]) -> Vec<Outcome> {
        match op {
            Operation::DeleteObject(d) => delete_object::run(&self.s3, d, tasks).await,
            _ => {
                let mut out = Vec::with_capacity(tasks.len());
                for t in tasks {
                    out.push(self.run(op, t).await);
                }
                out
            }
        }
    }

    async fn check_bucket(&self, check: BucketCheck, bucket: &str) -> batchops_core::Result<Option<JobFailure>> {
        match check {
            BucketCheck::ObjectLock => put_object_retention::check_bucket(&self.s3, bucket).await,
            BucketCheck::Replication => replicate_object::check_bucket(self, bucket).await,
        }
    }
}

pub(crate) type TaskResult = Result<String, TaskFailure>;

/// Grantee lists for the `x-amz-grant-*` headers, per permission (`id="..."`, `uri="..."`).
#[derive(Default)]
pub(crate) struct GrantHeaders {
    pub full_control: Option<String>,
    pub read: Option<String>,
    pub read_acp: Option<String>,
    pub write: Option<String>,
    pub write_acp: Option<String>,
}

impl GrantHeaders {
    pub fn new<'a>(grants: impl Iterator<Item = (&'a str, String)>) -> GrantHeaders {
        let mut h = GrantHeaders::default();
        for (permission, grantee) in grants {
            let slot = match permission {
                "FULL_CONTROL" => &mut h.full_control,
                "READ" => &mut h.read,
                "READ_ACP" => &mut h.read_acp,
                "WRITE" => &mut h.write,
                "WRITE_ACP" => &mut h.write_acp,
                _ => continue,
            };
            match slot {
                Some(list) => {
                    list.push_str(", ");
                    list.push_str(&grantee);
                }
                None => *slot = Some(grantee),
            }
        }
        h
    }
}

pub(crate) fn tagging(tags: &[S3Tag]) -> Result<Tagging, TaskFailure> {
    let set = tags
        .iter()
        .map(|t| Tag::builder().key(&t.key).value(&t.value).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TaskFailure::permanent(400, "InvalidTag", e.to_string()))?;
    Tagging::builder()
        .set_tag_set(Some(set))
        .build()
        .map_err(|e| TaskFailure::permanent(400, "InvalidTag", e.to_string()))
}

/// The tags of an object (or of the given version).
pub(crate) async fn object_tags(
    client: &aws_sdk_s3::Client,
    t: &batchops_core::ops::TaskTarget,
) -> Result<Vec<S3Tag>, TaskFailure> {
    let out = client
        .get_object_tagging()
        .bucket(&t.bucket)
        .key(&t.key)
        .set_version_id(t.version_id.clone())
        .send()
        .await
        .map_err(|e| crate::errors::task(&e))?;
    Ok(out.tag_set().iter().map(|t| S3Tag { key: t.key().to_string(), value: t.value().to_string() }).collect())
}
