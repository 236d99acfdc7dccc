//! `S3PutObjectRetention`: sets the Object Lock retention of each object (PutObjectRetention).
//! The bucket's Object Lock configuration is checked once per job before any task runs.
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-retention-date.html>

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use crate::fields::{one_of, timestamp};
use crate::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PutObjectRetention {
    /// `COMPLIANCE` or `GOVERNANCE`.
    pub mode: String,
    pub retain_until: Timestamp,
    pub bypass_governance: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Params {
    bypass_governance_retention: Option<bool>,
    retention: Option<RetentionParam>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RetentionParam {
    retain_until_date: Option<Value>,
    mode: Option<String>,
    // S3's newest members, refused by name (see `not_supported`).
    event_hold: Option<Value>,
    event_hold_duration: Option<Value>,
}

impl PutObjectRetention {
    pub fn from_spec(field: &str, v: &Value) -> Result<Self> {
        let p: Params = crate::fields::params(field, v)?;
        let rf = format!("{field}.Retention");
        let r = p.retention.ok_or_else(|| Error::field(&rf, "is required"))?;
        crate::fields::not_supported(&rf, "EventHold", &r.event_hold)?;
        crate::fields::not_supported(&rf, "EventHoldDuration", &r.event_hold_duration)?;
        let mode = r.mode.ok_or_else(|| Error::field(format!("{rf}.Mode"), "is required"))?;
        one_of(&format!("{rf}.Mode"), &mode, &["COMPLIANCE", "GOVERNANCE"])?;
        let date = r.retain_until_date.ok_or_else(|| Error::field(format!("{rf}.RetainUntilDate"), "is required"))?;
        let retain_until = timestamp(&format!("{rf}.RetainUntilDate"), &date)?;
        Ok(PutObjectRetention { mode, retain_until, bypass_governance: p.bypass_governance_retention.unwrap_or(false) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const F: &str = "Operation.S3PutObjectRetention";

    #[test]
    fn retention_needs_a_mode_and_a_date() {
        let ok = json!({"Retention": {"Mode": "GOVERNANCE", "RetainUntilDate": "2030-01-01T00:00:00Z"}, "BypassGovernanceRetention": true});
        let r = PutObjectRetention::from_spec(F, &ok).unwrap();
        assert_eq!(
            (r.mode.as_str(), r.bypass_governance, r.retain_until.to_string().as_str()),
            ("GOVERNANCE", true, "2030-01-01T00:00:00Z")
        );
        for (spec, prefix) in [
            (json!({}), "Operation.S3PutObjectRetention.Retention:"),
            (json!({"Retention": {"RetainUntilDate": "2030-01-01"}}), "Operation.S3PutObjectRetention.Retention.Mode:"),
            (
                json!({"Retention": {"Mode": "LOCKED", "RetainUntilDate": "2030-01-01"}}),
                "Operation.S3PutObjectRetention.Retention.Mode:",
            ),
            (json!({"Retention": {"Mode": "COMPLIANCE"}}), "Operation.S3PutObjectRetention.Retention.RetainUntilDate:"),
            (
                json!({"Retention": {"Mode": "COMPLIANCE", "RetainUntilDate": "soon"}}),
                "Operation.S3PutObjectRetention.Retention.RetainUntilDate:",
            ),
            (
                json!({"Retention": {"Mode": "COMPLIANCE", "RetainUntilDate": "9999-12-31T23:59:59Z"}}),
                "Operation.S3PutObjectRetention.Retention.RetainUntilDate: \"9999-12-31T23:59:59Z\" is later than",
            ),
        ] {
            let err = PutObjectRetention::from_spec(F, &spec).unwrap_err().to_string();
            assert!(err.starts_with(prefix), "{spec}: {err}");
        }
    }
}
