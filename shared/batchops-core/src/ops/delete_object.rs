//! `S3DeleteObject` (a batchops operation; S3 Batch Operations has none): deletes each object,
//! or the version the manifest names. The tasks of a chunk that share a bucket go to S3 in
//! DeleteObjects calls of up to 1,000 keys, and each key gets its own report row.

use serde::Deserialize;
use serde_json::Value;

use crate::Result;

/// DeleteObjects takes at most this many keys per call.
pub const MAX_KEYS_PER_CALL: usize = 1000;

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeleteObject {
    /// Sends `x-amz-bypass-governance-retention` (deletes versions under GOVERNANCE retention).
    pub bypass_governance: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Params {
    bypass_governance_retention: Option<bool>,
}

impl DeleteObject {
    pub fn from_spec(field: &str, v: &Value) -> Result<Self> {
        if v.is_null() {
            return Ok(DeleteObject::default());
        }
        let p: Params = crate::fields::params(field, v)?;
        Ok(DeleteObject { bypass_governance: p.bypass_governance_retention.unwrap_or(false) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn no_parameters_or_the_bypass_flag() {
        let f = "Operation.S3DeleteObject";
        assert_eq!(DeleteObject::from_spec(f, &json!({})).unwrap(), DeleteObject::default());
        assert!(DeleteObject::from_spec(f, &json!({"BypassGovernanceRetention": true})).unwrap().bypass_governance);
        let err = DeleteObject::from_spec(f, &json!({"Recursive": true})).unwrap_err().to_string();
        assert!(err.starts_with("Operation.S3DeleteObject"), "{err}");
        assert!(err.contains("Recursive"), "{err}");
    }
}
