//! `Custom::BatchopsJob`: a job declared in a CloudFormation, SAM or CDK template. Create is
//! CreateJob; Update changes priority, rate and tags in place and replaces the job for any
//! other change (CloudFormation then deletes the old resource); Delete cancels a job that has
//! not ended. Every request is answered: FAILED with its reason when anything goes wrong, so
//! no stack waits out CloudFormation's hour for an answer that never comes. With
//! `WaitFor: Complete` the answer waits for the job to end, in checks queued on the resource
//! function's own queue, until a minute before CloudFormation would stop waiting.

use std::time::Duration;

use super::intake::{Caller, Intake};
use super::now;
use crate::job::{Job, JobId, JobStatus};
use crate::ports::{Queue, Responder};
use crate::resource::{attributes, Properties, Request, RequestType, Response, Wait, WaitFor};
use crate::retry::RetryPolicy;
use crate::{Error, Result};

/// The most UpdateJobStatus keeps of a reason.
const MAX_STATUS_REASON: usize = 256;

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
    /// Delete: the job cancelled, or nothing left to cancel.
    Deleted,
}

impl Resources<'_> {
    /// Handles one request document and answers it, or queues its wait. An error means the
    /// answer could not be sent (the request may be delivered again: creating is idempotent).
    pub async fn handle(&self, req: &Request) -> Result<()> {
        let applied = RetryPolicy::backend().transient(|| self.apply(req)).await;
        let response = match applied {
            Ok(Applied::Job { job, wait_secs: Some(secs) }) if !job.status.is_terminal() => {
                let wait = Wait::new(req, job.id.as_str(), secs, now());
                match self.queue_wait(&wait).await {
                    Ok(()) => {
                        tracing::info!(job_id = %job.id, deadline = %wait.deadline, "waiting for the job to end");
                        return Ok(());
                    }
                    Err(e) => Response::failed(req, job.id.as_str(), &format!("cannot wait for job {}: {e}", job.id)),
                }
            }
            Ok(Applied::Job { job, wait_secs: Some(_) }) => ended(req, &job),
            Ok(Applied::Job { job, wait_secs: None }) => Response::success(req, job.id.as_str(), attributes(&job)),
            Ok(Applied::Deleted) => Response::success(req, &physical_id(req), Default::default()),
            Err(e) => Response::failed(req, &physical_id(req), &e.to_string()),
        };
        self.respond(req, &response).await
    }

    /// One check of a waiting request: answered when its job has ended or its deadline came;
    /// `Error::NotYet` (check again later) while the job runs.
    pub async fn check(&self, wait: &Wait) -> Result<()> {
        let req = &wait.request;
        let response = match self.intake.describe_job(&wait.job_id).await {
            Ok(job) if job.status.is_terminal() => ended(req, &job),
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
                    "job {} is still {} at the end of CloudFormation's wait for this resource (its ServiceTimeout, at most \
                     one hour); the job goes on, and deleting this resource (as a rollback does) cancels it. For jobs that \
                     run longer, leave WaitFor out and follow the job with DescribeJob",
                    job.id, job.status
                );
                Response::failed(req, &wait.job_id, &reason)
            }
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => Response::failed(req, &wait.job_id, &e.to_string()),
        };
        self.respond(req, &response).await
    }

    async fn apply(&self, req: &Request) -> Result<Applied> {
        match req.request_type {
            RequestType::Create => self.create(req, &Properties::parse(&req.resource_properties)?).await,
            RequestType::Update => self.update(req).await,
            RequestType::Delete => self.delete(req).await.map(|()| Applied::Deleted),
        }
    }

    async fn create(&self, req: &Request, props: &Properties) -> Result<Applied> {
        let id = self.intake.create_job(&props.create_body(req.token())?, Caller::Stack).await?;
        let job = self.intake.describe_job(id.as_str()).await?;
        tracing::info!(job_id = %id, resource = %req.logical_resource_id, "job of a stack created");
        Ok(Applied::Job {
            job: Box::new(job),
            wait_secs: (props.wait_for == WaitFor::Complete).then_some(props.wait_secs),
        })
    }

    /// In place when only priority, rate, tags or WaitFor changed (against the job as it is,
    /// or as CloudFormation last knew it: a rollback's Update goes back to the job's own
    /// spec); otherwise a new job, whose id CloudFormation takes as the new physical id.
    async fn update(&self, req: &Request) -> Result<Applied> {
        let new = Properties::parse(&req.resource_properties)?;
        let old = req.old_resource_properties.as_ref().and_then(|o| Properties::parse(o).ok());
        let Some(job) = self.current(req).await? else { return self.create(req, &new).await };
        let replace = new.differs_from(&job.spec) && old.is_none_or(|o| new.differs_from(&o.spec));
        if replace {
            return self.create(req, &new).await;
        }
        self.change_in_place(&job, &new).await?;
        let job = self.intake.describe_job(job.id.as_str()).await?;
        Ok(Applied::Job { job: Box::new(job), wait_secs: (new.wait_for == WaitFor::Complete).then_some(new.wait_secs) })
    }

    /// The resource's job, if its physical id names one that is still there.
    async fn current(&self, req: &Request) -> Result<Option<Job>> {
        let Some(id) = req.physical_resource_id.as_deref().filter(|id| JobId::parse(id).is_ok()) else {
            return Ok(None);
        };
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
    /// that failed has no job).
    async fn delete(&self, req: &Request) -> Result<()> {
        let Some(job) = self.current(req).await? else { return Ok(()) };
        if job.status.is_terminal() {
            return Ok(());
        }
        let mut reason = format!("{} was deleted from its CloudFormation stack", req.logical_resource_id);
        reason.truncate(MAX_STATUS_REASON);
        match self.intake.update_job_status(job.id.as_str(), "Cancelled", Some(reason)).await {
            Ok(_) | Err(Error::StatusConflict { .. } | Error::JobNotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
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

/// The answer once the job ended: SUCCESS with its attributes when it is Complete, FAILED with
/// its failure reasons otherwise.
fn ended(req: &Request, job: &Job) -> Response {
    if job.status == JobStatus::Complete {
        return Response::success(req, job.id.as_str(), attributes(job));
    }
    let reasons: Vec<String> =
        job.failure_reasons.iter().map(|f| format!("{}: {}", f.failure_code, f.failure_reason)).collect();
    let detail = if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join("; ")) };
    Response::failed(req, job.id.as_str(), &format!("job {} ended {}{detail}", job.id, job.status))
}

/// The physical id of an answer that has no job of its own: the one CloudFormation knows, or
/// for a Create that made no job, one that names no job (its Delete then has nothing to do).
fn physical_id(req: &Request) -> String {
    req.physical_resource_id.clone().unwrap_or_else(|| format!("batchops-no-job-{}", req.request_id))
}
