//! `Custom::BatchopsJob`: a job declared in a CloudFormation, SAM or CDK template. Create is
//! CreateJob; Update changes priority, rate and tags in place and replaces the job for any
//! other change (CloudFormation then deletes the old resource); Delete cancels a job that has
//! not ended. Every request is answered: FAILED with its reason when anything goes wrong, so
//! no stack waits out CloudFormation's hour for an answer that never comes. A FAILED answer
//! cancels the job its own request started, so no job outlives the change that failed. With
//! `WaitFor: Complete` the answer waits for the job to end, in checks queued on the resource
//! function's own queue, until a minute before CloudFormation would stop waiting.

use std::time::Duration;

use serde_json::Map;

use super::intake::{Caller, Intake, MAX_STATUS_REASON};
use super::now;
use crate::job::{Job, JobId, JobStatus};
use crate::ports::{Queue, Responder};
use crate::resource::{attributes, expired_attributes, Properties, Request, RequestType, Response, Wait};
use crate::retry::RetryPolicy;
use crate::{Error, Result};

pub struct Resources<'a> {
    pub intake: &'a Intake,
    pub responder: &'a dyn Responder,
    /// Where a request waiting for its job is queued between checks.
    pub waits: &'a dyn Queue,
    /// How long a waiting request waits between checks of its job.
    pub poll: Duration,
}

/// What a request did, before its answer.
enum Applied {
    /// The resource's job (created, changed or as it was), and how long CloudFormation waits
    /// when the answer is to wait for its end.
    Job { job: Box<Job>, wait_secs: Option<u64> },
    /// An Update of the members a job changes in place, whose job is gone (past its
    /// retention): nothing to change, and nothing to run again.
    Unchanged,
    /// Delete: the job cancelled, or nothing left to cancel.
    Deleted,
}

