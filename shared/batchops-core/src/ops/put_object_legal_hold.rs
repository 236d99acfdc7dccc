//! `S3PutObjectLegalHold`: turns the Object Lock legal hold of each object on or off
//! (PutObjectLegalHold). The bucket's Object Lock configuration is checked once per job.
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-legal-hold.html>

use serde::Deserialize;
use serde_json::Value;

use crate::fields::one_of;
use crate::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PutObjectLegalHold {
    /// `ON` or `OFF`.
    pub status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Params {
    legal_hold: Option<LegalHoldParam>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct LegalHoldParam {
    status: Option<String>,
}

impl PutObjectLegalHold {
    pub fn from_spec(field: &str, v: &Value) -> Result<Self> {
        let p: Params = crate::fields::params(field, v)?;
        let lf = format!("{field}.LegalHold");
        let status = p
            .legal_hold
            .ok_or_else(|| Error::field(&lf, "is required"))?
            .status
            .ok_or_else(|| Error::field(format!("{lf}.Status"), "is required"))?;
        one_of(&format!("{lf}.Status"), &status, &["OFF", "ON"])?;
        Ok(PutObjectLegalHold { status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn legal_hold_status_is_required() {
        let f = "Operation.S3PutObjectLegalHold";
        assert_eq!(PutObjectLegalHold::from_spec(f, &json!({"LegalHold": {"Status": "ON"}})).unwrap().status, "ON");
        let err = PutObjectLegalHold::from_spec(f, &json!({"LegalHold": {}})).unwrap_err().to_string();
        assert!(err.starts_with("Operation.S3PutObjectLegalHold.LegalHold.Status:"), "{err}");
        let err = PutObjectLegalHold::from_spec(f, &json!({"LegalHold": {"Status": "on"}})).unwrap_err().to_string();
        assert!(err.starts_with("Operation.S3PutObjectLegalHold.LegalHold.Status:"), "{err}");
    }
}
