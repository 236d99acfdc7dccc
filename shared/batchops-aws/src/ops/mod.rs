//! The operations against S3, one module each; [`S3OperationRunner`] dispatches a task to the
//! module of its operation and turns every SDK error into a classified task failure.

mod delete_object_tagging;
mod put_object_copy;
mod put_object_tagging;

use async_trait::async_trait;
use aws_sdk_s3::types::{Tag, Tagging};
use batchops_core::ops::{Operation, TaskTarget};
use batchops_core::ports::OperationRunner;
use batchops_core::retry::{Outcome, TaskFailure};
use batchops_core::spec::S3Tag;

#[derive(Clone, Debug)]
pub struct S3OperationRunner {
    client: aws_sdk_s3::Client,
}

impl S3OperationRunner {
    /// `client` should have SDK retries disabled: the executor retries with its own policy.
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3OperationRunner { client }
    }
}

#[async_trait]
impl OperationRunner for S3OperationRunner {
    async fn run(&self, op: &Operation, target: &TaskTarget) -> Outcome {
        let result = match op {
            Operation::PutObjectCopy(copy) => put_object_copy::run(&self.client, copy, target).await,
            Operation::PutObjectTagging(t) => put_object_tagging::run(&self.client, t, target).await,
            Operation::DeleteObjectTagging => delete_object_tagging::run(&self.client, target).await,
        };
        match result {
            Ok(message) => Outcome::Succeeded { message },
            Err(f) => Outcome::Failed(f),
        }
    }
}

pub(crate) type TaskResult = Result<String, TaskFailure>;

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
