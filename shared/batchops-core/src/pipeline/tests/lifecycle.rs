//! A job from creation to its end: statuses and their events, priorities, cancellation, roles.

use super::*;

#[tokio::test]
async fn a_job_runs_end_to_end_with_one_row_per_line() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(95), json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!(job.progress.total_tasks, Some(95));
    assert_eq!((job.progress.succeeded, job.progress.failed), (85, 10));
    assert!(job.terminated.is_some());
    let rows = w.report_rows(&job);
    assert_eq!(rows.len(), 95);
    assert!(rows.contains(&"src,missing-3,,failed,404,NoSuchKey,The specified key does not exist.".to_string()));
    assert!(rows.contains(&"src,flaky+7,,succeeded,200,,Successful".to_string()), "retried after SlowDown");
    assert!(rows.contains(&"src,obj%2094,,succeeded,200,,Successful".to_string()));
}

#[tokio::test]
async fn a_status_change_whose_answer_is_lost_is_still_followed_through() {
    // The finalizer's Active -> Completing is written and its answer lost (seen on DynamoDB
    // through the fault proxy: the job stayed Completing, its 400 tasks all done).
    let w = World::new(10, Duration::from_secs(60));
    let once = std::sync::atomic::AtomicBool::new(true);
    *w.store.lose_put_answers.lock().unwrap() = Some(Box::new(move |j| {
        j.status == JobStatus::Completing && once.swap(false, std::sync::atomic::Ordering::SeqCst)
    }));
    let id = w.intake().create_job(&w.spec(&manifest(25), json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.history);
    assert_eq!(w.report_rows(&job).len(), 25);
    let announced: Vec<JobStatus> =
        w.events.all().iter().filter(|e| e.job_id == id.as_str()).map(|e| e.status).collect();
    assert!(announced.contains(&JobStatus::Completing), "its event too: {announced:?}");
}

#[tokio::test]
async fn a_job_whose_last_chunks_end_while_it_is_pausing_still_ends() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(20), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    // The dispatcher paused it (a job of higher priority came) and released its last chunks;
    // they run and ask for the finalizer before the dispatcher moves it back to Active.
    let pausing = transition_from(&*w.store, &*w.events, &id, &[JobStatus::Active], JobStatus::Pausing, |_| {});
    assert!(pausing.await.unwrap().is_ok());
    while let Some(body) = w.chunks.pop() {
        w.executor().handle(&serde_json::from_str(&body).unwrap()).await.unwrap();
    }
    let msg: FinalizeMessage = serde_json::from_str(&w.finalize.pop().unwrap()).unwrap();
    let job = w.finalizer().handle(&msg).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.history);
    assert_eq!(w.report_rows(&job).len(), 20);
}

#[tokio::test]
async fn cancelling_stops_work_and_reports_what_ran() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(50), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    // Run two of the five chunks, then cancel.
    let executor = w.executor();
    for _ in 0..2 {
        let m = ChunkMessage::decode(&w.chunks.pop().unwrap()).unwrap();
        executor.handle(&m).await.unwrap();
    }
    let up = w.intake().update_job_status(id.as_str(), "Cancelled", Some("stop".into())).await.unwrap();
    assert_eq!(up.status, JobStatus::Cancelling);
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!(job.progress.tasks_run(), 20);
    assert_eq!(job.status_update_reason.as_deref(), Some("stop"));
    assert_eq!(w.report_rows(&job).len(), 20, "counters equal report rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_illegal_transition_is_refused_at_once_and_a_lost_race_is_retried() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(5), json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    // Complete -> Active is not a transition: refused without retrying 20 times.
    let refused = transition(&*w.store, &*w.events, w.store.get(&id).await.unwrap(), JobStatus::Active, |_| {}).await;
    assert!(matches!(refused, Err(Error::StatusConflict { actual: JobStatus::Complete, .. })), "{refused:?}");
    // A stale copy loses the race; modify() re-reads and wins.
    let stale = w.store.get(&id).await.unwrap();
    modify(&*w.store, &id, |j| {
        j.priority = 7;
        true
    })
    .await
    .unwrap();
    assert!(matches!(w.store.put(&stale).await, Err(Error::Conflict { .. })));
    let tries = std::sync::atomic::AtomicU32::new(0);
    let changed = modify(&*w.store, &id, |j| {
        // The first try loses a race against a writer that got in between.
        if tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            let mut other = j.clone();
            other.priority = 8;
            let put = w.store.put(&other);
            tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(put)).unwrap();
        }
        j.priority = 9;
        true
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!((changed.priority, tries.into_inner()), (9, 2));
}

