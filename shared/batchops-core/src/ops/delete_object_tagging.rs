//! `S3DeleteObjectTagging`: removes every tag of each object (DeleteObjectTagging). It takes
//! no parameters.

use serde_json::Value;

use crate::{Error, Result};

pub fn validate(field: &str, params: &Value) -> Result<()> {
    match params {
        Value::Object(m) if m.is_empty() => Ok(()),
        Value::Null => Ok(()),
        _ => Err(Error::field(field, "takes no parameters; give {}")),
    }
}
