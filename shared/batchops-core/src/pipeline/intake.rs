//! Job intake: CreateJob, DescribeJob, ListJobs, UpdateJobStatus, UpdateJobPriority.

use std::sync::Arc;

use sha1::{Digest, Sha1};

use super::{now, request_finalize, send_one, transition_from, StagePorts};
use crate::chunk::ControlMessage;
use crate::job::{Job, JobId, JobStatus};
use crate::ports::{
    read_at_most, CreateOutcome, JobFilter, JobPage, ObjectRef, ObjectStore, PassRoleCheck, Queue, ReadOptions,
};
use crate::schedule::Firing;
use crate::spec::JobSpec;
use crate::spec::{self, check_len, S3Tag};
use crate::{Error, Result};
use jiff::Timestamp;

/// S3's limit of tags per job.
pub const MAX_JOB_TAGS: usize = 50;

/// S3's limit on UpdateJobStatus's `statusUpdateReason` (characters).
pub const MAX_STATUS_REASON: usize = 256;

/// The body of PutJobTagging.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct TaggingRequest {
    tags: Vec<S3Tag>,
}

pub struct Intake {
    /// Job roles: retry-failed reads a report and writes a manifest as the job's role.
    pub ports: StagePorts,
    pub control: Arc<dyn Queue>,
    /// When set, CreateJob requires `iam:PassRole` of the caller on the job's role, as S3 does.
    pub pass_role: Option<Arc<dyn PassRoleCheck>>,
}

/// Who asks for a job, for the `iam:PassRole` check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller<'a> {
    /// An IAM user, role or assumed-role session ARN (API Gateway's `requestContext.identity`).
    Principal(&'a str),
    /// A spec uploaded to the specs bucket: write access to its `jobs/` is the permission.
    SpecUpload,
    /// A schedule's firing: creating the schedule (and passing its role) is the permission.
    Schedule,
    /// A `Custom::BatchopsJob` of a CloudFormation stack: CloudFormation invokes the resource's
    /// function as whoever deploys the stack, so `lambda:InvokeFunction` on it is the permission.
    Stack,
    /// A request whose caller is not known (no API Gateway identity).
    Unknown,
}

/// Whose jobs a request sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope<'a> {
    /// One account's: S3 Control requests name theirs in `x-amz-account-id`, and see, change
    /// and create only that account's jobs.
    Account(&'a str),
    /// Every account's: the JSON API without `x-amz-account-id` (the CLI, the console), the
    /// spec trigger and schedules.
    All,
}

impl<'a> Scope<'a> {
    fn account(self) -> Option<&'a str> {
        match self {
            Scope::Account(a) => Some(a),
            Scope::All => None,
        }
    }
}

/// The answer of UpdateJobStatus.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub job_id: JobId,
    pub status: JobStatus,
    pub reason: Option<String>,
}

/// The largest spec a job stores (serialized): with its plan and counters it fits a DynamoDB item.
pub const MAX_STORED_SPEC: usize = 128 * 1024;

/// Reads a spec at `s3://bucket/key` (a schedule's `SpecLocation`).
async fn read_location(objects: &dyn ObjectStore, location: &str) -> Result<Vec<u8>> {
    let field = "batchops.SpecLocation";
    let (bucket, key) = location
        .strip_prefix("s3://")
        .and_then(|r| r.split_once('/'))
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or_else(|| Error::field(field, format!("'{location}' is not s3://bucket/key")))?;
    read_spec(objects, bucket, key, field).await
}

/// Reads the spec object `s3://bucket/key`, at most [`spec::MAX_SPEC_BYTES`] of it (as the
/// API reads a body); an object that cannot be read or is larger is an error naming `field`.
pub async fn read_spec(objects: &dyn ObjectStore, bucket: &str, key: &str, field: &str) -> Result<Vec<u8>> {
    let location = format!("s3://{bucket}/{key}");
    let max = spec::MAX_SPEC_BYTES;
    let read = match objects
        .read(&ObjectRef::new(bucket, key), ReadOptions { end: Some(max as u64 + 1), ..Default::default() })
        .await
    {
        Ok(stream) => read_at_most(stream, max).await,
        // S3 answers a ranged read of an empty object 416: an empty spec, refused as such.
        Err(e) if e.http_status == 416 => Ok(Some(Vec::new())),
        Err(e) => Err(e),
    };
    match read {
        Ok(Some(spec)) => Ok(spec),
        Ok(None) => Err(Error::TooLarge { what: format!("the spec {location}"), limit: max }),
        Err(e) if e.is_transient() => Err(e.into()),
        Err(e) => Err(Error::field(field, format!("cannot read {location}: {} {}", e.code, e.message))),
    }
}

