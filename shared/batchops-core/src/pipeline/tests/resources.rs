//! `Custom::BatchopsJob`: CloudFormation's requests as it sends them (every scalar a string),
//! each answered once in a response document; the job created once, changed in place or
//! replaced, cancelled on Delete; `WaitFor: Complete` answered when the job ends or its wait
//! runs out.

use std::sync::Mutex;

use super::*;
use crate::pipeline::resource::Resources;
use crate::ports::Responder;
use crate::resource::{Request, Response, Wait};

/// The response documents PUT to each ResponseURL, in order.
#[derive(Default)]
struct Answers(Mutex<Vec<(String, Response)>>);

#[async_trait]
impl Responder for Answers {
    async fn put(&self, url: &str, body: Vec<u8>) -> crate::Result<()> {
        self.0.lock().unwrap().push((url.to_string(), serde_json::from_slice(&body).unwrap()));
        Ok(())
    }
}

impl Answers {
    fn all(&self) -> Vec<Response> {
        self.0.lock().unwrap().iter().map(|(_, r)| r.clone()).collect()
    }

    fn last(&self) -> Response {
        self.0.lock().unwrap().last().expect("an answer").1.clone()
    }
}

/// CloudFormation's properties: the spec's members with every scalar as a string.
fn as_cloudformation(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, as_cloudformation(v))).collect()),
        Value::Array(a) => Value::Array(a.into_iter().map(as_cloudformation).collect()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Number(n) => Value::String(n.to_string()),
        other => other,
    }
}

struct Stack {
    world: World,
    answers: Answers,
    waits: InMemoryQueue,
    intake: Intake,
}

impl Stack {
    fn new() -> Stack {
        let world = World::new(10, Duration::from_secs(60));
        let intake = world.intake();
        Stack { world, answers: Answers::default(), waits: InMemoryQueue::default(), intake }
    }

    fn resources(&self) -> Resources<'_> {
        Resources { intake: &self.intake, responder: &self.answers, waits: &self.waits, poll: Duration::from_secs(5) }
    }

    /// A request of `kind` for resource `Job` with the spec of a 25-object tagging job plus `extra`.
    fn request(&self, kind: &str, request_id: &str, extra: Value) -> Request {
        let mut spec: Value = serde_json::from_slice(&self.world.spec(&manifest(25), extra)).unwrap();
        spec.as_object_mut().unwrap().remove("ClientRequestToken");
        spec["ServiceToken"] = json!("arn:aws:lambda:us-east-1:123456789012:function:batchops-JobResourceFunction");
        let doc = json!({
            "RequestType": kind,
            "ResponseURL": format!("https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/{request_id}"),
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/app/1b2c",
            "RequestId": request_id,
            "ResourceType": "Custom::BatchopsJob",
            "LogicalResourceId": "Job",
            "ResourceProperties": as_cloudformation(spec),
        });
        Request::parse(doc.to_string().as_bytes()).unwrap()
    }

    fn update(&self, request_id: &str, from: &Request, physical: &str, extra: Value) -> Request {
        Request {
            physical_resource_id: Some(physical.into()),
            old_resource_properties: Some(from.resource_properties.clone()),
            ..self.request("Update", request_id, extra)
        }
    }

    fn delete(&self, request_id: &str, physical: &str) -> Request {
        Request { physical_resource_id: Some(physical.into()), ..self.request("Delete", request_id, json!({})) }
    }

    async fn job(&self, id: &str) -> Job {
        self.world.store.get(&JobId::parse(id).unwrap()).await.unwrap()
    }

    async fn jobs(&self) -> usize {
        self.world.store.list(&JobFilter::default(), 1000, None).await.unwrap().jobs.len()
    }
}

