//! The operations a job can run, one module each. Each turns the spec's `Operation` member
//! into a validated request that an [`crate::ports::OperationRunner`] executes per task.

pub mod compute_checksum;
pub mod delete_object;
pub mod delete_object_tagging;
pub mod grants;
pub mod initiate_restore;
pub mod lambda_invoke;
pub mod put_object_acl;
pub mod put_object_copy;
pub mod put_object_legal_hold;
pub mod put_object_retention;
pub mod put_object_tagging;
pub mod replicate_object;
pub mod update_object_encryption;

use std::time::Instant;

use serde_json::Value;

use crate::{Error, Result};

pub use crate::objects::TaskTarget;
pub use compute_checksum::ComputeChecksum;
pub use delete_object::DeleteObject;
pub use initiate_restore::InitiateRestore;
pub use lambda_invoke::LambdaInvoke;
pub use put_object_acl::PutObjectAcl;
pub use put_object_copy::CopyObject;
pub use put_object_legal_hold::PutObjectLegalHold;
pub use put_object_retention::PutObjectRetention;
pub use put_object_tagging::{PutObjectTagging, TaggingMode};
pub use update_object_encryption::UpdateObjectEncryption;

/// A task as an [`crate::ports::OperationRunner`] gets it.
#[derive(Clone, Debug)]
pub struct Task {
    pub target: TaskTarget,
    /// The key as the manifest spells it (what a Lambda function receives).
    pub encoded_key: String,
    /// Unique within the job; stable across redeliveries of its chunk.
    pub id: String,
    pub job_id: String,
    /// When the invocation running the task must be done: long operations (multipart
    /// copies) stop and fail the task with a reason rather than be cut off unseen.
    pub deadline: Instant,
}

/// A validated operation.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Operation {
    PutObjectCopy(Box<CopyObject>),
    PutObjectTagging(PutObjectTagging),
    DeleteObjectTagging,
    PutObjectAcl(PutObjectAcl),
    InitiateRestoreObject(InitiateRestore),
    PutObjectRetention(PutObjectRetention),
    PutObjectLegalHold(PutObjectLegalHold),
    ReplicateObject,
    ComputeObjectChecksum(ComputeChecksum),
    UpdateObjectEncryption(UpdateObjectEncryption),
    LambdaInvoke(LambdaInvoke),
    DeleteObject(DeleteObject),
}

/// A property of the manifest's bucket that an operation needs, checked once per job before
/// any task runs; a bucket without it fails the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketCheck {
    ObjectLock,
    Replication,
}

/// Every operation name a job can give, in the order the README lists them.
pub const NAMES: [&str; 12] = [
    "S3PutObjectCopy",
    "S3PutObjectTagging",
    "S3DeleteObjectTagging",
    "S3PutObjectAcl",
    "S3InitiateRestoreObject",
    "S3PutObjectRetention",
    "S3PutObjectLegalHold",
    "S3ReplicateObject",
    "S3ComputeObjectChecksum",
    "S3UpdateObjectEncryption",
    "LambdaInvoke",
    "S3DeleteObject",
];

