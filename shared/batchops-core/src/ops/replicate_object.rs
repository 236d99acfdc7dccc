//! `S3ReplicateObject` (Batch Replication): copies each object to the destination of every
//! enabled rule of the source bucket's replication configuration that matches it. Among
//! rules with the same destination the one with the highest priority wins, as in S3. A
//! bucket without a replication configuration fails the job before any task runs.
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/s3-batch-replication-batch.html>

use serde_json::Value;

use crate::{Error, Result};

pub fn validate(field: &str, params: &Value) -> Result<()> {
    match params {
        Value::Object(m) if m.is_empty() => Ok(()),
        Value::Null => Ok(()),
        _ => Err(Error::field(
            field,
            "takes no parameters (the source bucket's replication configuration decides); give {}",
        )),
    }
}

/// One rule of a bucket's replication configuration, as far as choosing a destination goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicationRule {
    pub id: String,
    pub priority: i32,
    pub enabled: bool,
    /// The filter's prefix (or the rule's legacy `Prefix`); empty matches every key.
    pub prefix: String,
    /// Tags the object must all carry.
    pub tags: Vec<(String, String)>,
    pub destination_bucket: String,
    /// The destination's storage class; `None` keeps the source's.
    pub storage_class: Option<String>,
}

impl ReplicationRule {
    pub fn matches(&self, key: &str, tags: &[(String, String)]) -> bool {
        self.enabled && key.starts_with(&self.prefix) && self.tags.iter().all(|t| tags.contains(t))
    }
}

/// True when deciding needs the object's tags (a rule filters on tags).
pub fn needs_tags(rules: &[ReplicationRule]) -> bool {
    rules.iter().any(|r| r.enabled && !r.tags.is_empty())
}

/// The rules an object is replicated by: per destination bucket, the matching rule with the
/// highest priority (the first in the configuration on a tie), in configuration order.
pub fn rules_for<'a>(rules: &'a [ReplicationRule], key: &str, tags: &[(String, String)]) -> Vec<&'a ReplicationRule> {
    let mut chosen: Vec<&ReplicationRule> = Vec::new();
    for r in rules.iter().filter(|r| r.matches(key, tags)) {
        match chosen.iter_mut().find(|c| c.destination_bucket == r.destination_bucket) {
            Some(c) if r.priority > c.priority => *c = r,
            Some(_) => {}
            None => chosen.push(r),
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, priority: i32, prefix: &str, dest: &str) -> ReplicationRule {
        ReplicationRule {
            id: id.into(),
            priority,
            enabled: true,
            prefix: prefix.into(),
            destination_bucket: dest.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_highest_priority_rule_per_destination() {
        let rules = vec![rule("low", 1, "", "a"), rule("high", 5, "logs/", "a"), rule("other", 1, "logs/", "b")];
        let ids = |key: &str| rules_for(&rules, key, &[]).iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids("logs/x"), ["high", "other"]);
        assert_eq!(ids("data/x"), ["low"]);
    }

    #[test]
    fn disabled_rules_and_tag_filters() {
        let mut tagged = rule("tagged", 1, "", "a");
        tagged.tags = vec![("team".into(), "x".into())];
        let mut off = rule("off", 9, "", "b");
        off.enabled = false;
        let rules = vec![tagged, off];
        assert!(needs_tags(&rules));
        assert!(rules_for(&rules, "k", &[]).is_empty());
        assert_eq!(rules_for(&rules, "k", &[("team".into(), "x".into())]).len(), 1);
    }

    #[test]
    fn parameters_are_refused() {
        assert!(validate("Operation.S3ReplicateObject", &serde_json::json!({})).is_ok());
        assert!(validate("Operation.S3ReplicateObject", &serde_json::json!({"Rule": "a"})).is_err());
    }
}
