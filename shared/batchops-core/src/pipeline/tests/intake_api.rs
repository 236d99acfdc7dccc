//! What intake answers: confirmation, idempotent creation, lists, retries of failed tasks, dry runs, schedules, expiry.

use super::*;

#[tokio::test]
async fn a_job_that_needs_confirmation_waits_in_suspended() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w
        .intake()
        .create_job(&w.spec(&manifest(25), json!({"ConfirmationRequired": true})), Caller::Unknown)
        .await
        .unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Suspended);
    assert_eq!(job.progress.total_tasks, Some(25));
    assert_eq!(job.progress.tasks_run(), 0, "nothing runs before confirmation");
    assert!(job.suspended.is_some() && job.suspended_cause.is_some());
    let up = w.intake().update_job_status(id.as_str(), "Ready", Some("go".into())).await.unwrap();
    assert_eq!(up.status, JobStatus::Ready);
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!(w.report_rows(&job).len(), 25);
    let err = w.intake().update_job_status(id.as_str(), "Ready", None).await.unwrap_err();
    assert!(matches!(err, crate::Error::StatusConflict { .. }));
    // Every status it went through, in order, with the causes stated.
    let history: Vec<(JobStatus, Option<&str>)> = job.history.iter().map(|c| (c.status, c.reason.as_deref())).collect();
    let cause = job.suspended_cause.as_deref();
    use JobStatus::*;
    assert_eq!(
        history,
        [
            (New, None),
            (Preparing, None),
            (Suspended, cause),
            (Ready, Some("go")),
            (Active, None),
            (Completing, None),
            (Complete, None)
        ]
    );
    assert!(job.history.windows(2).all(|w| w[0].at <= w[1].at));
    let described = crate::pipeline::describe::descriptor(&job, jiff::Timestamp::now());
    assert_eq!(
        described["StatusHistory"][3],
        json!({"Status": "Ready", "Time": described["StatusHistory"][3]["Time"], "Reason": "go"})
    );
}

#[tokio::test]
async fn create_job_is_idempotent_on_its_token() {
    let w = World::new(10, Duration::from_secs(60));
    let body = w.spec(&manifest(3), json!({"ClientRequestToken": "same"}));
    let a = w.intake().create_job(&body, Caller::Unknown).await.unwrap();
    let b = w.intake().create_job(&body, Caller::Unknown).await.unwrap();
    assert_eq!(a, b);
    let other = w.spec(&manifest(3), json!({"ClientRequestToken": "same", "Priority": 2}));
    assert!(matches!(w.intake().create_job(&other, Caller::Unknown).await, Err(crate::Error::Idempotency { .. })));
}

#[tokio::test]
async fn list_pages_and_filters_by_status() {
    let w = World::new(10, Duration::from_secs(60));
    for _ in 0..5 {
        w.intake().create_job(&w.spec(&manifest(1), json!({})), Caller::Unknown).await.unwrap();
    }
    let page = w.intake().list_jobs(&JobFilter::default(), Some(2), None).await.unwrap();
    assert_eq!(page.jobs.len(), 2);
    let page2 = w.intake().list_jobs(&JobFilter::default(), Some(10), page.next_token.as_deref()).await.unwrap();
    assert_eq!(page2.jobs.len(), 3);
    assert!(page2.next_token.is_none());
    assert_eq!(
        w.intake()
            .list_jobs(&JobFilter { statuses: &[JobStatus::New], account: None, open: false }, None, None)
            .await
            .unwrap()
            .jobs
            .len(),
        5
    );
    assert_eq!(
        w.intake()
            .list_jobs(&JobFilter { statuses: &[JobStatus::Active], account: None, open: false }, None, None)
            .await
            .unwrap()
            .jobs
            .len(),
        0
    );
}