impl Intake {
    /// CreateJob: validates the spec and stores a New job, then asks the chunker to prepare
    /// it. The same ClientRequestToken with the same body returns the same job.
    pub async fn create_job(&self, body: &[u8], caller: Caller<'_>) -> Result<JobId> {
        self.create_job_in(body, caller, Scope::All).await
    }

    /// CreateJob for the account of `scope`: the job is that account's, and a spec naming
    /// another `AccountId` is refused.
    pub async fn create_job_in(&self, body: &[u8], caller: Caller<'_>, scope: Scope<'_>) -> Result<JobId> {
        let mut spec = spec::parse(body)?;
        if let Some(account) = scope.account() {
            match &spec.account_id {
                Some(named) if named != account => {
                    return Err(Error::field(
                        "AccountId",
                        format!("'{named}' is not the account of the request ({account}, x-amz-account-id)"),
                    ))
                }
                _ => spec.account_id = Some(account.to_string()),
            }
        }
        self.create(spec, caller, now(), JobId::new_random()).await
    }

    /// CreateJob of a job whose id the caller chose: a custom resource names its job before
    /// creating it, so that a request that fails after the job was stored still names it (and
    /// its rollback cancels it).
    /// `spec` is already parsed (the custom resource's properties).
    pub async fn create_job_with_id(&self, spec: JobSpec, caller: Caller<'_>, id: JobId) -> Result<JobId> {
        self.create(spec, caller, now(), id).await
    }

    /// What CreateJob would refuse in `body`, every member at once (nothing is created): the
    /// console checks a spec with it before submitting. Empty when the spec would be taken
    /// (the caller's `iam:PassRole` aside, which only CreateJob checks).
    pub fn problems(&self, body: &[u8]) -> Vec<Error> {
        let mut spec = match spec::parse(body) {
            Ok(s) => s,
            Err(e) => return vec![e],
        };
        if let Some(Err(e)) = spec.manifest_generator.as_mut().map(|g| crate::generator::resolve_windows(g, now())) {
            return vec![e];
        }
        spec.problems()
    }

    /// Creates the job of one schedule firing: its spec (given, or read from `SpecLocation`
    /// with `objects`) under a token of the schedule and the scheduled time, relative windows
    /// counted back from that time.
    pub async fn create_scheduled(&self, firing: &Firing, objects: &dyn ObjectStore) -> Result<JobId> {
        let mut spec: JobSpec = match (&firing.spec, &firing.spec_location) {
            (Some(given), _) => given.clone(),
            (None, Some(location)) => spec::parse(&read_location(objects, location).await?)?,
            (None, None) => return Err(Error::field("batchops", "give exactly one of Spec or SpecLocation")),
        };
        spec.client_request_token = Some(firing.token());
        let job = self.create(spec, Caller::Schedule, firing.time()?, JobId::new_random()).await?;
        tracing::info!(job_id = %job, schedule = %firing.schedule_arn, time = %firing.scheduled_time, "scheduled job");
        Ok(job)
    }

    /// Validates and stores job `id`; `reference` is the time relative windows count back from.
    async fn create(&self, mut spec: JobSpec, caller: Caller<'_>, reference: Timestamp, id: JobId) -> Result<JobId> {
        // The request as given decides idempotency: a retried create with a relative window
        // is the same request even though it resolves a moment later.
        let canonical = serde_json::to_vec(&spec).map_err(Error::invalid_json)?;
        // A job item holds its spec twice (as given, and as its plan) in DynamoDB's 400 KB: a
        // larger spec is refused here, not failed as a 500 by the store.
        if canonical.len() > MAX_STORED_SPEC {
            return Err(Error::TooLarge { what: "the job's spec (as stored)".into(), limit: MAX_STORED_SPEC });
        }
        let hash = hex::encode(Sha1::digest(&canonical));
        if let Some(g) = spec.manifest_generator.as_mut() {
            crate::generator::resolve_windows(g, reference)?;
        }
        let plan = spec.validate()?;
        self.check_pass_role(caller, spec.role_arn.as_deref().unwrap_or_default()).await?;
        let token = spec.client_request_token.clone().unwrap_or_default();
        let account = spec.account_id.clone().unwrap_or_else(|| self.ports.settings.account_id.clone());
        let arn = format!("arn:aws:s3:{}:{account}:job/{id}", self.ports.settings.region);
        let job = Job { plan: Some(plan), ..Job::new(id.clone(), spec, arn, now()) };
        // Tokens are the account's own, as in S3: two accounts may use the same one.
        let id = match self.ports.store.create(&job, &format!("{account}#{token}"), &hash).await? {
            CreateOutcome::Created => {
                crate::events::announce(&*self.ports.events, &job, None).await;
                id
            }
            CreateOutcome::Existing(existing) => {
                // A retry of a create whose Prepare message may never have been sent.
                if self.ports.store.get(&existing).await?.status != JobStatus::New {
                    return Ok(existing);
                }
                existing
            }
            CreateOutcome::Conflict => return Err(Error::Idempotency { token }),
        };
        send_one(&*self.control, &ControlMessage::Prepare { job_id: id.clone() }).await?;
        tracing::info!(job_id = %id, "job created");
        Ok(id)
    }