impl Resources<'_> {
    /// Handles one request document and answers it, or queues its wait. An error means the
    /// answer could not be sent (the request may be delivered again: creating is idempotent).
    pub async fn handle(&self, req: &Request) -> Result<()> {
        let applied = RetryPolicy::backend().transient(|| self.apply(req)).await;
        let response = match applied {
            // A redelivery of a request whose FAILED answer was lost: its job was cancelled then.
            Ok(Applied::Job { job, .. }) if job.id == req.job_id() && cancelled(&job) => {
                let why = job.status_update_reason.as_deref().unwrap_or("cancelled");
                self.failed(req, &format!("job {} is {}: {why}", job.id, job.status)).await
            }
            Ok(Applied::Job { job, wait_secs: Some(secs) }) if !job.status.is_terminal() => {
                // CloudFormation has waited since the request came: since the job's creation
                // for a job this request made (a redelivery comes later).
                let since = if job.id == req.job_id() { job.created.min(now()) } else { now() };
                let wait = Wait::new(req, job.id.as_str(), secs, since);
                match self.queue_wait(&wait).await {
                    Ok(()) => {
                        tracing::info!(job_id = %job.id, deadline = %wait.deadline, "waiting for the job to end");
                        return Ok(());
                    }
                    Err(e) => self.failed(req, &format!("cannot wait for job {}: {e}", job.id)).await,
                }
            }
            Ok(Applied::Job { job, wait_secs: Some(_) }) => self.ended(req, &job).await,
            Ok(Applied::Job { job, wait_secs: None }) => Response::success(req, job.id.as_str(), attributes(&job)),
            Ok(Applied::Unchanged) => {
                let physical = answer_id(req);
                let settings = &self.intake.ports.settings;
                let arn = format!("arn:aws:s3:{}:{}:job/{physical}", settings.region, settings.account_id);
                let data = JobId::parse(&physical).map(|id| expired_attributes(&id, &arn)).unwrap_or_default();
                Response::success(req, &physical, data)
            }
            Ok(Applied::Deleted) => Response::success(req, &answer_id(req), Map::new()),
            Err(e) => self.failed(req, &e.to_string()).await,
        };
        self.respond(req, &response).await
    }

    /// One check of a waiting request: answered when its job has ended or its deadline came;
    /// `Error::NotYet` (check again later) while the job runs.
    pub async fn check(&self, wait: &Wait) -> Result<()> {
        let req = &wait.request;
        if wait.cancel_only {
            let why = format!("{} failed in CloudFormation", req.logical_resource_id);
            return self.cancel(&wait.job_id, &why).await;
        }
        let response = match self.intake.describe_job(&wait.job_id).await {
            Ok(job) if job.status.is_terminal() => self.ended(req, &job).await,
            Ok(job) => {
                let left = wait.deadline.duration_since(now());
                if left.is_positive() {
                    let left = Duration::try_from(left).unwrap_or_default();
                    return Err(Error::NotYet {
                        message: format!("job {} is {}", job.id, job.status),
                        retry_after: self.poll.min(left).max(Duration::from_secs(1)),
                    });
                }
                let reason = format!(
                    "job {} was still {} at the end of CloudFormation's wait for this resource (its ServiceTimeout, \
                     at most one hour); for jobs that run longer, leave WaitFor out and follow the job with DescribeJob",
                    job.id, job.status
                );
                self.failed(req, &reason).await
            }
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => self.failed(req, &e.to_string()).await,
        };
        self.respond(req, &response).await
    }

    /// The last check of a waiting request that kept failing with `error`: answered FAILED
    /// now, rather than its message dead-lettered and the stack left waiting.
    pub async fn give_up(&self, wait: &Wait, error: &Error) -> Result<()> {
        if wait.cancel_only {
            tracing::error!(job_id = %wait.job_id, error = %error, "the job of a failed request is not cancelled");
            return Ok(());
        }
        let reason = format!("could not follow job {}: {error}", wait.job_id);
        let response = self.failed(&wait.request, &reason).await;
        self.respond(&wait.request, &response).await
    }

    async fn apply(&self, req: &Request) -> Result<Applied> {
        match req.request_type {
            RequestType::Create => self.create(req, &Properties::parse(&req.resource_properties)?).await,
            RequestType::Update => self.update(req).await,
            RequestType::Delete => self.delete(req).await.map(|()| Applied::Deleted),
        }
    }

    /// CreateJob of the request's own job id and token: delivered again, the same job.
    async fn create(&self, req: &Request, props: &Properties) -> Result<Applied> {
        let spec = props.job_spec(req.token());
        let id = self.intake.create_job_with_id(spec, Caller::Stack, req.job_id()).await?;
        let job = self.intake.describe_job(id.as_str()).await?;
        tracing::info!(job_id = %id, resource = %req.logical_resource_id, "job of a stack created");
        Ok(Applied::Job { job: Box::new(job), wait_secs: props.wait() })
    }

    /// In place when only priority, rate, tags or WaitFor changed (against the job as it is,
    /// or as CloudFormation last knew it: a rollback's Update goes back to the job's own
    /// spec); otherwise a new job, whose id CloudFormation takes as the new physical id.
    async fn update(&self, req: &Request) -> Result<Applied> {
        let new = Properties::parse(&req.resource_properties)?;
        let old = req.old_resource_properties.as_ref().and_then(|o| Properties::parse(o).ok());
        let in_place_only = old.is_some_and(|o| !new.differs_from(&o.spec));
        let job = match self.current(req).await? {
            Some(job) if in_place_only || !new.differs_from(&job.spec) => job,
            None if in_place_only => return Ok(Applied::Unchanged),
            _ => return self.create(req, &new).await,
        };
        self.change_in_place(&job, &new).await?;
        let job = self.intake.describe_job(job.id.as_str()).await?;
        Ok(Applied::Job { job: Box::new(job), wait_secs: new.wait() })
    }

    /// The resource's job, if its physical id names one that is still there.
    async fn current(&self, req: &Request) -> Result<Option<Job>> {
        let Some(id) = req.physical_resource_id.as_deref() else { return Ok(None) };
        self.job(id).await
    }

    /// Job `id`, unless there is none (or the id could name none).
    async fn job(&self, id: &str) -> Result<Option<Job>> {
        if JobId::parse(id).is_err() {
            return Ok(None);
        }
        match self.intake.describe_job(id).await {
            Ok(job) => Ok(Some(job)),
            Err(Error::JobNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Priority and rate of a job that has not ended (one that ends meanwhile keeps its own),
    /// and the tags of any job, as S3 allows.
    async fn change_in_place(&self, job: &Job, new: &Properties) -> Result<()> {
        let id = job.id.as_str();
        let live = !job.status.is_terminal();
        let priority = new.spec.priority.unwrap_or(0);
        if live && priority != job.priority {
            ended_meanwhile(self.intake.update_job_priority(id, &priority.to_string()).await.map(|_| ()))?;
        }
        if let Some(rate) = new.spec.max_tasks_per_second.filter(|r| live && job.max_tasks_per_second != Some(*r)) {
            ended_meanwhile(self.intake.update_job_rate(id, &rate.to_string()).await.map(|_| ()))?;
        }
        let tags = new.spec.tags.clone().unwrap_or_default();
        if tags != job.tags {
            let body = serde_json::to_vec(&serde_json::json!({ "Tags": tags })).map_err(Error::invalid_json)?;
            self.intake.put_job_tagging(id, &body).await?;
        }
        Ok(())
    }

    /// Cancels the resource's job unless it has ended or is gone (or never was: a Create
    /// that failed before storing its job).
    async fn delete(&self, req: &Request) -> Result<()> {
        let Some(id) = req.physical_resource_id.as_deref() else { return Ok(()) };
        let reason = format!("{} was deleted from its CloudFormation stack", req.logical_resource_id);
        self.cancel(id, &reason).await
    }

    /// Cancels job `id` if it is there and has not ended.
    async fn cancel(&self, id: &str, reason: &str) -> Result<()> {
        let Some(job) = self.job(id).await? else { return Ok(()) };
        if job.status.is_terminal() {
            return Ok(());
        }
        let reason: String = reason.chars().take(MAX_STATUS_REASON).collect();
        match self.intake.update_job_status(job.id.as_str(), "Cancelled", Some(reason)).await {
            Ok(_) | Err(Error::StatusConflict { .. } | Error::JobNotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A FAILED answer, once the job this request started (if any) is cancelled: a Create
    /// answers with that job's id, so even a cancel that did not happen here is its rollback's
    /// Delete's to make; an Update answers with the job CloudFormation knew, which its rollback
    /// keeps.
    async fn failed(&self, req: &Request, reason: &str) -> Response {
        if req.request_type != RequestType::Delete {
            let own = req.job_id();
            let why = format!("{} failed in CloudFormation: {reason}", req.logical_resource_id);
            let cancelled = RetryPolicy::backend().transient(|| self.cancel(own.as_str(), &why)).await;
            if let Err(e) = cancelled {
                // Tried again from the wait queue (its retries, then its dead-letter alarm): the
                // answer does not name this job when it is an Update's, so nothing else would.
                let later = Wait { cancel_only: true, ..Wait::new(req, own.as_str(), 0, now()) };
                tracing::warn!(job_id = %own, error = %e, "the job of a failed request is to be cancelled from the wait queue");
                if let Err(e) = self.queue_wait(&later).await {
                    tracing::error!(job_id = %own, error = %e, "the job of a failed request is not cancelled");
                }
            }
        }
        Response::failed(req, &answer_id(req), reason)
    }

    /// The answer once the job ended: SUCCESS with its attributes when it is Complete, FAILED
    /// with its failure reasons otherwise.
    async fn ended(&self, req: &Request, job: &Job) -> Response {
        if job.status == JobStatus::Complete {
            return Response::success(req, job.id.as_str(), attributes(job));
        }
        let reasons: Vec<String> =
            job.failure_reasons.iter().map(|f| format!("{}: {}", f.failure_code, f.failure_reason)).collect();
        let detail = if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join("; ")) };
        self.failed(req, &format!("job {} ended {}{detail}", job.id, job.status)).await
    }

    async fn queue_wait(&self, wait: &Wait) -> Result<()> {
        let body = serde_json::to_string(wait).map_err(Error::invalid_json)?;
        RetryPolicy::backend().transient(|| self.waits.send(vec![body.clone()])).await
    }

    async fn respond(&self, req: &Request, response: &Response) -> Result<()> {
        let body = serde_json::to_vec(response).map_err(Error::invalid_json)?;
        RetryPolicy::backend().transient(|| self.responder.put(&req.response_url, body.clone())).await?;
        tracing::info!(
            status = %response.status, reason = %response.reason, physical_id = %response.physical_resource_id,
            request = ?req.request_type, resource = %req.logical_resource_id, "CloudFormation answered"
        );
        Ok(())
    }
}

/// A change refused because the job ended between reading and writing it: nothing to change.
fn ended_meanwhile(r: Result<()>) -> Result<()> {
    match r {
        Err(Error::StatusConflict { .. }) => Ok(()),
        other => other,
    }
}

/// Cancelled, or being cancelled.
fn cancelled(job: &Job) -> bool {
    matches!(job.status, JobStatus::Cancelling | JobStatus::Cancelled)
}

/// The physical id of an answer: the job a Create makes (whether or not it was made), the one
/// CloudFormation knows for an Update or a Delete.
fn answer_id(req: &Request) -> String {
    match (&req.request_type, &req.physical_resource_id) {
        (RequestType::Create, _) | (_, None) => req.job_id().to_string(),
        (_, Some(known)) => known.clone(),
    }
}
