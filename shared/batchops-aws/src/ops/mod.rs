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
mod runner;
mod update_object_encryption;

pub use runner::{OpsSettings, S3OperationRunner, SINGLE_COPY_LIMIT};

use async_trait::async_trait;
use batchops_core::job::JobFailure;
use batchops_core::ops::{BucketCheck, Operation, Task};
use batchops_core::ports::OperationRunner;
use batchops_core::retry::Outcome;

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
