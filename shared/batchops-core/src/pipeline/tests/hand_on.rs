//! A chunk never outlives its invocation: past its hand-on time it starts no more tasks,
//! records those that ran and hands the rest on as a new chunk, so a paced or slow chunk ends
//! with every task run once instead of being killed and run again from its start. Its end
//! is quick and exact: a cancel stops the retries, a throttled record is tried again.

use super::*;
use crate::ports::Backlog;

#[tokio::test(start_paused = true)]
async fn a_paced_chunk_slower_than_its_invocation_records_what_ran_and_hands_the_rest_on() {
    // 40 tasks at 2 a second need 20 s; an invocation has 6 s (no task starts after 5.4 s).
    let w = World::new(40, Duration::from_secs(6));
    let body: String = (0..40).map(|i| format!("src,obj{i}\n")).collect();
    let spec = w.spec(&body, json!({"MaxTasksPerSecond": 2}));
    let id = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.assert_exact(&id).await;
    assert_eq!((job.status, job.progress.tasks_run()), (JobStatus::Complete, 40));
    let calls = w.runner.calls.lock().unwrap().clone();
    assert!(calls.values().all(|n| *n == 1), "no task ran twice: {calls:?}");
    let p = &job.progress;
    assert!(p.chunks_split >= 2, "handed on at least twice: {p:?}");
    assert_eq!(p.chunks_done, p.total_chunks.unwrap() + p.chunks_split);
    // Each handed-on chunk keeps its tasks' IDs (a Lambda target sees the same task twice
    // only if it really runs twice).
    assert_eq!(w.report_rows(&job).len(), 40);
}