#[tokio::test]
async fn a_create_delivered_twice_makes_one_job_and_answers_success_with_its_attributes() {
    let s = Stack::new();
    let create = s.request("Create", "req-1", json!({"Priority": 7, "ConfirmationRequired": false}));
    s.resources().handle(&create).await.unwrap();
    s.resources().handle(&create).await.unwrap();
    let answers = s.answers.all();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0].physical_resource_id, answers[1].physical_resource_id, "the same job both times");
    let a = &answers[0];
    assert_eq!((a.status.as_str(), a.request_id.as_str(), a.logical_resource_id.as_str()), ("SUCCESS", "req-1", "Job"));
    assert_eq!(a.data["JobId"], a.physical_resource_id.as_str());
    assert_eq!(a.data["Status"], "New");
    assert_eq!(a.data["ReportManifest"], format!("s3://reports/r/job-{}/manifest.json", a.physical_resource_id));
    assert_eq!(s.jobs().await, 1);
    let job = s.job(&a.physical_resource_id).await;
    assert_eq!(job.priority, 7, "the string \"7\" CloudFormation passed is CreateJob's integer");
    s.world.drain().await;
    assert_eq!(s.job(&a.physical_resource_id).await.status, JobStatus::Complete);
}

#[tokio::test]
async fn bad_properties_answer_failed_naming_the_member_and_make_no_job() {
    let s = Stack::new();
    let create = s.request("Create", "req-1", json!({"Priority": "high", "WaitFor": "Complete"}));
    s.resources().handle(&create).await.unwrap();
    let a = s.answers.last();
    assert_eq!(a.status, "FAILED");
    assert!(a.reason.starts_with("Priority"), "{}", a.reason);
    assert_eq!(a.physical_resource_id, create.job_id().as_str(), "the id its job would have had");
    assert_eq!(s.jobs().await, 0);
    // Its rollback's Delete has nothing to cancel, and succeeds.
    s.resources().handle(&s.delete("req-2", &a.physical_resource_id)).await.unwrap();
    assert_eq!(s.answers.last().status, "SUCCESS");
}

#[tokio::test]
async fn priority_and_tags_change_in_place_other_members_replace_the_job() {
    let s = Stack::new();
    let create = s.request("Create", "req-1", json!({"ConfirmationRequired": true}));
    s.resources().handle(&create).await.unwrap();
    let first = s.answers.last().physical_resource_id;
    let tags = json!([{"Key": "team", "Value": "data"}]);
    let update =
        s.update("req-2", &create, &first, json!({"ConfirmationRequired": true, "Priority": 42, "Tags": tags}));
    s.resources().handle(&update).await.unwrap();
    let a = s.answers.last();
    assert_eq!((a.status.as_str(), a.physical_resource_id.as_str()), ("SUCCESS", first.as_str()));
    let job = s.job(&first).await;
    assert_eq!((job.priority, job.tags.len(), job.tags[0].key.as_str()), (42, 1, "team"));
    assert_eq!(s.jobs().await, 1);

    let replace = s.update("req-3", &update, &first, json!({"ConfirmationRequired": true, "Description": "v2"}));
    s.resources().handle(&replace).await.unwrap();
    let second = s.answers.last().physical_resource_id;
    assert_ne!(second, first, "a new job, a new physical id");
    assert_eq!(s.jobs().await, 2);
    // CloudFormation deletes the replaced resource: its job, still waiting for confirmation, is cancelled.
    s.resources().handle(&s.delete("req-4", &first)).await.unwrap();
    assert_eq!(s.answers.last().status, "SUCCESS");
    s.world.drain().await;
    assert_eq!(s.job(&first).await.status, JobStatus::Cancelled);
    assert_eq!(s.job(&second).await.status, JobStatus::Suspended);
    // Deleting an ended job changes nothing and succeeds.
    s.resources().handle(&s.delete("req-5", &first)).await.unwrap();
    assert_eq!(s.answers.last().status, "SUCCESS");
    assert_eq!(s.job(&first).await.status, JobStatus::Cancelled);
}

#[tokio::test]
async fn wait_for_complete_answers_when_the_job_has_ended_with_its_counters() {
    let s = Stack::new();
    let create = s.request("Create", "req-1", json!({"WaitFor": "Complete"}));
    s.resources().handle(&create).await.unwrap();
    assert!(s.answers.all().is_empty(), "no answer while the job runs");
    let wait: Wait = serde_json::from_str(&s.waits.pop().expect("a queued wait")).unwrap();
    let err = s.resources().check(&wait).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(5)), "checked again after the poll interval");
    assert!(s.answers.all().is_empty());
    s.world.drain().await;
    s.resources().check(&wait).await.unwrap();
    let a = s.answers.last();
    assert_eq!((a.status.as_str(), a.request_id.as_str()), ("SUCCESS", "req-1"));
    assert_eq!((a.data["Status"].as_str(), a.data["TotalNumberOfTasks"].as_str()), (Some("Complete"), Some("25")));
    let job = s.job(&wait.job_id).await;
    assert!(job.progress.failed > 0, "the manifest's missing keys fail");
    assert_eq!(a.data["NumberOfTasksSucceeded"], job.progress.succeeded.to_string());
    assert_eq!(a.data["NumberOfTasksFailed"], job.progress.failed.to_string());
    assert_eq!(job.progress.succeeded + job.progress.failed, 25);
}