    /// S3 requires `iam:PassRole` on the job's role of whoever creates the job.
    async fn check_pass_role(&self, caller: Caller<'_>, role: &str) -> Result<()> {
        let Some(check) = &self.pass_role else { return Ok(()) };
        let denied = |message: String| Err(Error::AccessDenied { message });
        match caller {
            Caller::SpecUpload | Caller::Schedule | Caller::Stack => Ok(()),
            Caller::Unknown => denied(format!(
                "the caller is not known, so it cannot be checked for iam:PassRole on {role}: call through the API"
            )),
            Caller::Principal(arn) if check.may_pass(arn, role).await? => Ok(()),
            Caller::Principal(arn) => {
                denied(format!("{arn} is not authorized to perform iam:PassRole on resource {role} (RoleArn)"))
            }
        }
    }

    pub async fn describe_job(&self, id: &str) -> Result<Job> {
        self.job_in(id, Scope::All).await
    }

    /// DescribeJob within `scope`: another account's job is not found, as in S3. The routes
    /// that change a job ask it first.
    pub async fn job_in(&self, id: &str, scope: Scope<'_>) -> Result<Job> {
        let job = self.ports.store.get(&JobId::parse(id)?).await?;
        // Past its retention (awaiting the table's TTL) the job is gone, as in S3.
        if job.expired(now()) || scope.account().is_some_and(|a| a != job.account()) {
            return Err(Error::JobNotFound { job_id: job.id });
        }
        Ok(job)
    }

    pub async fn list_jobs(
        &self,
        filter: &JobFilter<'_>,
        max: Option<usize>,
        next_token: Option<&str>,
    ) -> Result<JobPage> {
        let max = max.unwrap_or(1000);
        if max > 1000 {
            return Err(Error::field("maxResults", "must be 0-1000"));
        }
        if let Some(t) = next_token {
            check_len("nextToken", t, 1, 1024)?;
        }
        let mut page = self.ports.store.list(filter, max, next_token).await?;
        // DynamoDB's TTL deletes within days of the expiry, not at it.
        let now = now();
        page.jobs.retain(|j| !j.expired(now));
        Ok(page)
    }

    /// UpdateJobStatus: `Ready` confirms a Suspended job; `Cancelled` cancels a live one.
    pub async fn update_job_status(&self, id: &str, requested: &str, reason: Option<String>) -> Result<StatusUpdate> {
        let id = JobId::parse(id)?;
        if let Some(r) = &reason {
            check_len("statusUpdateReason", r, 1, MAX_STATUS_REASON)?;
        }
        let set_reason = |j: &mut Job| {
            if reason.is_some() {
                j.status_update_reason = reason.clone();
            }
        };
        let conflict = |job: Job, what: &str| Error::StatusConflict {
            job_id: job.id.clone(),
            actual: job.status,
            message: format!("only {what}"),
        };
        let job = match requested {
            "Ready" => {
                match transition_from(
                    &*self.ports.store,
                    &*self.ports.events,
                    &id,
                    &[JobStatus::Suspended],
                    JobStatus::Ready,
                    set_reason,
                )
                .await?
                {
                    Ok(job) => {
                        send_one(&*self.control, &ControlMessage::Start { job_id: id.clone() }).await?;
                        job
                    }
                    Err(job) => return Err(conflict(job, "a Suspended job can be confirmed (Ready)")),
                }
            }
            "Cancelled" => {
                let live = crate::state::statuses_leading_to(JobStatus::Cancelling);
                match transition_from(
                    &*self.ports.store,
                    &*self.ports.events,
                    &id,
                    &live,
                    JobStatus::Cancelling,
                    set_reason,
                )
                .await?
                {
                    Ok(job) => {
                        request_finalize(&*self.ports.finalize, &id).await?;
                        job
                    }
                    Err(job) if job.status == JobStatus::Cancelling || job.status == JobStatus::Cancelled => job,
                    Err(job) => return Err(conflict(job, "a job that has not ended can be cancelled")),
                }
            }
            other => {
                return Err(Error::field("requestedJobStatus", format!("'{other}' is not one of Ready, Cancelled")))
            }
        };
        Ok(StatusUpdate { job_id: job.id, status: job.status, reason: job.status_update_reason })
    }

