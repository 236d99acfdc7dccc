//! [`JobRecords`] on DynamoDB: the job item (its body, status and version; its counters are
//! the ledger's), the request tokens, the two job indexes and the sweep's sighting item.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, ReturnValue, TransactWriteItem};
use batchops_core::job::{FileCounts, Job, JobId, JobStatus};
use batchops_core::ports::{now_ms, CreateOutcome, JobFilter, JobPage, JobRecords, Pass, Sighting};
use batchops_core::{Error, Result};

use super::{
    cancellation_codes, file_counters, get_n, get_s, job_pk, n, s, DynamoJobStore, Item, OPEN, OPEN_INDEX, OPEN_VALUE,
    RETENTION_SECS, THROTTLE_PREFIX,
};
use crate::errors::backend;

/// The query's start from a token this API gave: the keys of a job in the index read
/// (any other map made DynamoDB refuse the query, a 500 for the caller's mistake).
fn start_key(token: &str, open: bool) -> Result<HashMap<String, String>> {
    let bad = || Error::field("nextToken", "is not a token this API gave");
    let keys: HashMap<String, String> = serde_json::from_str(token).map_err(|_| bad())?;
    let (index_key, value) = if open { (OPEN, OPEN_VALUE) } else { ("gsi1pk", "JOB") };
    let mut names: Vec<&str> = keys.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut expected = ["gsi1sk", "pk", "sk", index_key];
    expected.sort_unstable();
    let pk_ok = keys.get("pk").and_then(|pk| pk.strip_prefix("JOB#")).is_some_and(|id| JobId::parse(id).is_ok());
    let is_job = keys.get("sk").is_some_and(|sk| sk == "JOB") && keys.get(index_key).is_some_and(|v| v == value);
    (names == expected && pk_ok && is_job && keys["gsi1sk"].len() <= 128).then_some(keys).ok_or_else(bad)
}

impl DynamoJobStore {
    fn job_from_item(item: &Item) -> Result<Job> {
        let mut job: Job = serde_json::from_str(get_s(item, "body")?)
            .map_err(|e| Error::caused("job table: unreadable job body", e, false))?;
        job.version = get_n(item, "version");
        job.progress.succeeded = get_n(item, "succeeded");
        job.progress.failed = get_n(item, "failed");
        job.progress.chunks_done = get_n(item, "chunks_done");
        job.progress.chunks_split = get_n(item, "chunks_split");
        let counts = |pass| {
            let [p, t, c] = file_counters(pass);
            FileCounts { files: get_n(item, p), tasks: get_n(item, t), chunks: get_n(item, c) }
        };
        job.progress.counted = counts(Pass::Count);
        job.progress.cut = counts(Pass::Cut);
        job.throttled = item
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(THROTTLE_PREFIX)?.to_string(), v.as_n().ok()?.parse().ok()?)))
            .collect();
        if let Some(st) = item.get("status").and_then(|v| v.as_s().ok()).and_then(|s| JobStatus::parse(s)) {
            job.status = st;
        }
        Ok(job)
    }

    fn body(job: &Job) -> Result<String> {
        serde_json::to_string(job).map_err(|e| Error::caused("job body", e, false))
    }

    fn new_job_item(job: &Job) -> Result<Item> {
        Ok(HashMap::from([
            ("pk".to_string(), s(job_pk(&job.id))),
            ("sk".to_string(), s("JOB")),
            ("gsi1pk".to_string(), s("JOB")),
            ("gsi1sk".to_string(), s(created_key(job))),
            (OPEN.to_string(), s(OPEN_VALUE)),
            ("status".to_string(), s(job.status.as_str())),
            ("version".to_string(), n(0)),
            ("body".to_string(), s(Self::body(job)?)),
            ("succeeded".to_string(), n(0)),
            ("failed".to_string(), n(0)),
            ("chunks_done".to_string(), n(0)),
        ]))
    }
}

/// The sort key of both job indexes: `<created>#<id>`, the creation time as RFC 3339 in UTC
/// with the fraction's trailing zeros cut (`2026-12-01T10:00:00.5Z`), as jobs have always been
/// keyed, so old and new jobs list in one order.
fn created_key(job: &Job) -> String {
    format!("{}#{}", job.created, job.id)
}