#[tokio::test]
async fn a_higher_priority_job_overtakes_a_lower_one_which_pauses_then_resumes() {
    // GIVEN executors with room for two chunks, and a low-priority job of ten chunks running
    let mut w = World::new(10, Duration::from_secs(60));
    w.depth = 2;
    let spec = |n, priority| w.spec_at(&format!("m{priority}.csv"), &manifest(n), json!({ "Priority": priority }));
    let low = w.intake().create_job(&spec(100, 1), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    assert_eq!(w.chunks.len(), 2, "the queue holds only what the executors need");
    let status = |id: JobId| {
        let store = w.store.clone();
        async move { store.get(&id).await.unwrap().status }
    };
    assert_eq!(status(low.clone()).await, JobStatus::Active);
    // WHEN a job of higher priority arrives
    let high = w.intake().create_job(&spec(30, 100), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    // THEN the next chunk that ends makes room for the high job first, and the low job, whose
    // chunks held that room, goes Pausing ...
    assert_eq!(status(low.clone()).await, JobStatus::Active, "nothing changes while the queue is full");
    w.step().await;
    assert_eq!(status(low.clone()).await, JobStatus::Pausing);
    // ... and Paused once none of its chunks runs
    w.step().await;
    let j = w.store.get(&low).await.unwrap();
    assert_eq!(j.status, JobStatus::Paused, "{:?}", j.failure_reasons);
    // ... the high job completes while the low one waits, which then resumes and completes
    let mut low_done_when_high_completed = None;
    let mut low_statuses = vec![JobStatus::Paused];
    while w.step().await {
        let s = status(low.clone()).await;
        if low_statuses.last() != Some(&s) {
            low_statuses.push(s);
        }
        let high_job = w.store.get(&high).await.unwrap();
        if low_done_when_high_completed.is_none() && high_job.progress.all_chunks_done() {
            low_done_when_high_completed = Some(w.store.get(&low).await.unwrap().progress.chunks_done);
        }
    }
    let low_chunks = low_done_when_high_completed.expect("the high job ran all its chunks");
    assert!(low_chunks <= 3, "the low job ran {low_chunks} of its 10 chunks before the high one ran its 3");
    assert_eq!(low_statuses, vec![JobStatus::Paused, JobStatus::Active, JobStatus::Complete]);
    for id in [&low, &high] {
        let job = w.store.get(id).await.unwrap();
        assert_eq!(job.status, JobStatus::Complete);
        assert_eq!(w.report_rows(&job).len() as u64, job.progress.total_tasks.unwrap());
    }
}

#[tokio::test]
async fn jobs_of_equal_priority_take_turns() {
    let mut w = World::new(10, Duration::from_secs(60));
    w.depth = 2;
    let a = w.intake().create_job(&w.spec_at("a.csv", &manifest(60), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    let b = w.intake().create_job(&w.spec_at("b.csv", &manifest(60), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    // Each chunk that ends lets the next job in turn have the room.
    let mut order = Vec::new();
    while let Some(m) = w.chunks.pop() {
        let msg = ChunkMessage::decode(&m).unwrap();
        order.push(if msg.job_id == a { 'a' } else { 'b' });
        w.executor().handle(&msg).await.unwrap();
    }
    let first_b = order.iter().position(|c| *c == 'b').unwrap();
    assert!(first_b <= 3, "b waited for {first_b} of a's chunks: {order:?}");
    let a_in_first_eight = order.iter().take(8).filter(|c| **c == 'a').count();
    assert!((3..=5).contains(&a_in_first_eight), "turns: {order:?}");
    w.drain().await;
    for id in [&a, &b] {
        assert_eq!(w.store.get(id).await.unwrap().status, JobStatus::Complete);
    }
}

#[tokio::test]
async fn every_request_of_a_job_acts_as_its_role() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(25), json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    assert_eq!(w.store.get(&id).await.unwrap().status, JobStatus::Complete);
    let assumed = w.roles.assumed.lock().unwrap().clone();
    // Prepare, three chunks and the report: each stage asked for the job's role.
    assert_eq!(assumed.len(), 5, "{assumed:?}");
    assert!(assumed.iter().all(|(job, role)| *job == id && role == ROLE), "{assumed:?}");
}

#[tokio::test]
async fn a_role_that_cannot_be_assumed_fails_the_job_in_preparing() {
    let w = World::new(10, Duration::from_secs(60));
    w.roles.refused.lock().unwrap().insert(ROLE.to_string());
    let id = w.intake().create_job(&w.spec(&manifest(25), json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.failure_reasons.len(), 1, "{:?}", job.failure_reasons);
    let f = &job.failure_reasons[0];
    assert_eq!(f.failure_code, "AssumeRoleFailed");
    assert!(f.failure_reason.contains(ROLE) && f.failure_reason.contains("AccessDenied"), "{}", f.failure_reason);
    assert!(w.runner.calls.lock().unwrap().is_empty(), "no task ran");
    assert_eq!((job.progress.succeeded, job.progress.failed), (0, 0));
    assert!(w.report_rows(&job).is_empty());
}

#[tokio::test]
async fn a_throttled_role_is_tried_again_and_then_the_job_runs() {
    let w = World::new(10, Duration::from_secs(60));
    w.roles.throttled.lock().unwrap().insert(ROLE.to_string());
    let id = w.intake().create_job(&w.spec(&manifest(25), json!({})), Caller::Unknown).await.unwrap();
    let chunker = w.chunker();
    let prepare = w.control.pop().unwrap();
    let err = chunker.handle(serde_json::from_str(&prepare).unwrap(), Instant::now()).await.unwrap_err();
    assert!(matches!(err, crate::Error::Backend { transient: true, .. }), "{err}");
    assert_eq!(w.store.get(&id).await.unwrap().status, JobStatus::Preparing);
    // The message comes back once STS answers again.
    w.roles.throttled.lock().unwrap().clear();
    w.control.send(vec![prepare]).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!(w.report_rows(&job).len(), 25);
}

#[tokio::test]
async fn a_role_lost_while_the_job_runs_fails_it_and_every_task_run_is_counted_and_reported() {
    // GIVEN a job whose first chunk ran
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(25), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    let first = ChunkMessage::decode(&w.chunks.pop().unwrap()).unwrap();
    w.executor().handle(&first).await.unwrap();
    // WHEN the role can no longer be assumed (its trust policy was changed)
    w.roles.refused.lock().unwrap().insert(ROLE.to_string());
    w.drain().await;
    // THEN the job fails naming the role; counters equal the rows written (no report manifest:
    // it too would be written as the role)
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.failure_reasons.iter().all(|f| f.failure_code == "AssumeRoleFailed"), "{:?}", job.failure_reasons);
    assert_eq!(job.progress.tasks_run(), 10);
    let rows: usize = w
        .objects
        .keys("reports")
        .iter()
        .filter(|k| k.ends_with(".csv"))
        .map(|k| String::from_utf8(w.objects.get("reports", k).unwrap().to_vec()).unwrap().lines().count())
        .sum();
    assert_eq!(rows, 10, "the rows of the chunk that ran are kept");
}

#[tokio::test]
async fn every_status_a_job_takes_is_announced_once_in_order() {
    let w = World::new(10, Duration::from_secs(60));
    let spec = w.spec(&manifest(25), json!({"Tags": [{"Key": "team", "Value": "data"}]}));
    let id = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    w.drain().await;
    use JobStatus::*;
    assert_eq!(w.events.statuses(id.as_str()), vec![New, Preparing, Ready, Active, Completing, Complete]);
    let all: Vec<_> = w.events.all().into_iter().filter(|e| e.job_id == id.as_str()).collect();
    assert_eq!(all[0].detail["eventName"], "JobCreated");
    assert_eq!(all[1].detail["eventName"], "JobStatusChanged");
    assert_eq!(all[1].detail["previousStatus"], "New");
    assert_eq!(all[0].detail["tags"], json!([{"Key": "team", "Value": "data"}]));
    let done = &all[5].detail;
    assert_eq!(done["progressSummary"]["NumberOfTasksSucceeded"], 22);
    assert_eq!(done["progressSummary"]["NumberOfTasksFailed"], 3);
    assert_eq!(done["report"]["manifest"], format!("r/job-{id}/manifest.json"));
    assert_eq!(done["jobEventId"].as_str().unwrap().len(), 32);

    // A failing job says why.
    let bad = w.spec(&manifest(5), json!({}));
    let failing = w.intake().create_job(&bad, Caller::Unknown).await.unwrap();
    w.objects.insert("manifests", "m.csv", b"changed".to_vec());
    w.drain().await;
    let events: Vec<_> = w.events.all().into_iter().filter(|e| e.job_id == failing.as_str()).collect();
    let last = &events[events.len() - 1];
    assert_eq!(events[events.len() - 2].status, Failing);
    assert_eq!(last.status, Failed);
    assert_eq!(last.detail["failureCodes"], json!(["ManifestETagMismatch"]), "{}", last.detail);
}

#[tokio::test]
async fn every_stage_runs_the_plan_intake_validated_and_a_record_without_one_still_runs() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(20), json!({})), Caller::Unknown).await.unwrap();
    let mut job = w.store.get(&id).await.unwrap();
    let plan = job.plan.clone().expect("intake stores the validated job");
    assert_eq!(plan, job.spec.validate().unwrap());
    // The spec as given is for DescribeJob only: the stages never validate it again.
    job.spec.operation = Some(json!({"NotAnOperation": {}}));
    w.store.put(&job).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!((job.status, job.progress.tasks_run()), (JobStatus::Complete, 20));

    // A record written before the plan was kept is validated from its spec when read.
    let old = w.intake().create_job(&w.spec_at("o.csv", &manifest(5), json!({})), Caller::Unknown).await.unwrap();
    let mut record = w.store.get(&old).await.unwrap();
    record.plan = None;
    w.store.put(&record).await.unwrap();
    w.drain().await;
    assert_eq!(w.store.get(&old).await.unwrap().status, JobStatus::Complete);
}