impl Operation {
    /// Parses the `Operation` member of a CreateJob request: exactly one member, validated.
    pub fn from_spec(v: &Value) -> Result<Operation> {
        let map = v.as_object().ok_or_else(|| Error::field("Operation", "must be an object"))?;
        if map.len() != 1 {
            return Err(Error::field("Operation", format!("must set exactly one operation, got {}", map.len())));
        }
        let (name, params) = map.iter().next().ok_or_else(|| Error::field("Operation", "is empty"))?;
        let field = format!("Operation.{name}");
        let f = field.as_str();
        Ok(match name.as_str() {
            "S3PutObjectCopy" => Operation::PutObjectCopy(Box::new(CopyObject::from_spec(f, params)?)),
            "S3PutObjectTagging" => Operation::PutObjectTagging(PutObjectTagging::from_spec(f, params)?),
            "S3DeleteObjectTagging" => {
                delete_object_tagging::validate(f, params)?;
                Operation::DeleteObjectTagging
            }
            "S3PutObjectAcl" => Operation::PutObjectAcl(PutObjectAcl::from_spec(f, params)?),
            "S3InitiateRestoreObject" => Operation::InitiateRestoreObject(InitiateRestore::from_spec(f, params)?),
            "S3PutObjectRetention" => Operation::PutObjectRetention(PutObjectRetention::from_spec(f, params)?),
            "S3PutObjectLegalHold" => Operation::PutObjectLegalHold(PutObjectLegalHold::from_spec(f, params)?),
            "S3ReplicateObject" => {
                replicate_object::validate(f, params)?;
                Operation::ReplicateObject
            }
            "S3ComputeObjectChecksum" => Operation::ComputeObjectChecksum(ComputeChecksum::from_spec(f, params)?),
            "S3UpdateObjectEncryption" => {
                Operation::UpdateObjectEncryption(UpdateObjectEncryption::from_spec(f, params)?)
            }
            "LambdaInvoke" => Operation::LambdaInvoke(LambdaInvoke::from_spec(f, params)?),
            "S3DeleteObject" => Operation::DeleteObject(DeleteObject::from_spec(f, params)?),
            other => {
                return Err(Error::field(
                    "Operation",
                    format!("'{other}' is not an operation; use one of {}", NAMES.join(", ")),
                ))
            }
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Operation::PutObjectCopy(_) => "S3PutObjectCopy",
            Operation::PutObjectTagging(_) => "S3PutObjectTagging",
            Operation::DeleteObjectTagging => "S3DeleteObjectTagging",
            Operation::PutObjectAcl(_) => "S3PutObjectAcl",
            Operation::InitiateRestoreObject(_) => "S3InitiateRestoreObject",
            Operation::PutObjectRetention(_) => "S3PutObjectRetention",
            Operation::PutObjectLegalHold(_) => "S3PutObjectLegalHold",
            Operation::ReplicateObject => "S3ReplicateObject",
            Operation::ComputeObjectChecksum(_) => "S3ComputeObjectChecksum",
            Operation::UpdateObjectEncryption(_) => "S3UpdateObjectEncryption",
            Operation::LambdaInvoke(_) => "LambdaInvoke",
            Operation::DeleteObject(_) => "S3DeleteObject",
        }
    }

    /// What must hold for the manifest's bucket before any task runs.
    pub fn bucket_check(&self) -> Option<BucketCheck> {
        match self {
            Operation::PutObjectRetention(_) | Operation::PutObjectLegalHold(_) => Some(BucketCheck::ObjectLock),
            Operation::ReplicateObject => Some(BucketCheck::Replication),
            _ => None,
        }
    }

    /// How many tasks of one bucket the runner takes in one call ([`crate::ports::OperationRunner::run_batch`]).
    pub fn batch_size(&self) -> usize {
        match self {
            Operation::DeleteObject(_) => delete_object::MAX_KEYS_PER_CALL,
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::timestamp;
    use serde_json::json;

    #[test]
    fn exactly_one_operation_member() {
        assert!(Operation::from_spec(&json!({})).is_err());
        let two = json!({"S3DeleteObjectTagging": {}, "S3PutObjectTagging": {"TagSet": []}});
        assert!(Operation::from_spec(&two).is_err());
        assert_eq!(
            Operation::from_spec(&json!({"S3DeleteObjectTagging": {}})).unwrap(),
            Operation::DeleteObjectTagging
        );
    }

    #[test]
    fn unknown_operations_are_refused_by_name() {
        let err = Operation::from_spec(&json!({"S3Frobnicate": {}})).unwrap_err();
        assert!(err.to_string().contains("S3Frobnicate") && err.to_string().contains("S3DeleteObject"), "{err}");
    }

    #[test]
    fn an_empty_body_is_taken_by_the_operations_without_a_required_member() {
        // Each operation's own tests cover its parameters. Here: which operations `{}` is enough
        // for, and that each of the others names the member it lacks, so a change to either set
        // is seen.
        let takes_empty = [
            "S3PutObjectTagging",
            "S3DeleteObjectTagging",
            "S3InitiateRestoreObject",
            "S3ReplicateObject",
            "S3DeleteObject",
        ];
        let needs = [
            ("S3PutObjectCopy", "TargetResource"),
            ("S3PutObjectAcl", "AccessControlPolicy"),
            ("S3PutObjectRetention", "Retention"),
            ("S3PutObjectLegalHold", "LegalHold"),
            ("S3ComputeObjectChecksum", "ChecksumAlgorithm"),
            ("S3UpdateObjectEncryption", "ObjectEncryption"),
            ("LambdaInvoke", "FunctionArn"),
        ];
        let mut listed: Vec<&str> = takes_empty.iter().chain(needs.iter().map(|(name, _)| name)).copied().collect();
        listed.sort_unstable();
        let mut names = NAMES.to_vec();
        names.sort_unstable();
        assert_eq!(listed, names, "every operation is in one list");
        for name in takes_empty {
            let op = Operation::from_spec(&json!({ name: {} }));
            assert_eq!(op.as_ref().map(Operation::name).ok(), Some(name), "{name} with {{}}: {op:?}");
        }
        for (name, member) in needs {
            match Operation::from_spec(&json!({ name: {} })) {
                Err(Error::InvalidField { field, .. }) => assert_eq!(field, format!("Operation.{name}.{member}")),
                other => panic!("{name} with {{}}: {other:?}"),
            }
        }
    }

    #[test]
    fn timestamps_in_both_cli_forms() {
        assert_eq!(timestamp("f", &json!(0)).unwrap().as_second(), 0);
        assert_eq!(timestamp("f", &json!("2023-09-01")).unwrap().as_second(), 1693526400);
        assert!(timestamp("f", &json!("yesterday")).is_err());
    }
}
