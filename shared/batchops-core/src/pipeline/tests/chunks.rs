//! The executor: a chunk recorded once, claims that lapse, workers that stop, failing tasks and chunks.

use super::*;

#[tokio::test]
async fn a_redelivered_chunk_is_recorded_once() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(30), json!({})), Caller::Unknown).await.unwrap();
    // Run preparation only, then duplicate every chunk message.
    let first = w.control.pop().unwrap();
    w.control.send(vec![first.clone()]).await.unwrap();
    w.control.send(vec![first]).await.unwrap();
    let mut bodies = Vec::new();
    w.drain_control_only().await;
    while let Some(b) = w.chunks.pop() {
        bodies.push(b);
    }
    let doubled: Vec<String> = bodies.iter().chain(bodies.iter()).cloned().collect();
    w.chunks.send(doubled).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!(job.progress.tasks_run(), 30);
    assert_eq!(job.progress.chunks_done, 3);
    assert_eq!(w.report_rows(&job).len(), 30);
    // No orphan result files: every CSV under the job folder is listed in the manifest.
    let csvs = w.objects.keys("reports").into_iter().filter(|k| k.ends_with(".csv")).count();
    let listed = w.store.chunks(&id).await.unwrap().iter().map(|c| c.files.len()).sum::<usize>();
    assert_eq!(csvs, listed);
}

#[tokio::test(start_paused = true)]
async fn a_chunk_running_when_its_job_is_cancelled_records_the_tasks_it_ran() {
    // GIVEN a chunk of 200 tasks running for 62 ms
    let (w, id, msg) = slow_world(200).await;
    let executor = w.executor();
    let running = tokio::spawn(async move { executor.handle(&msg).await });
    tokio::time::sleep(Duration::from_millis(62)).await;
    // WHEN the job is cancelled meanwhile
    w.intake().update_job_status(id.as_str(), "Cancelled", None).await.unwrap();
    // THEN the finalizer waits for the chunk in flight instead of ending the job without it
    let waiting = w.finalizer().handle(&FinalizeMessage { job_id: id.clone(), merge: None }).await;
    assert!(matches!(waiting, Err(Error::NotYet { .. })), "{waiting:?}");
    assert_eq!(w.store.get(&id).await.unwrap().status, JobStatus::Cancelling);
    // ... the chunk stops starting tasks and records those that ran
    let Ok(Disposition::Recorded { succeeded, failed: 0 }) = running.await.unwrap() else { panic!("not recorded") };
    // ... those started before its next job check (at 63 ms) saw the cancel: 13 rounds of four
    assert_eq!(succeeded, 13 * 4, "{succeeded} of 200 tasks ran");
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    // ... and report rows = counters = tasks that ran
    assert_eq!(job.progress.succeeded, succeeded);
    assert_eq!(w.report_rows(&job).len() as u64, succeeded);
    assert_eq!(w.runner.total_calls() as u64, succeeded);
}