#[tokio::test(start_paused = true)]
async fn a_chunk_of_slow_tasks_hands_on_the_tasks_it_did_not_start() {
    // 16 tasks of 1.9 s each, 4 at a time, in invocations of 6 s: the waves at 0, 1.9 and
    // 3.8 s start before 5.4 s (90 %) and end before 6 s; the fourth is handed on.
    let mut w = World::new(16, Duration::from_secs(6));
    w.settings.task_concurrency = 4;
    *w.runner.delay.lock().unwrap() = Duration::from_millis(1900);
    let body: String = (0..16).map(|i| format!("src,obj{i}\n")).collect();
    let id = w.intake().create_job(&w.spec(&body, json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    let msg = ChunkMessage::decode(&w.chunks.pop().unwrap()).unwrap();
    let first = w.executor().handle(&msg).await.unwrap();
    assert_eq!(first, Disposition::Recorded { succeeded: 12, failed: 0 });
    let job = w.store.get(&id).await.unwrap();
    assert_eq!((job.progress.chunks_split, job.progress.all_chunks_done()), (1, false));
    w.drain().await;
    let job = w.assert_exact(&id).await;
    assert_eq!((job.status, job.progress.tasks_run(), job.progress.chunks_done), (JobStatus::Complete, 16, 2));
}

#[tokio::test(start_paused = true)]
async fn tasks_still_running_when_the_budget_is_spent_are_reported_cut_off_and_the_chunk_ends() {
    // Tasks of 100 s (a Lambda target slower than the executor's invocation), two at a time,
    // a 20 s budget: each invocation abandons the two it started at the budget, reports them
    // cut off, and hands the others on. Nothing runs into the invocation's timeout, and
    // nothing runs again forever.
    let mut w = World::new(4, Duration::from_secs(20));
    w.settings.task_concurrency = 2;
    *w.runner.delay.lock().unwrap() = Duration::from_secs(100);
    let body: String = (0..4).map(|i| format!("src,obj{i}\n")).collect();
    let id = w.intake().create_job(&w.spec(&body, json!({})), Caller::Unknown).await.unwrap();
    let started = tokio::time::Instant::now();
    w.drain().await;
    assert!(started.elapsed() < Duration::from_secs(60), "two invocations of 20 s: {:?}", started.elapsed());
    let job = w.store.get(&id).await.unwrap();
    assert_eq!((job.status, job.progress.failed, job.progress.chunks_split), (JobStatus::Complete, 4, 1));
    let rows = w.report_rows(&job);
    assert_eq!(rows.len(), 4, "one row per task, cut off or not");
    assert!(rows.iter().all(|r| r.contains("TaskTimedOut") && r.contains("may have completed")), "{rows:?}");
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_job_ends_within_seconds_however_throttled_its_tasks_are() {
    // Every task is throttled: with the real backoff each would try for about a minute. A
    // cancel stops the retries: the attempts in flight end, each task keeps its last outcome.
    let mut w = World::new(20, Duration::from_secs(60));
    w.settings.task_concurrency = 4;
    w.settings.job_check = Duration::from_millis(500);
    w.settings.retry = crate::retry::RetryPolicy::default();
    let body: String = (0..20).map(|i| format!("src,throttled-{i}\n")).collect();
    let id = w.intake().create_job(&w.spec(&body, json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    let msg = ChunkMessage::decode(&w.chunks.pop().unwrap()).unwrap();
    let started = tokio::time::Instant::now();
    let executor = w.executor();
    let cancel = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        w.intake().update_job_status(id.as_str(), "Cancelled", None).await.unwrap();
    };
    let (ran, ()) = tokio::join!(executor.handle(&msg), cancel);
    assert!(started.elapsed() < Duration::from_secs(8), "ended {:?} after it started", started.elapsed());
    let Disposition::Recorded { succeeded: 0, failed } = ran.unwrap() else { panic!("not recorded") };
    assert!((1..20).contains(&failed), "the tasks started before the cancel: {failed}");
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!((job.status, w.report_rows(&job).len() as u64), (JobStatus::Cancelled, failed));
}

#[tokio::test(start_paused = true)]
async fn a_record_throttled_after_the_tasks_ran_is_tried_again_and_a_cancelled_job_keeps_its_rows() {
    // The chunk of a job cancelled while it runs records the tasks that ran; its record is
    // throttled twice. Handed back, its redelivery would skip the chunk of a closed job and
    // those rows would be lost; tried again in the same invocation, they are reported.
    let (w, id, msg) = slow_world(200).await;
    *w.store.throttle_records.lock().unwrap() = 2;
    let executor = w.executor();
    let running = tokio::spawn(async move { executor.handle(&msg).await });
    tokio::time::sleep(Duration::from_millis(62)).await;
    w.intake().update_job_status(id.as_str(), "Cancelled", None).await.unwrap();
    let Ok(Disposition::Recorded { succeeded, failed: 0 }) = running.await.unwrap() else { panic!("not recorded") };
    assert!(succeeded > 0);
    assert_eq!(*w.store.throttle_records.lock().unwrap(), 0, "both throttles were met");
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!(w.report_rows(&job).len() as u64, succeeded);
    assert_eq!(w.runner.total_calls() as u64, succeeded, "report rows = counters = tasks that ran");
}

#[tokio::test(start_paused = true)]
async fn the_failure_threshold_is_seen_as_tasks_finish_not_when_the_chunk_ends() {
    // One chunk of 3,000 tasks that all fail: the job is failed once 1,000 have, at a job
    // check, and the chunk records what ran by then instead of running all 3,000.
    let mut w = World::new(3000, Duration::from_secs(600));
    w.settings.job_check = Duration::from_millis(50);
    *w.runner.delay.lock().unwrap() = Duration::from_millis(10);
    let body: String = (0..3000).map(|i| format!("src,missing-{i}\n")).collect();
    let id = w.intake().create_job(&w.spec(&body, json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.assert_exact(&id).await;
    assert_eq!(
        (job.status, job.failure_reasons[0].failure_code.as_str()),
        (JobStatus::Failed, "TaskFailureThresholdExceeded")
    );
    let ran = job.progress.tasks_run();
    assert!((1000..3000).contains(&ran), "stopped soon after the threshold: {ran} of 3000 ran");
    assert_eq!(w.report_rows(&job).len() as u64, ran);
}

#[tokio::test]
async fn a_paced_job_runs_no_more_chunks_than_its_rate_keeps_busy_within_an_invocation() {
    use crate::pipeline::dispatcher::paced_chunks;
    // GIVEN a job of ten 100-task chunks paced at 1 task a second: a chunk at that rate takes
    // 100 s, so two share it within an invocation (240 s each)
    let w = World::new(100, Duration::from_secs(60));
    let spec = w.spec(&manifest(1000), json!({"MaxTasksPerSecond": 1}));
    let id = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(paced_chunks(&job), Some(2));
    // THEN the dispatcher released one while the job was cut (its chunks' size unknown: the
    // default 1,000 tasks assumed); once it runs, a round releases a second, and with two
    // running none: not all ten (each would have paced at 0.1 task/s and handed most of its
    // tasks on at the end of its invocation)
    assert_eq!(w.chunks.len(), 1);
    for index in [0, 1] {
        let lease = crate::ports::ChunkLease { index, owner: format!("w{index}"), until_ms: u64::MAX };
        w.store.start_chunk(&id, &lease).await.unwrap();
        w.dispatcher().dispatch().await.unwrap();
    }
    assert_eq!(w.chunks.len(), 2);
    // WHEN a chunk released before the others started is claimed beyond the cap
    let extra = w.store.peek(&id, 1).await.unwrap().remove(0);
    let msg = ChunkMessage::decode(&extra.body).unwrap();
    w.store.remove(&id, &[extra.index]).await.unwrap();
    // THEN it goes back to the backlog unrun, its claim released
    let outcome = w.executor().handle(&msg).await.unwrap();
    assert_eq!(outcome, crate::pipeline::executor::Disposition::Deferred);
    assert_eq!(w.store.peek(&id, 100).await.unwrap().iter().filter(|c| c.index == msg.index).count(), 1);
    assert!(w.runner.calls.lock().unwrap().is_empty(), "no task ran");
    let live = w.store.chunk_leases(&id).await.unwrap().len();
    assert_eq!(live, 2, "only the two running chunks hold claims");
}
