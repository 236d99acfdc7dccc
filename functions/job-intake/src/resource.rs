//! job-intake's custom resource function, `Custom::BatchopsJob`: CloudFormation invokes it with
//! a request document (Create, Update, Delete), and its own SQS queue brings it the checks of
//! requests waiting for their job to end (`WaitFor: Complete`). The logic is
//! `batchops_core::pipeline::resource`; this wires it to AWS and to the two kinds of event.

use std::num::NonZeroU64;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use batchops_aws::config::{optional_var, parse_var, ConfigError};
use batchops_aws::driver::{sqs_batch, Delivery};
use batchops_aws::{Clients, Config, HttpResponder, SqsQueue, Visibility};
use batchops_core::pipeline::resource::Resources;
use batchops_core::pipeline::Intake;
use batchops_core::resource::{answers_to, Request, Wait};
use batchops_core::{Error, Result};
use serde_json::Value;
use tokio::time::Instant;

/// The function's name in logs and metrics.
pub const FUNCTION: &str = "job-intake-resource";

/// CloudFormation's response buckets are S3's, in the AWS and China partitions.
const DEFAULT_HOSTS: &str = "amazonaws.com,amazonaws.com.cn";

/// The delivery from which a check that still fails answers FAILED: half the wait queue's
/// `maxReceiveCount` (10, infra/template.yaml), as receives of Lambda's poller while the
/// function is throttled count too.
const LAST_CHECK: u32 = 5;

/// The resource function's own settings, read once from the environment.
#[derive(Clone, Debug)]
pub struct ResourceConfig {
    /// The queue waiting requests are checked from (`BATCHOPS_RESOURCE_WAIT_QUEUE_URL`).
    pub wait_queue_url: String,
    /// Time between checks of a waiting request's job (`BATCHOPS_RESOURCE_POLL_SECS`, default 30).
    pub poll: Duration,
    /// The hosts (and their subdomains) a request's ResponseURL may name
    /// (`BATCHOPS_RESOURCE_RESPONSE_HOSTS`, comma-separated; default `amazonaws.com,amazonaws.com.cn`).
    pub response_hosts: Vec<String>,
}

impl ResourceConfig {
    pub fn from_env() -> std::result::Result<Self, ConfigError> {
        let name = "BATCHOPS_RESOURCE_WAIT_QUEUE_URL";
        let wait_queue_url = optional_var(name).ok_or(ConfigError::Missing { name })?;
        let poll: NonZeroU64 = parse_var("BATCHOPS_RESOURCE_POLL_SECS", NonZeroU64::MIN.saturating_add(29))?;
        let hosts = optional_var("BATCHOPS_RESOURCE_RESPONSE_HOSTS").unwrap_or_else(|| DEFAULT_HOSTS.into());
        let response_hosts =
            hosts.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect();
        Ok(ResourceConfig { wait_queue_url, poll: Duration::from_secs(poll.get()), response_hosts })
    }
}

pub struct ResourceFunction {
    intake: Intake,
    responder: HttpResponder,
    waits: SqsQueue,
    visibility: Visibility,
    poll: Duration,
    response_hosts: Vec<String>,
}

/// What one invocation brings.
enum Event {
    /// CloudFormation's request document, invoked directly.
    Request(Box<Request>),
    /// Checks of waiting requests, from the function's queue.
    Waits(SqsEvent),
}

impl ResourceFunction {
    pub fn new(config: &Config, clients: &Clients, own: ResourceConfig) -> Result<Self> {
        Ok(ResourceFunction {
            intake: crate::intake(config, clients),
            responder: HttpResponder::new()?,
            waits: SqsQueue::new(clients.sqs.clone(), &own.wait_queue_url),
            visibility: config.visibility(clients, &own.wait_queue_url),
            poll: own.poll,
            response_hosts: own.response_hosts,
        })
    }