#[tokio::test]
async fn retry_failed_runs_exactly_the_failed_rows_again_as_a_tagged_child_job() {
    let w = World::new(10, Duration::from_secs(60));
    let spec = w.spec(&manifest(40), json!({"Tags": [{"Key": "team", "Value": "data"}]}));
    let parent = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    // Not before it has ended.
    let early = w.intake().retry_failed(parent.as_str(), Caller::Unknown).await.unwrap_err();
    assert!(matches!(early, crate::Error::StatusConflict { .. }), "{early}");
    w.drain().await;
    assert_eq!(w.store.get(&parent).await.unwrap().progress.failed, 4);
    let child = w.intake().retry_failed(parent.as_str(), Caller::Unknown).await.unwrap();
    assert_eq!(w.intake().retry_failed(parent.as_str(), Caller::Unknown).await.unwrap(), child, "asked twice, one job");
    let manifest_key = format!("r/job-{parent}/retry-failed/manifest.csv");
    let written = String::from_utf8(w.objects.get("reports", &manifest_key).unwrap().to_vec()).unwrap();
    let mut lines: Vec<&str> = written.lines().collect();
    lines.sort();
    assert_eq!(lines, ["src,missing-13", "src,missing-23", "src,missing-3", "src,missing-33"]);
    w.drain().await;
    let job = w.store.get(&child).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!((job.progress.total_tasks, job.progress.failed), (Some(4), 4));
    assert_eq!(job.spec.description.as_deref(), Some(format!("Retry of the 4 failed tasks of job {parent}").as_str()));
    let tags: Vec<(String, String)> = job.tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect();
    assert_eq!(tags, [("team".into(), "data".into()), ("batchops:retry-of".into(), parent.to_string())]);
    assert_eq!(job.spec.operation, w.store.get(&parent).await.unwrap().spec.operation);

    // A job with no failed task, or without a report, says so.
    let clean =
        w.intake().create_job(&w.spec_at("ok.csv", "src,a\nsrc,b\n", json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let none = w.intake().retry_failed(clean.as_str(), Caller::Unknown).await.unwrap_err();
    assert!(none.to_string().contains("has no failed tasks"), "{none}");
    let quiet = w.spec_at("q.csv", "src,missing-1\n", json!({"Report": {"Enabled": false}}));
    let quiet = w.intake().create_job(&quiet, Caller::Unknown).await.unwrap();
    w.drain().await;
    let unreported = w.intake().retry_failed(quiet.as_str(), Caller::Unknown).await.unwrap_err();
    assert!(unreported.to_string().contains("has no report"), "{unreported}");
}

#[tokio::test]
async fn a_dry_run_reads_each_object_runs_no_operation_and_reports_what_would_happen() {
    let w = World::new(2, Duration::from_secs(60));
    w.objects.insert("src", "a", b"12345".to_vec());
    w.objects.insert("src", "b c", b"1".to_vec());
    let spec = w.spec_at("dry.csv", "src,a\nsrc,b%20c\nsrc,gone\n", json!({"DryRun": true}));
    let id = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!((job.progress.succeeded, job.progress.failed), (2, 1));
    assert_eq!(w.runner.total_calls(), 0, "no task ran the operation");
    let rows = w.report_rows(&job);
    assert!(
        rows.iter().any(|r| r.starts_with("src,a,,succeeded,200,,")
            && r.contains(r#"""DryRun"":true"#)
            && r.contains(r#"""Size"":5"#)),
        "{rows:?}"
    );
    assert!(rows.contains(&"src,gone,,failed,404,NoSuchKey,The specified key does not exist.".to_string()), "{rows:?}");
    let d = crate::pipeline::describe::descriptor(&job, jiff::Timestamp::now());
    assert_eq!(d["DryRun"], true);
    assert_eq!(d["DryRunEstimate"]["TasksThatWouldRun"], 2);
    assert_eq!(d["DryRunEstimate"]["RequestsOfTheRealRun"], json!({"PutObjectTagging": 2}));
}

#[tokio::test]
async fn a_schedule_firing_creates_one_job_however_often_it_is_delivered() {
    let w = World::new(10, Duration::from_secs(60));
    let spec: Value = serde_json::from_slice(&w.generator_spec(
        json!({"CreatedAfter": "-P1D", "CreatedBefore": "-PT1H"}),
        false,
        json!({}),
    ))
    .unwrap();
    let input = |time: &str| {
        json!({"batchops": {"Spec": spec, "ScheduleArn": "arn:aws:scheduler:us-east-1:123456789012:schedule/batchops/nightly",
                            "ScheduledTime": time, "ExecutionId": uuid::Uuid::new_v4().to_string()}})
        .to_string()
    };
    let firing = crate::schedule::Firing::parse(input("2026-12-01T02:00:00Z").as_bytes()).unwrap();
    let id = w.intake().create_scheduled(&firing, &*w.objects).await.unwrap();
    let again = crate::schedule::Firing::parse(input("2026-12-01T02:00:00Z").as_bytes()).unwrap();
    assert_eq!(w.intake().create_scheduled(&again, &*w.objects).await.unwrap(), id, "a redelivered firing");
    let next = crate::schedule::Firing::parse(input("2026-12-02T02:00:00Z").as_bytes()).unwrap();
    assert_ne!(w.intake().create_scheduled(&next, &*w.objects).await.unwrap(), id, "the next firing");
    // The windows were counted back from the scheduled time, and DescribeJob shows them.
    let d = crate::pipeline::describe::descriptor(&w.store.get(&id).await.unwrap(), jiff::Timestamp::now());
    let filter = &d["ManifestGenerator"]["S3JobManifestGenerator"]["Filter"];
    assert_eq!(filter["CreatedAfter"], "2026-11-30T02:00:00.000Z");
    assert_eq!(filter["CreatedBefore"], "2026-12-01T01:00:00.000Z");

    // A spec read from SpecLocation; a location that does not exist is named.
    w.objects.insert("specs", "schedules/nightly.json", w.spec(&manifest(3), json!({})));
    let located = json!({"batchops": {"SpecLocation": "s3://specs/schedules/nightly.json", "ScheduleArn": "arn:s",
                                      "ScheduledTime": "2026-12-01T02:00:00Z"}});
    let f = crate::schedule::Firing::parse(located.to_string().as_bytes()).unwrap();
    let job = w.intake().create_scheduled(&f, &*w.objects).await.unwrap();
    w.drain().await;
    assert_eq!(w.store.get(&job).await.unwrap().progress.total_tasks, Some(3));
    let missing = json!({"batchops": {"SpecLocation": "s3://specs/none.json", "ScheduleArn": "arn:s",
                                      "ScheduledTime": "2026-12-01T02:00:00Z"}});
    let f = crate::schedule::Firing::parse(missing.to_string().as_bytes()).unwrap();
    let e = w.intake().create_scheduled(&f, &*w.objects).await.unwrap_err().to_string();
    assert!(e.starts_with("batchops.SpecLocation: cannot read s3://specs/none.json"), "{e}");
}

#[tokio::test]
async fn a_job_unconfirmed_for_30_days_fails_and_an_ended_job_is_gone_after_90() {
    let w = World::new(10, Duration::from_secs(60));
    let waiting = w
        .intake()
        .create_job(&w.spec(&manifest(5), json!({"ConfirmationRequired": true})), Caller::Unknown)
        .await
        .unwrap();
    let recent = w
        .intake()
        .create_job(&w.spec_at("r.csv", &manifest(5), json!({"ConfirmationRequired": true})), Caller::Unknown)
        .await
        .unwrap();
    w.drain().await;
    let ago = |days: i64| jiff::Timestamp::now() - jiff::SignedDuration::from_hours(days * 24);
    let mut old = w.store.get(&waiting).await.unwrap();
    assert_eq!(old.status, JobStatus::Suspended);
    old.suspended = Some(ago(31));
    w.store.put(&old).await.unwrap();
    w.chunker().expire().await.unwrap();
    w.drain().await;
    let failed = w.store.get(&waiting).await.unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.failure_reasons[0].failure_code, "JobConfirmationExpired");
    assert_eq!(w.store.get(&recent).await.unwrap().status, JobStatus::Suspended, "29 days to go");

    // Ended 91 days ago: neither listed nor described.
    let mut ended = w.store.get(&waiting).await.unwrap();
    ended.terminated = Some(ago(91));
    w.store.put(&ended).await.unwrap();
    let listed: Vec<JobId> =
        w.intake().list_jobs(&JobFilter::default(), None, None).await.unwrap().jobs.into_iter().map(|j| j.id).collect();
    assert_eq!(listed, vec![recent.clone()]);
    assert!(matches!(w.intake().describe_job(waiting.as_str()).await, Err(crate::Error::JobNotFound { .. })));
}