#[async_trait]
impl JobRecords for DynamoJobStore {
    async fn create(&self, job: &Job, token: &str, request_hash: &str) -> Result<CreateOutcome> {
        let token_item = HashMap::from([
            ("pk".to_string(), s(format!("TOKEN#{token}"))),
            ("sk".to_string(), s("TOKEN")),
            ("job_id".to_string(), s(job.id.as_str())),
            ("hash".to_string(), s(request_hash)),
        ]);
        let put = |item: Item| -> Result<TransactWriteItem> {
            Ok(TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(item))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .map_err(|e| Error::caused("Put", e, false))?,
                )
                .build())
        };
        let gate = self.gate().await;
        let result = self
            .client
            .transact_write_items()
            .transact_items(put(token_item)?)
            .transact_items(put(Self::new_job_item(job)?)?)
            .send()
            .await;
        drop(gate);
        match result {
            Ok(_) => Ok(CreateOutcome::Created),
            Err(e) if cancellation_codes(&e).is_some() => {
                let out = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .key("pk", s(format!("TOKEN#{token}")))
                    .key("sk", s("TOKEN"))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| backend("GetItem token", e))?;
                let Some(item) = out.item() else {
                    return Err(Error::transient("CreateJob", "transaction cancelled"));
                };
                if get_s(item, "hash")? == request_hash {
                    Ok(CreateOutcome::Existing(JobId::parse(get_s(item, "job_id")?)?))
                } else {
                    Ok(CreateOutcome::Conflict)
                }
            }
            Err(e) => Err(backend("TransactWriteItems create", e)),
        }
    }

    async fn get(&self, id: &JobId) -> Result<Job> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s("JOB"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem job", e))?;
        match out.item() {
            Some(item) => Self::job_from_item(item),
            None => Err(Error::JobNotFound { job_id: id.clone() }),
        }
    }

    async fn list(&self, filter: &JobFilter<'_>, max: usize, next_token: Option<&str>) -> Result<JobPage> {
        let statuses = filter.statuses;
        let mut start: Option<Item> = match next_token {
            None => None,
            Some(t) => Some(start_key(t, filter.open)?.into_iter().map(|(k, v)| (k, s(v))).collect()),
        };
        let mut jobs = Vec::new();
        loop {
            if jobs.len() >= max {
                break;
            }
            let (index, key, value) = match filter.open {
                true => (OPEN_INDEX, OPEN, OPEN_VALUE),
                false => ("by-created", "gsi1pk", "JOB"),
            };
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression("#k = :j")
                .expression_attribute_names("#k", key)
                .expression_attribute_values(":j", s(value))
                .scan_index_forward(false)
                .limit((max - jobs.len()) as i32)
                .set_exclusive_start_key(start.take());
            // The open-jobs index holds keys alone: its jobs are read whole and matched below.
            if !statuses.is_empty() && !filter.open {
                let names: Vec<String> = (0..statuses.len()).map(|i| format!(":s{i}")).collect();
                q = q
                    .filter_expression(format!("#st IN ({})", names.join(", ")))
                    .expression_attribute_names("#st", "status");
                for (name, st) in names.iter().zip(statuses) {
                    q = q.expression_attribute_values(name, s(st.as_str()));
                }
            }
            let out = q.send().await.map_err(|e| backend("Query jobs", e))?;
            for item in out.items() {
                // The account is in the job's ARN, inside its body: matched here, not by the
                // query (a filter expression reads, and is billed for, the same items).
                let job = match filter.open {
                    false => Self::job_from_item(item)?,
                    true => match self.get(&JobId::parse(get_s(item, "pk")?.trim_start_matches("JOB#"))?).await {
                        Ok(job) => job,
                        // Gone since the index was read (its retention ended).
                        Err(Error::JobNotFound { .. }) => continue,
                        Err(e) => return Err(e),
                    },
                };
                if filter.matches(&job) {
                    jobs.push(job);
                }
            }
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        let next_token = match start {
            None => None,
            Some(key) => {
                let plain: HashMap<String, String> =
                    key.into_iter().filter_map(|(k, v)| v.as_s().ok().map(|v| (k, v.clone()))).collect();
                Some(serde_json::to_string(&plain).map_err(|e| Error::caused("nextToken", e, false))?)
            }
        };
        Ok(JobPage { jobs, next_token })
    }

    async fn put(&self, job: &Job) -> Result<Job> {
        let mut update = "SET body = :b, #st = :s, version = :next".to_string();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(&job.id)))
            .key("sk", s("JOB"))
            .condition_expression("version = :v")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":b", s(Self::body(job)?))
            .expression_attribute_values(":s", s(job.status.as_str()))
            .expression_attribute_values(":v", n(job.version))
            .expression_attribute_values(":next", n(job.version + 1))
            .return_values(ReturnValue::AllNew);
        if let Some(t) = job.terminated {
            update.push_str(", #ttl = :ttl");
            req = req
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":ttl", n(t.as_second() + RETENTION_SECS));
        }
        // In the open-jobs index while it has not ended, and out of it once it has.
        req = req.expression_attribute_names("#open", OPEN);
        match job.status.is_terminal() {
            true => update.push_str(" REMOVE #open"),
            false => {
                update.push_str(", #open = :open");
                req = req.expression_attribute_values(":open", s(OPEN_VALUE));
            }
        }
        let gate = self.gate().await;
        let result = req.update_expression(update).send().await;
        drop(gate);
        match result {
            Ok(out) => Self::job_from_item(
                out.attributes().ok_or_else(|| Error::permanent("UpdateItem", "no attributes returned"))?,
            ),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {
                Err(Error::Conflict { job_id: job.id.clone() })
            }
            Err(e) => Err(backend("UpdateItem job", e)),
        }
    }

    async fn note_throttle(&self, id: &JobId, bucket: &str, at_ms: u64) -> Result<()> {
        let gate = self.gate().await;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s("JOB"))
            .update_expression("SET #t = :at")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#t", format!("{THROTTLE_PREFIX}{bucket}"))
            .expression_attribute_values(":at", n(at_ms))
            .send()
            .await;
        drop(gate);
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {
                Err(Error::JobNotFound { job_id: id.clone() })
            }
            Err(e) => Err(backend("UpdateItem throttle", e)),
        }
    }

    async fn sighting(&self, id: &JobId) -> Result<Option<Sighting>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s("SWEEP"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem", e))?;
        Ok(out.item().map(|item| Sighting {
            fingerprint: get_n(item, "fingerprint"),
            since_ms: get_n(item, "since"),
            nudges: get_n(item, "nudges") as u32,
        }))
    }

    async fn put_sighting(&self, id: &JobId, sighting: &Sighting) -> Result<()> {
        // Kept as long as an ended job: the sweep no longer looks at it, and it goes with it.
        let ttl = now_ms() as i64 / 1000 + RETENTION_SECS;
        let gate = self.gate().await;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(job_pk(id)))
            .item("sk", s("SWEEP"))
            .item("fingerprint", n(sighting.fingerprint))
            .item("since", n(sighting.since_ms))
            .item("nudges", n(sighting.nudges))
            .item("ttl", n(ttl))
            .send()
            .await;
        drop(gate);
        result.map(|_| ()).map_err(|e| backend("PutItem sighting", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_created_key_is_written_as_it_always_was() {
        // As the `time` crate wrote it (RFC 3339, `Z`, no trailing zeros in the fraction):
        // jobs keyed before and after list in one order.
        for (created, key) in [
            ("2026-12-01T10:00:00Z", "2026-12-01T10:00:00Z"),
            ("2026-12-01T10:00:00.5Z", "2026-12-01T10:00:00.5Z"),
            ("2026-12-01T10:00:00.120Z", "2026-12-01T10:00:00.12Z"),
            ("2026-12-01T10:00:00.123456789Z", "2026-12-01T10:00:00.123456789Z"),
            ("2026-12-01T10:00:00.000001Z", "2026-12-01T10:00:00.000001Z"),
        ] {
            let id = JobId::parse("job-1").unwrap();
            let job = Job::new(id, Default::default(), String::new(), created.parse().unwrap());
            assert_eq!(created_key(&job), format!("{key}#job-1"), "{created}");
        }
    }
}