    fn resources(&self) -> Resources<'_> {
        Resources { intake: &self.intake, responder: &self.responder, waits: &self.waits, poll: self.poll }
    }

    /// One invocation: a request is answered (an error only when the answer could not be
    /// sent, for Lambda to try the invocation again); a batch of waits gives the SQS batch
    /// response of the checks to deliver again.
    pub async fn invoke(&self, payload: Value, deadline: Instant) -> Result<Value> {
        match parse(payload)? {
            Event::Request(req) if !answers_to(&req.response_url, &self.response_hosts) => {
                // Not CloudFormation's: nothing is done for it and it is not answered, but the
                // invocation fails, so the function's errors alarm says so.
                let url = req.response_url.split(['?', '#']).next().unwrap_or_default();
                Err(Error::AccessDenied {
                    message: format!(
                        "request refused: its ResponseURL {url} is not on a response host ({}, BATCHOPS_RESOURCE_RESPONSE_HOSTS)",
                        self.response_hosts.join(", ")
                    ),
                })
            }
            Event::Request(req) => {
                self.resources().handle(&req).await?;
                Ok(Value::Object(Default::default()))
            }
            Event::Waits(batch) => {
                let response = sqs_batch(FUNCTION, batch, deadline, Some(&self.visibility), |d| self.check(d)).await;
                serde_json::to_value(response).map_err(Error::invalid_json)
            }
        }
    }

    /// One check of a waiting request; on its last delivery, a check that still fails answers
    /// CloudFormation FAILED instead of leaving its stack waiting for a dead letter.
    async fn check(&self, delivery: Delivery) -> Result<()> {
        let wait: Wait = serde_json::from_str(&delivery.body)
            .map_err(|e| Error::field("wait message", format!("unreadable: {e}")))?;
        match self.resources().check(&wait).await {
            Err(e) if e.retry_after().is_none() && delivery.attempt >= LAST_CHECK => {
                self.resources().give_up(&wait, &e).await
            }
            other => other,
        }
    }
}

fn parse(payload: Value) -> Result<Event> {
    if payload.get("Records").is_some() {
        let batch = serde_json::from_value(payload).map_err(|e| Error::field("Records", e.to_string()))?;
        return Ok(Event::Waits(batch));
    }
    let body = serde_json::to_vec(&payload).map_err(Error::invalid_json)?;
    Ok(Event::Request(Box::new(Request::parse(&body)?)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use batchops_core::resource::{BOOLEANS, INTEGERS};
    use serde_json::Value;

    /// Every member CreateJob's request reaches in S3 Control's model, with its shape's type.
    fn members(shapes: &Value, shape: &str, seen: &mut BTreeSet<String>, out: &mut BTreeSet<(String, String)>) {
        if !seen.insert(shape.to_string()) {
            return;
        }
        let s = &shapes[shape];
        let inner = |v: &Value| v["shape"].as_str().unwrap_or_default().to_string();
        match s["type"].as_str() {
            Some("structure") => {
                for (name, member) in s["members"].as_object().into_iter().flatten() {
                    let kind = shapes[inner(member)]["type"].as_str().unwrap_or_default().to_string();
                    out.insert((name.clone(), kind));
                    members(shapes, &inner(member), seen, out);
                }
            }
            Some("list") => members(shapes, &inner(&s["member"]), seen, out),
            Some("map") => members(shapes, &inner(&s["value"]), seen, out),
            _ => {}
        }
    }

    /// CloudFormation passes every scalar as a string: each boolean and integer member of
    /// CreateJob is turned back by name, so none may be missing from the custom resource's lists.
    #[test]
    fn every_boolean_and_integer_member_of_createjob_is_typed_back() {
        let model: Value = serde_json::from_str(include_str!("../model/s3control-jobs.json")).unwrap();
        let (mut seen, mut found) = (BTreeSet::new(), BTreeSet::new());
        members(&model["shapes"], "CreateJobRequest", &mut seen, &mut found);
        let mut checked = 0;
        for (name, kind) in found {
            match kind.as_str() {
                "boolean" => assert!(BOOLEANS.contains(&name.as_str()), "{name} (boolean) is not in BOOLEANS"),
                "integer" | "long" => assert!(INTEGERS.contains(&name.as_str()), "{name} ({kind}) is not in INTEGERS"),
                _ => continue,
            }
            checked += 1;
        }
        assert!(checked >= 15, "the model's booleans and integers were not found ({checked})");
    }
}
