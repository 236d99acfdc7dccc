//! `S3InitiateRestoreObject`: starts the restore of each archived object (RestoreObject). The
//! task succeeds once S3 accepts the request; S3 does the restore later.
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-initiate-restore-object.html>

use serde::Deserialize;
use serde_json::Value;

use crate::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InitiateRestore {
    /// Days the restored copy stays; `None` for Intelligent-Tiering archive tiers, which
    /// refuse it.
    pub expiration_days: Option<i32>,
    /// `Bulk` or `Standard`, as RestoreObject spells the tier.
    pub tier: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Params {
    expiration_in_days: Option<i64>,
    glacier_job_tier: Option<String>,
}

impl InitiateRestore {
    pub fn from_spec(field: &str, v: &Value) -> Result<Self> {
        let p: Params = crate::fields::params(field, v)?;
        let expiration_days = match p.expiration_in_days {
            None | Some(0) => None,
            Some(d) if (1..=i32::MAX as i64).contains(&d) => Some(d as i32),
            Some(d) => return Err(Error::field(format!("{field}.ExpirationInDays"), format!("{d} is not 0 or more"))),
        };
        let tier = match p.glacier_job_tier.as_deref() {
            None | Some("STANDARD") => "Standard",
            Some("BULK") => "Bulk",
            Some("EXPEDITED") => {
                return Err(Error::field(
                    format!("{field}.GlacierJobTier"),
                    "EXPEDITED is not supported by S3 Batch Operations restores; use BULK or STANDARD",
                ))
            }
            Some(other) => {
                return Err(Error::field(
                    format!("{field}.GlacierJobTier"),
                    format!("'{other}' is not one of BULK, STANDARD"),
                ))
            }
        };
        Ok(InitiateRestore { expiration_days, tier: tier.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const F: &str = "Operation.S3InitiateRestoreObject";

    #[test]
    fn tiers_and_days() {
        let r = InitiateRestore::from_spec(F, &json!({"ExpirationInDays": 3, "GlacierJobTier": "BULK"})).unwrap();
        assert_eq!(r, InitiateRestore { expiration_days: Some(3), tier: "Bulk".into() });
        let r = InitiateRestore::from_spec(F, &json!({})).unwrap();
        assert_eq!(r, InitiateRestore { expiration_days: None, tier: "Standard".into() });
    }

    #[test]
    fn expedited_is_refused_as_s3_does() {
        let err = InitiateRestore::from_spec(F, &json!({"GlacierJobTier": "EXPEDITED"})).unwrap_err().to_string();
        assert!(err.starts_with("Operation.S3InitiateRestoreObject.GlacierJobTier:"), "{err}");
        let err = InitiateRestore::from_spec(F, &json!({"ExpirationInDays": -1})).unwrap_err().to_string();
        assert!(err.starts_with("Operation.S3InitiateRestoreObject.ExpirationInDays:"), "{err}");
    }
}
