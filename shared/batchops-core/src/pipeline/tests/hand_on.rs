//! A chunk never outlives its invocation: past its hand-on time it starts no more tasks,
//! records those that ran and hands the rest on as a new chunk, so a paced or slow chunk ends
//! with every task run once instead of being killed and run again from its start.

use super::*;

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
    // 16 tasks of 2 s each, 4 at a time, in invocations of 5 s: the waves at 0, 2 and 4 s
    // start before 4.5 s, the fourth is handed on.
    let mut w = World::new(16, Duration::from_secs(5));
    w.settings.task_concurrency = 4;
    *w.runner.delay.lock().unwrap() = Duration::from_secs(2);
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