#[tokio::test]
async fn a_wait_past_its_deadline_answers_failed_and_says_what_happens_to_the_job() {
    let s = Stack::new();
    let create = s.request("Create", "req-1", json!({"WaitFor": "Complete", "ServiceTimeout": 120}));
    s.resources().handle(&create).await.unwrap();
    let mut wait: Wait = serde_json::from_str(&s.waits.pop().unwrap()).unwrap();
    assert!(
        wait.deadline > jiff::Timestamp::now() + jiff::SignedDuration::from_secs(80),
        "ServiceTimeout less a margin"
    );
    wait.deadline = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);
    s.resources().check(&wait).await.unwrap();
    let a = s.answers.last();
    assert_eq!((a.status.as_str(), a.physical_resource_id.as_str()), ("FAILED", wait.job_id.as_str()));
    assert!(a.reason.contains("still New") && a.reason.contains("leave WaitFor out"), "{}", a.reason);
    s.world.drain().await;
    let job = s.job(&wait.job_id).await;
    assert_eq!(job.status, JobStatus::Cancelled, "a FAILED answer cancels the job its request started");
    assert!(job.status_update_reason.unwrap().starts_with("Job failed in CloudFormation: job "));
}

/// A queue that refuses every message.
struct Refusing;

#[async_trait]
impl Queue for Refusing {
    async fn send(&self, _: Vec<String>) -> crate::Result<()> {
        Err(Error::permanent("SendMessage", "AccessDenied"))
    }
    async fn depth(&self) -> crate::Result<u64> {
        Ok(0)
    }
}

#[tokio::test]
async fn a_create_that_fails_after_storing_its_job_cancels_it_and_names_it() {
    let s = Stack::new();
    let refusing = Resources { waits: &Refusing, ..s.resources() };
    let create = s.request("Create", "req-1", json!({"WaitFor": "Complete"}));
    refusing.handle(&create).await.unwrap();
    let a = s.answers.last();
    assert_eq!(a.status, "FAILED");
    assert!(a.reason.starts_with("cannot wait for job"), "{}", a.reason);
    assert_eq!(a.physical_resource_id, create.job_id().as_str(), "the answer names the job it made");
    s.world.drain().await;
    assert_eq!(s.job(&a.physical_resource_id).await.status, JobStatus::Cancelled);
    // Its rollback's Delete finds it ended, and succeeds.
    s.resources().handle(&s.delete("req-2", &a.physical_resource_id)).await.unwrap();
    assert_eq!(s.answers.last().status, "SUCCESS");
}

#[tokio::test]
async fn a_failed_replacement_keeps_the_old_job_and_its_rollback_changes_nothing() {
    let s = Stack::new();
    let create = s.request("Create", "req-1", json!({"ConfirmationRequired": true}));
    s.resources().handle(&create).await.unwrap();
    let first = s.answers.last().physical_resource_id;
    // The replacement waits for its job, and the wait cannot be queued: FAILED.
    let refusing = Resources { waits: &Refusing, ..s.resources() };
    let replace = s.update("req-2", &create, &first, json!({"Description": "v2", "WaitFor": "Complete"}));
    refusing.handle(&replace).await.unwrap();
    let a = s.answers.last();
    assert_eq!(
        (a.status.as_str(), a.physical_resource_id.as_str()),
        ("FAILED", first.as_str()),
        "the job CloudFormation knew"
    );
    s.world.drain().await;
    assert_eq!(s.job(replace.job_id().as_str()).await.status, JobStatus::Cancelled, "the new job does not outlive it");
    assert_eq!(s.job(&first).await.status, JobStatus::Suspended);
    // CloudFormation's rollback: an Update back to the first properties, on the first job.
    let rollback = Request {
        old_resource_properties: Some(replace.resource_properties.clone()),
        ..s.update("req-3", &create, &first, json!({"ConfirmationRequired": true}))
    };
    s.resources().handle(&rollback).await.unwrap();
    let a = s.answers.last();
    assert_eq!((a.status.as_str(), a.physical_resource_id.as_str()), ("SUCCESS", first.as_str()));
    assert_eq!(s.jobs().await, 2, "no third job");
}