#[tokio::test(start_paused = true)]
async fn the_claim_of_a_worker_that_died_lapses_and_the_job_ends() {
    // GIVEN a cancelled job whose one chunk was claimed by a worker that died
    let (w, id, msg) = slow_world(10).await;
    let dead = crate::ports::ChunkLease { index: msg.index, owner: "dead".into(), until_ms: now_ms() + 300 };
    w.store.start_chunk(&id, &dead).await.unwrap();
    w.intake().update_job_status(id.as_str(), "Cancelled", None).await.unwrap();
    // WHEN the finalizer runs while the claim holds, then after it lapsed
    let early = w.finalizer().handle(&FinalizeMessage { job_id: id.clone(), merge: None }).await;
    let Err(Error::NotYet { retry_after, .. }) = early else { panic!("{early:?}") };
    assert!(retry_after <= Duration::from_millis(800), "back soon after the claim lapses: {retry_after:?}");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let still = w.finalizer().handle(&FinalizeMessage { job_id: id.clone(), merge: None }).await;
    assert!(matches!(still, Err(Error::NotYet { .. })), "the claim holds until 300 ms: {still:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let job = w.finalizer().handle(&FinalizeMessage { job_id: id.clone(), merge: None }).await.unwrap();
    // THEN the job ends, and the dead worker can no longer record
    assert_eq!(job.status, JobStatus::Cancelled);
    let late = crate::ports::ChunkRecord { index: msg.index, succeeded: 1, failed: 0, files: vec![] };
    assert_ne!(w.store.record_chunk(&id, &late, "dead").await.unwrap(), crate::ports::RecordOutcome::Recorded);
    assert_eq!(w.store.get(&id).await.unwrap().progress.tasks_run(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_stopping_worker_hands_its_chunk_back_and_the_next_runs_it_whole() {
    // GIVEN a chunk of 100 tasks running in a worker that is asked to stop
    let (w, id, msg) = slow_world(100).await;
    let stopping = w.executor();
    let shutdown = stopping.shutdown.clone();
    let m = msg.clone();
    let running = tokio::spawn(async move { stopping.handle(&m).await });
    tokio::time::sleep(Duration::from_millis(42)).await;
    shutdown.begin();
    // THEN it hands the chunk back at once, unrecorded, and releases its claim
    let handed = running.await.unwrap();
    assert!(matches!(handed, Err(Error::NotYet { retry_after: Duration::ZERO, .. })), "{handed:?}");
    let ran_first = w.runner.total_calls();
    assert_eq!(ran_first, 9 * 4, "the rounds started before it was asked to stop, no more");
    assert!(!w.store.chunk_recorded(&id, msg.index).await.unwrap());
    assert!(w.store.chunk_leases(&id).await.unwrap().is_empty());
    // ... and the next delivery runs it from its start: one row per line
    assert!(matches!(w.executor().handle(&msg).await.unwrap(), Disposition::Recorded { succeeded: 100, .. }));
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!(w.report_rows(&job).len(), 100);
    assert_eq!(w.runner.total_calls(), ran_first + 100, "the first run's tasks are run again, not recorded");
}

#[tokio::test]
async fn a_key_over_s3s_limit_fails_its_task_saying_how_long_it_is() {
    let w = World::new(10, Duration::from_secs(60));
    let long = "k".repeat(1100);
    let id = w.intake().create_job(&w.spec(&format!("src,{long}\nsrc,short\n"), json!({})), Caller::Unknown).await;
    w.drain().await;
    let job = w.store.get(&id.unwrap()).await.unwrap();
    let rows = w.report_rows(&job);
    let row = rows.iter().find(|r| r.contains(&long)).unwrap();
    assert!(
        row.ends_with(",failed,400,KeyTooLongError,The key is 1100 bytes long; S3 keys are at most 1024 bytes (UTF-8)"),
        "{row}"
    );
    assert_eq!(w.runner.total_calls(), 1, "S3 is not asked");
}

#[tokio::test]
async fn the_failure_threshold_fails_the_job() {
    let w = World::new(100, Duration::from_secs(60));
    let body: String = (0..1500).map(|i| format!("src,missing-{i}\n")).collect();
    let id = w.intake().create_job(&w.spec(&body, json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.progress.tasks_run(), 1000, "the job stops once the threshold is crossed");
    assert_eq!(job.failure_reasons[0].failure_code, "TaskFailureThresholdExceeded");
    assert_eq!(w.report_rows(&job).len(), 1000);
}

#[tokio::test]
async fn bad_lines_fail_their_task_only() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w
        .intake()
        .create_job(&w.spec("src,a\nsrc,b,c,d\n\nsrc,%ZZ%FF\nsrc,e", json!({})), Caller::Unknown)
        .await
        .unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!((job.progress.succeeded, job.progress.failed), (2, 2));
    let rows = w.report_rows(&job);
    assert!(rows.iter().any(|r| r.contains("manifest line 2: expected 2 columns")), "{rows:?}");
    assert!(rows.iter().any(|r| r.contains("manifest line 4:") && r.contains("URL-")), "{rows:?}");
}

#[tokio::test]
async fn a_chunk_that_keeps_failing_fails_its_job_instead_of_hanging() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(15), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    let broken = InMemoryRoles::new(Arc::new(BrokenRangeReads(w.objects.clone())), w.runner.clone());
    let mut executor = w.executor();
    executor.ports.roles = Arc::new(broken);
    let msg = ChunkMessage::decode(&w.chunks.pop().unwrap()).unwrap();
    for attempt in 1..w.settings.max_chunk_attempts {
        assert!(executor.handle_attempt(&msg, attempt).await.is_err(), "attempt {attempt} is retried");
    }
    let last = executor.handle_attempt(&msg, w.settings.max_chunk_attempts).await.unwrap();
    assert_eq!(last, crate::pipeline::executor::Disposition::Skipped(JobStatus::Failing));
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.failure_reasons[0].failure_code, "ChunkFailed");
    assert!(job.failure_reasons[0].failure_reason.contains("from manifest line 1"), "{:?}", job.failure_reasons);
}

#[tokio::test]
async fn an_unreadable_chunk_message_fails_its_job_at_its_first_delivery() {
    // Delivering it again cannot mend it: the job fails now, naming it, instead of the message
    // going round until it is dead-lettered.
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(15), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    let mut msg = ChunkMessage::decode(&w.chunks.pop().unwrap()).unwrap();
    let garbage = serde_json::value::RawValue::from_string(r#"{"not": "rows"}"#.into()).unwrap();
    msg.body = crate::chunk::ChunkBody::Rows(serde_json::from_str(garbage.get()).unwrap());
    let first = w.executor().handle_attempt(&msg, 1).await.unwrap();
    assert_eq!(first, Disposition::Skipped(JobStatus::Failing));
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!((job.status, job.failure_reasons[0].failure_code.as_str()), (JobStatus::Failed, "ChunkFailed"));
    assert!(job.failure_reasons[0].failure_reason.contains("unreadable message"), "{:?}", job.failure_reasons);
}

#[tokio::test]
async fn batched_operations_get_the_tasks_of_one_bucket_together() {
    let w = World::new(2500, Duration::from_secs(60));
    let lines: String = (0..2300).map(|i| format!("{},k{i}\n", if i % 3 == 0 { "other" } else { "src" })).collect();
    let spec = w.spec(&lines, json!({"Operation": {"S3DeleteObject": {}}}));
    let id = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!(job.progress.succeeded, 2300);
    let mut batches = w.runner.batches.lock().unwrap().clone();
    batches.sort();
    // 767 keys in "other", 1533 in "src": batches of at most 1,000, one bucket each.
    assert_eq!(batches, vec![("other".to_string(), 767), ("src".to_string(), 533), ("src".to_string(), 1000)]);
    assert_eq!(w.report_rows(&job).len(), 2300);
}

#[tokio::test]
async fn a_bucket_failing_its_check_fails_the_job_before_any_task_runs() {
    let w = World::new(10, Duration::from_secs(60));
    let op = json!({"S3PutObjectLegalHold": {"LegalHold": {"Status": "ON"}}});
    let spec = w.spec("unlocked-bucket,a\nunlocked-bucket,b\n", json!({ "Operation": op }));
    let id = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.failure_reasons[0].failure_code, "ObjectLockNotEnabled");
    assert!(w.runner.calls.lock().unwrap().is_empty(), "no task ran");
    let spec = w.spec("locked,a\n", json!({ "Operation": op }));
    let id = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    w.drain().await;
    assert_eq!(w.store.get(&id).await.unwrap().status, JobStatus::Complete);
}
