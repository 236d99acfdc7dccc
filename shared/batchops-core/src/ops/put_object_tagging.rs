//! `S3PutObjectTagging`: replaces the whole tag set of each object (PutObjectTagging), as S3
//! does. The batchops extension member `"TaggingMode": "MERGE"` instead adds the given tags
//! to the object's own (overwriting those with the same key) and keeps the others.

use serde::Deserialize;
use serde_json::Value;

use crate::fields::{check_tag_set, S3Tag};
use crate::{Error, Result};

/// S3 allows at most 10 tags on an object; a larger set would fail every task.
pub const MAX_OBJECT_TAGS: usize = 10;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TaggingMode {
    /// S3's behaviour: the tag set becomes exactly `TagSet`.
    #[default]
    Replace,
    /// Read the object's tags, add or overwrite the given ones, keep the rest.
    Merge,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PutObjectTagging {
    pub tags: Vec<S3Tag>,
    pub mode: TaggingMode,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Params {
    #[serde(default)]
    tag_set: Vec<S3Tag>,
    tagging_mode: Option<String>,
}

impl PutObjectTagging {
    pub fn from_spec(field: &str, v: &Value) -> Result<Self> {
        let p: Params = crate::fields::params(field, v)?;
        check_tag_set(&format!("{field}.TagSet"), &p.tag_set, MAX_OBJECT_TAGS)?;
        let mode = match p.tagging_mode.as_deref() {
            None | Some("REPLACE") => TaggingMode::Replace,
            Some("MERGE") => TaggingMode::Merge,
            Some(other) => {
                return Err(Error::field(
                    format!("{field}.TaggingMode"),
                    format!("'{other}' is not one of REPLACE, MERGE"),
                ))
            }
        };
        if mode == TaggingMode::Merge && p.tag_set.is_empty() {
            return Err(Error::field(
                format!("{field}.TagSet"),
                "must not be empty with TaggingMode MERGE (nothing to add)",
            ));
        }
        Ok(PutObjectTagging { tags: p.tag_set, mode })
    }

    /// The tag set an object ends with when `existing` are its tags now: for MERGE, the
    /// existing tags in their order with the given values overwritten, then the new keys.
    /// An error names the count when the result would exceed S3's 10 tags.
    pub fn merged(&self, existing: &[S3Tag]) -> std::result::Result<Vec<S3Tag>, String> {
        if self.mode == TaggingMode::Replace {
            return Ok(self.tags.clone());
        }
        let mut out: Vec<S3Tag> = existing.to_vec();
        for t in &self.tags {
            match out.iter_mut().find(|e| e.key == t.key) {
                Some(e) => e.value = t.value.clone(),
                None => out.push(t.clone()),
            }
        }
        if out.len() > MAX_OBJECT_TAGS {
            let keys: Vec<&str> = existing.iter().map(|t| t.key.as_str()).collect();
            return Err(format!(
                "Merging would leave {} tags on the object, more than S3's limit of {MAX_OBJECT_TAGS} (it has {}: {})",
                out.len(),
                existing.len(),
                keys.join(", ")
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const F: &str = "Operation.S3PutObjectTagging";

    fn tag(k: &str, v: &str) -> S3Tag {
        S3Tag { key: k.into(), value: v.into() }
    }

    #[test]
    fn tag_sets_are_checked_like_s3_does() {
        let ok = PutObjectTagging::from_spec(F, &json!({"TagSet": [{"Key": "a b", "Value": "x=y"}]})).unwrap();
        assert_eq!((ok.tags.len(), ok.mode), (1, TaggingMode::Replace));
        let many: Vec<_> = (0..11).map(|i| json!({"Key": format!("k{i}"), "Value": ""})).collect();
        let err = PutObjectTagging::from_spec(F, &json!({ "TagSet": many })).unwrap_err();
        assert!(err.to_string().starts_with("Operation.S3PutObjectTagging.TagSet:"), "{err}");
        let err = PutObjectTagging::from_spec(F, &json!({"TagSet": [{"Key": "a", "Value": "<b>"}]})).unwrap_err();
        assert!(err.to_string().starts_with("Operation.S3PutObjectTagging.TagSet[0].Value:"), "{err}");
        let err = PutObjectTagging::from_spec(F, &json!({"TagSet": [{"Key": "a"}]})).unwrap_err();
        assert!(err.to_string().starts_with("Operation.S3PutObjectTagging.TagSet[0]"), "{err}");
        let err = PutObjectTagging::from_spec(F, &json!({"TagSet": [], "TaggingMode": "ADD"})).unwrap_err();
        assert!(err.to_string().starts_with("Operation.S3PutObjectTagging.TaggingMode:"), "{err}");
    }

    #[test]
    fn merge_adds_overwrites_and_keeps() {
        let op = PutObjectTagging::from_spec(
            F,
            &json!({"TaggingMode": "MERGE", "TagSet": [{"Key": "b", "Value": "new"}, {"Key": "c", "Value": "3"}]}),
        )
        .unwrap();
        assert_eq!(op.mode, TaggingMode::Merge);
        let merged = op.merged(&[tag("a", "1"), tag("b", "old")]).unwrap();
        assert_eq!(merged, vec![tag("a", "1"), tag("b", "new"), tag("c", "3")]);
        let nine: Vec<S3Tag> = (0..9).map(|i| tag(&format!("k{i}"), "")).collect();
        let err = op.merged(&nine).unwrap_err();
        assert!(err.contains("11 tags") && err.contains("limit of 10"), "{err}");
        let replace = PutObjectTagging { tags: vec![tag("x", "")], mode: TaggingMode::Replace };
        assert_eq!(replace.merged(&nine).unwrap(), vec![tag("x", "")]);
    }
}
