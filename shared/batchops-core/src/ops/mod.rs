//! The operations a job can run, one module each. Each turns the spec's `Operation` member
//! into a validated request that an [`crate::ports::OperationRunner`] executes per task.

pub mod delete_object_tagging;
pub mod put_object_copy;
pub mod put_object_tagging;

use serde::de::DeserializeOwned;
use serde_json::Value;
use time::OffsetDateTime;

use crate::{Error, Result};

pub use put_object_copy::CopyObject;
pub use put_object_tagging::PutObjectTagging;

/// The one object a task works on, with its key decoded exactly as S3 stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskTarget {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
}

/// A validated operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Operation {
    PutObjectCopy(Box<CopyObject>),
    PutObjectTagging(PutObjectTagging),
    DeleteObjectTagging,
}

/// Operation names of S3 Control that later versions of batchops will run.
const NOT_YET: [&str; 8] = [
    "LambdaInvoke",
    "S3PutObjectAcl",
    "S3InitiateRestoreObject",
    "S3PutObjectLegalHold",
    "S3PutObjectRetention",
    "S3ReplicateObject",
    "S3ComputeObjectChecksum",
    "S3UpdateObjectEncryption",
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
        match name.as_str() {
            "S3PutObjectCopy" => Ok(Operation::PutObjectCopy(Box::new(CopyObject::from_spec(&field, params)?))),
            "S3PutObjectTagging" => Ok(Operation::PutObjectTagging(PutObjectTagging::from_spec(&field, params)?)),
            "S3DeleteObjectTagging" => {
                delete_object_tagging::validate(&field, params)?;
                Ok(Operation::DeleteObjectTagging)
            }
            n if NOT_YET.contains(&n) => Err(Error::field(
                field,
                "this operation is not supported by this version of batchops (supported: S3PutObjectCopy, S3PutObjectTagging, S3DeleteObjectTagging)",
            )),
            other => Err(Error::field(
                "Operation",
                format!("'{other}' is not an operation; use one of S3PutObjectCopy, S3PutObjectTagging, S3DeleteObjectTagging"),
            )),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Operation::PutObjectCopy(_) => "S3PutObjectCopy",
            Operation::PutObjectTagging(_) => "S3PutObjectTagging",
            Operation::DeleteObjectTagging => "S3DeleteObjectTagging",
        }
    }
}

/// Deserializes an operation's parameters; errors carry the full member path.
pub(crate) fn params<T: DeserializeOwned>(field: &str, v: &Value) -> Result<T> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let full = if path == "." { field.to_string() } else { format!("{field}.{path}") };
        Error::field(full, e.into_inner().to_string())
    })
}

/// Reads a timestamp as the CLI accepts it: ISO 8601 text or epoch seconds.
pub(crate) fn timestamp(field: &str, v: &Value) -> Result<OffsetDateTime> {
    match v {
        Value::Number(n) => {
            let secs = n.as_f64().ok_or_else(|| Error::field(field, "is not a timestamp"))?;
            OffsetDateTime::from_unix_timestamp(secs as i64).map_err(|e| Error::field(field, e.to_string()))
        }
        Value::String(s) => {
            if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
                return Ok(t);
            }
            let date = time::Date::parse(s, &time::macros::format_description!("[year]-[month]-[day]"))
                .map_err(|_| Error::field(field, format!("'{s}' is not an ISO 8601 timestamp")))?;
            Ok(date.midnight().assume_utc())
        }
        _ => Err(Error::field(field, "is not a timestamp")),
    }
}

pub(crate) fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(Error::field(field, format!("'{value}' is not one of {}", allowed.join(", "))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn operations_of_later_versions_are_refused_by_name() {
        let err = Operation::from_spec(&json!({"LambdaInvoke": {"FunctionArn": "x"}})).unwrap_err();
        assert!(err.to_string().starts_with("Operation.LambdaInvoke:"), "{err}");
        let err = Operation::from_spec(&json!({"S3Frobnicate": {}})).unwrap_err();
        assert!(err.to_string().contains("S3Frobnicate"), "{err}");
    }

    #[test]
    fn timestamps_in_both_cli_forms() {
        assert_eq!(timestamp("f", &json!(0)).unwrap().unix_timestamp(), 0);
        assert_eq!(timestamp("f", &json!("2023-09-01")).unwrap().unix_timestamp(), 1693526400);
        assert!(timestamp("f", &json!("yesterday")).is_err());
    }
}