    /// UpdateJobPriority. Priority orders nothing yet: every job runs as fast as it can (S3
    /// says the same of its own priorities: they do not change a job's speed).
    pub async fn update_job_priority(&self, id: &str, priority: &str) -> Result<(JobId, i64)> {
        let id = JobId::parse(id)?;
        let p: i64 =
            priority.parse().map_err(|_| Error::field("priority", format!("'{priority}' is not an integer")))?;
        if !(0..=2_147_483_647).contains(&p) {
            return Err(Error::field("priority", "must be 0-2147483647"));
        }
        let job = self.change_live_job(&id, "priority", |j| j.priority = p).await?;
        Ok((job.id, job.priority))
    }

    /// batchops: sets a job's `MaxTasksPerSecond`; running chunks take their new share within
    /// a job check.
    pub async fn update_job_rate(&self, id: &str, rate: &str) -> Result<(JobId, u64)> {
        let id = JobId::parse(id)?;
        let r: u64 = rate
            .parse()
            .map_err(|_| Error::field("maxTasksPerSecond", format!("'{rate}' is not a whole number of tasks")))?;
        crate::spec::check_rate("maxTasksPerSecond", r)?;
        let job = self.change_live_job(&id, "task rate", |j| j.max_tasks_per_second = Some(r)).await?;
        Ok((job.id, r))
    }

    /// GetJobTagging.
    pub async fn get_job_tagging(&self, id: &str) -> Result<Vec<S3Tag>> {
        Ok(self.ports.store.get(&JobId::parse(id)?).await?.tags)
    }

    /// PutJobTagging: `{"Tags": [...]}` replaces the job's tags (any job, ended or not, as in
    /// S3); an empty set deletes them all.
    pub async fn put_job_tagging(&self, id: &str, body: &[u8]) -> Result<()> {
        let id = JobId::parse(id)?;
        let request: TaggingRequest = crate::spec::parse_json(body, "PutJobTaggingRequest")?;
        if request.tags.len() > MAX_JOB_TAGS {
            return Err(Error::TooManyTags {
                message: format!("Tags: a job holds at most {MAX_JOB_TAGS} tags, got {}", request.tags.len()),
            });
        }
        spec::check_tag_set("Tags", &request.tags, MAX_JOB_TAGS)?;
        self.set_tags(&id, request.tags).await
    }

    /// DeleteJobTagging.
    pub async fn delete_job_tagging(&self, id: &str) -> Result<()> {
        self.set_tags(&JobId::parse(id)?, Vec::new()).await
    }

    async fn set_tags(&self, id: &JobId, tags: Vec<S3Tag>) -> Result<()> {
        super::modify(&*self.ports.store, id, |j| {
            j.tags = tags.clone();
            true
        })
        .await?;
        Ok(())
    }

    /// Applies `change` to a job that has not ended.
    async fn change_live_job(&self, id: &JobId, what: &str, change: impl Fn(&mut Job)) -> Result<Job> {
        let mut ended = None;
        let changed = super::modify(&*self.ports.store, id, |j| {
            if j.status.is_terminal() {
                ended = Some(j.status);
                return false;
            }
            change(j);
            true
        })
        .await?;
        match (changed, ended) {
            (Some(job), _) => Ok(job),
            (None, Some(actual)) => Err(Error::StatusConflict {
                job_id: id.clone(),
                actual,
                message: format!("the {what} of an ended job cannot change"),
            }),
            (None, None) => Err(Error::transient(format!("job {id}"), "not changed")),
        }
    }
}
