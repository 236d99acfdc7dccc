//! `S3ReplicateObject`: reads the source bucket's replication configuration once per process
//! (GetBucketReplication), picks the rules each object matches (GetObjectTagging too when a
//! rule filters on tags), and copies the object to each rule's destination, keeping its
//! metadata, tags and storage class (or the rule's storage class).

use std::sync::Arc;

use aws_sdk_s3::types::ReplicationRuleStatus;
use batchops_core::job::JobFailure;
use batchops_core::ops::replicate_object::{needs_tags, rules_for, ReplicationRule};
use batchops_core::ops::{CopyObject, Task};
use batchops_core::retry::TaskFailure;

use super::put_object_copy::copy;
use super::runner::{object_tags, S3OperationRunner, TaskResult};
use crate::errors::parts;

fn bucket_of(arn: &str) -> String {
    arn.rsplit(":::").next().unwrap_or(arn).to_string()
}

pub(crate) fn convert(rule: &aws_sdk_s3::types::ReplicationRule) -> ReplicationRule {
    #[allow(deprecated)]
    let legacy_prefix = rule.prefix().unwrap_or_default().to_string();
    let (mut prefix, mut tags) = (legacy_prefix, Vec::new());
    if let Some(f) = rule.filter() {
        if let Some(p) = f.prefix() {
            prefix = p.to_string();
        }
        if let Some(t) = f.tag() {
            tags.push((t.key().to_string(), t.value().to_string()));
        }
        if let Some(and) = f.and() {
            if let Some(p) = and.prefix() {
                prefix = p.to_string();
            }
            tags.extend(and.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())));
        }
    }
    ReplicationRule {
        id: rule.id().unwrap_or_default().to_string(),
        priority: rule.priority().unwrap_or(0),
        enabled: rule.status() == &ReplicationRuleStatus::Enabled,
        prefix,
        tags,
        destination_bucket: rule.destination().map(|d| bucket_of(d.bucket())).unwrap_or_default(),
        storage_class: rule.destination().and_then(|d| d.storage_class()).map(|c| c.as_str().to_string()),
    }
}

/// The rules of `bucket`, cached; `Err((status, code, message))` when they cannot be read.
async fn rules(r: &S3OperationRunner, bucket: &str) -> Result<Arc<Vec<ReplicationRule>>, (u16, String, String)> {
    if let Some(rules) =
        r.replication.lock().map_err(|_| (500, "InternalError".to_string(), "lock".to_string()))?.get(bucket)
    {
        return Ok(rules.clone());
    }
    let out = r.s3.get_bucket_replication().bucket(bucket).send().await.map_err(|e| parts(&e))?;
    let rules: Vec<ReplicationRule> =
        out.replication_configuration().map(|c| c.rules().iter().map(convert).collect()).unwrap_or_default();
    let rules = Arc::new(rules);
    if let Ok(mut cache) = r.replication.lock() {
        cache.insert(bucket.to_string(), rules.clone());
    }
    Ok(rules)
}

pub(crate) async fn check_bucket(r: &S3OperationRunner, bucket: &str) -> batchops_core::Result<Option<JobFailure>> {
    match rules(r, bucket).await {
        Ok(rules) if rules.iter().any(|r| r.enabled) => Ok(None),
        Ok(_) => Ok(Some(JobFailure::new(
            "ReplicationConfigurationNotFound",
            format!("The replication configuration of bucket {bucket} has no enabled rule"),
        ))),
        Err((status, code, message)) if status >= 500 || status == 0 => {
            Err(batchops_core::Error::transient("GetBucketReplication", format!("{code}: {message}")))
        }
        Err((_, code, message)) => {
            let reason = if code == "ReplicationConfigurationNotFoundError" {
                format!("Bucket {bucket} has no replication configuration; S3ReplicateObject copies objects to the destinations of its rules")
            } else {
                format!("The replication configuration of bucket {bucket} could not be read: {code} {message}")
            };
            Ok(Some(JobFailure::new("ReplicationConfigurationNotFound", reason)))
        }
    }
}

pub(crate) async fn run(r: &S3OperationRunner, task: &Task) -> TaskResult {
    let t = &task.target;
    let rules = rules(r, &t.bucket).await.map_err(|(s, c, m)| TaskFailure::classify(s.max(1), &c, m))?;
    let tags: Vec<(String, String)> = if needs_tags(&rules) {
        object_tags(&r.s3, t).await?.into_iter().map(|t| (t.key, t.value)).collect()
    } else {
        Vec::new()
    };
    let chosen = rules_for(&rules, &t.key, &tags);
    if chosen.is_empty() {
        return Err(TaskFailure::permanent(
            400,
            "NoMatchingReplicationRule",
            format!("No enabled rule of the replication configuration of bucket {} matches this object", t.bucket),
        ));
    }
    let mut done = Vec::new();
    for rule in chosen {
        let op = CopyObject {
            target_bucket: rule.destination_bucket.clone(),
            storage_class: rule.storage_class.clone(),
            ..CopyObject::default()
        };
        let copied = copy(r, &op, t, &t.key, task.deadline, true).await.map_err(|f| TaskFailure {
            message: format!("replicating to {} (rule {}): {}", rule.destination_bucket, rule.id, f.message),
            ..f
        })?;
        done.push(serde_json::json!({
            "Bucket": rule.destination_bucket,
            "Rule": rule.id,
            "ETag": copied.etag.as_deref().map(|e| e.trim_matches('"')),
            "VersionId": copied.version_id,
        }));
    }
    Ok(serde_json::json!({ "Replicated": done }).to_string())
}
