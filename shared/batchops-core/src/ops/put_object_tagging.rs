//! `S3PutObjectTagging`: replaces the whole tag set of each object (PutObjectTagging).

use serde::Deserialize;
use serde_json::Value;

use crate::spec::{check_tag_set, S3Tag};
use crate::Result;

/// S3 allows at most 10 tags on an object; a larger set would fail every task.
pub const MAX_OBJECT_TAGS: usize = 10;

#[derive(Clone, Debug, PartialEq)]
pub struct PutObjectTagging {
    pub tags: Vec<S3Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Params {
    #[serde(default)]
    tag_set: Vec<S3Tag>,
}

impl PutObjectTagging {
    pub fn from_spec(field: &str, v: &Value) -> Result<Self> {
        let p: Params = super::params(field, v)?;
        check_tag_set(&format!("{field}.TagSet"), &p.tag_set, MAX_OBJECT_TAGS)?;
        Ok(PutObjectTagging { tags: p.tag_set })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tag_sets_are_checked_like_s3_does() {
        let f = "Operation.S3PutObjectTagging";
        let ok = PutObjectTagging::from_spec(f, &json!({"TagSet": [{"Key": "a b", "Value": "x=y"}]})).unwrap();
        assert_eq!(ok.tags.len(), 1);
        let many: Vec<_> = (0..11).map(|i| json!({"Key": format!("k{i}"), "Value": ""})).collect();
        let err = PutObjectTagging::from_spec(f, &json!({ "TagSet": many })).unwrap_err();
        assert!(err.to_string().starts_with("Operation.S3PutObjectTagging.TagSet:"), "{err}");
        let err = PutObjectTagging::from_spec(f, &json!({"TagSet": [{"Key": "a", "Value": "<b>"}]})).unwrap_err();
        assert!(err.to_string().starts_with("Operation.S3PutObjectTagging.TagSet[0].Value:"), "{err}");
        let err = PutObjectTagging::from_spec(f, &json!({"TagSet": [{"Key": "a"}]})).unwrap_err();
        assert!(err.to_string().starts_with("Operation.S3PutObjectTagging.TagSet[0]"), "{err}");
    }
}