#[tokio::test]
async fn an_update_of_priority_only_runs_nothing_again_when_the_job_is_gone() {
    let s = Stack::new();
    let create = s.request("Create", "req-1", json!({}));
    let gone = create.job_id().to_string(); // a job id no job has (past its retention)
    let update = s.update("req-2", &create, &gone, json!({"Priority": 99}));
    s.resources().handle(&update).await.unwrap();
    let a = s.answers.last();
    assert_eq!((a.status.as_str(), a.physical_resource_id.as_str()), ("SUCCESS", gone.as_str()));
    assert_eq!(s.jobs().await, 0, "the operation is not run again");
    // Every attribute a template may GetAtt is still answered (CloudFormation keeps only these).
    assert_eq!(a.data["Status"], "Expired");
    let account = &s.world.settings.account_id;
    assert_eq!(a.data["JobArn"], format!("arn:aws:s3:us-east-1:{account}:job/{gone}"));
    assert_eq!(a.data.len(), 7);
    // Removing a rate is not a change a job takes in place: a new job.
    let limited = s.update("req-3", &create, &gone, json!({"MaxTasksPerSecond": 5}));
    let unlimited = Request {
        old_resource_properties: Some(limited.resource_properties.clone()),
        ..s.update("req-4", &create, &gone, json!({}))
    };
    s.resources().handle(&unlimited).await.unwrap();
    assert_eq!(s.jobs().await, 1);
}

#[tokio::test]
async fn a_check_that_keeps_failing_gives_up_with_failed() {
    let s = Stack::new();
    let create = s.request("Create", "req-1", json!({"WaitFor": "Complete"}));
    s.resources().handle(&create).await.unwrap();
    let wait: Wait = serde_json::from_str(&s.waits.pop().unwrap()).unwrap();
    assert!(wait.request.resource_properties.is_empty(), "the queued wait leaves the properties out");
    s.resources().give_up(&wait, &Error::transient("GetItem", "throttled")).await.unwrap();
    let a = s.answers.last();
    assert_eq!(a.status, "FAILED");
    assert!(a.reason.contains("could not follow job") && a.reason.contains("throttled"), "{}", a.reason);
}

#[tokio::test]
async fn a_job_that_fails_fails_its_waiting_resource_with_the_reason() {
    let s = Stack::new();
    let create = s.request("Create", "req-1", json!({"WaitFor": "Complete", "ConfirmationRequired": true}));
    s.resources().handle(&create).await.unwrap();
    let wait: Wait = serde_json::from_str(&s.waits.pop().unwrap()).unwrap();
    s.intake.update_job_status(&wait.job_id, "Cancelled", Some("changed my mind".into())).await.unwrap();
    s.world.drain().await;
    s.resources().check(&wait).await.unwrap();
    let a = s.answers.last();
    assert_eq!(a.status, "FAILED");
    assert!(a.reason.contains("ended Cancelled"), "{}", a.reason);
}

#[tokio::test]
async fn a_redelivered_create_whose_failed_answer_was_lost_answers_failed_again() {
    let s = Stack::new();
    let refusing = Resources { waits: &Refusing, ..s.resources() };
    let create = s.request("Create", "req-1", json!({"WaitFor": "Complete"}));
    refusing.handle(&create).await.unwrap();
    assert_eq!(s.answers.last().status, "FAILED");
    // Lambda delivers it again (as if that answer had not been sent), now without WaitFor's wait failing.
    s.resources().handle(&create).await.unwrap();
    let a = s.answers.last();
    assert_eq!((a.status.as_str(), a.physical_resource_id.as_str()), ("FAILED", create.job_id().as_str()));
    assert!(a.reason.contains("Cancel"), "{}", a.reason);
}
