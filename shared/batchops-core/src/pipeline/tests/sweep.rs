//! The sweep moves on every job whose message was lost, and ends every job even when all of
//! them are: each test loses what the deployed stack can lose, at the point where it hurts.
//! They run on a paused clock: the sweep's bounds pass in virtual time.

use super::*;
use crate::pipeline::sweep::{Bounds, Step, Sweeper};
use crate::ports::Backlog;

/// Short bounds, as a test's clock runs: 5 s for a job waiting for one message, 20 s for one
/// at work, one nudge, swept every second.
fn bounds() -> Bounds {
    Bounds { quiet: Duration::from_secs(5), busy: Duration::from_secs(20), nudges: 1, period: Duration::from_secs(1) }
}

impl World {
    fn sweeper(&self) -> Sweeper {
        Sweeper {
            store: self.store.clone(),
            events: self.events.clone(),
            backlog: self.store.clone(),
            control: self.control.clone(),
            finalize: self.finalize.clone(),
            finalizer: self.finalizer(),
            bounds: bounds(),
        }
    }

    /// Sweeps every period for `span`; returns what the sweeps did to `id`.
    async fn sweep_for(&self, id: &JobId, span: Duration) -> Vec<Step> {
        let mut steps = Vec::new();
        let end = tokio::time::Instant::now() + span;
        while tokio::time::Instant::now() < end {
            let swept = self.sweeper().sweep().await.unwrap();
            steps.extend(swept.steps.into_iter().filter(|(j, _)| j == id).map(|(_, s)| s));
            tokio::time::advance(bounds().period).await;
        }
        steps
    }

    /// Loses every message sent so far.
    fn lose_all(&self) {
        for q in [&self.control, &self.chunks, &self.finalize] {
            while q.pop().is_some() {}
        }
    }

    async fn status(&self, id: &JobId) -> JobStatus {
        self.store.get(id).await.unwrap().status
    }

    /// The job ended with report rows = counters = tasks the runner ran (each once).
    pub(super) async fn assert_exact(&self, id: &JobId) -> Job {
        let job = self.store.get(id).await.unwrap();
        assert!(job.status.is_terminal(), "{:?}", job.status);
        let rows = self.report_rows(&job);
        assert_eq!(rows.len() as u64, job.progress.tasks_run(), "report rows = counters");
        let ran = self.runner.calls.lock().unwrap().len() as u64;
        assert_eq!(ran, job.progress.tasks_run(), "counters = tasks that ran");
        job
    }
}

#[tokio::test(start_paused = true)]
async fn a_job_whose_prepare_message_is_lost_is_prepared_by_the_sweep() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(30), json!({})), Caller::Unknown).await.unwrap();
    w.lose_all();
    // A Prepare may wait behind an inventory's file messages: a New job gets the busy bound.
    let steps = w.sweep_for(&id, bounds().busy / 2).await;
    assert!(steps.is_empty(), "a job is given its bound first: {steps:?}");
    assert_eq!(w.status(&id).await, JobStatus::New);
    let steps = w.sweep_for(&id, bounds().busy).await;
    assert_eq!(steps, vec![Step::Prepare]);
    w.drain().await;
    let job = w.assert_exact(&id).await;
    assert_eq!((job.status, job.progress.tasks_run()), (JobStatus::Complete, 30));
}

#[tokio::test(start_paused = true)]
async fn a_finalize_request_lost_after_activation_is_made_up_by_the_sweep() {
    // Every chunk runs and records, but each finalize request is lost (the send failed after
    // the write, or the message was dead-lettered): the job would stay Active forever.
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(30), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    while let Some(m) = w.chunks.pop() {
        w.executor().handle(&ChunkMessage::decode(&m).unwrap()).await.unwrap();
    }
    while w.finalize.pop().is_some() {}
    let job = w.store.get(&id).await.unwrap();
    assert!(job.status == JobStatus::Active && job.progress.all_chunks_done());
    let steps = w.sweep_for(&id, bounds().quiet * 2).await;
    assert_eq!(steps, vec![Step::Finalize]);
    w.drain().await;
    assert_eq!(w.assert_exact(&id).await.status, JobStatus::Complete);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_job_whose_finalize_requests_are_all_lost_is_ended_by_the_sweep_itself() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(50), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    for _ in 0..2 {
        w.executor().handle(&ChunkMessage::decode(&w.chunks.pop().unwrap()).unwrap()).await.unwrap();
    }
    w.intake().update_job_status(id.as_str(), "Cancelled", None).await.unwrap();
    w.lose_all();
    // The first request the sweep sends is lost too; then it ends the job itself.
    let mut steps = w.sweep_for(&id, bounds().quiet + bounds().period * 2).await;
    w.lose_all();
    steps.extend(w.sweep_for(&id, bounds().quiet + bounds().period * 2).await);
    assert_eq!(steps, vec![Step::Finalize, Step::Finalized]);
    let job = w.assert_exact(&id).await;
    assert_eq!((job.status, job.progress.tasks_run()), (JobStatus::Cancelled, 20));
}

#[tokio::test(start_paused = true)]
async fn chunks_that_were_dead_lettered_fail_the_job_naming_them_and_the_report_has_what_ran() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(50), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    // Chunks 0, 1 and 3 run; 2 and 4 go to the dead-letter queue.
    let bodies: Vec<String> = std::iter::from_fn(|| w.chunks.pop()).collect();
    for (i, body) in bodies.iter().enumerate() {
        if i != 2 && i != 4 {
            w.executor().handle(&ChunkMessage::decode(body).unwrap()).await.unwrap();
        }
    }
    let steps = w.sweep_for(&id, bounds().busy * 2 + bounds().period * 3).await;
    assert_eq!(steps, vec![Step::Waited, Step::Failed("ChunksLost")]);
    w.drain().await;
    let job = w.assert_exact(&id).await;
    assert_eq!((job.status, job.progress.tasks_run()), (JobStatus::Failed, 30));
    let reason = &job.failure_reasons[0];
    assert_eq!(reason.failure_code, "ChunksLost");
    assert!(reason.failure_reason.contains("2 of the job's 5 chunks never ran"), "{}", reason.failure_reason);
    assert!(reason.failure_reason.contains("(chunks 2, 4)"), "{}", reason.failure_reason);
}

#[tokio::test(start_paused = true)]
async fn a_running_chunk_is_never_taken_for_a_stall() {
    // One chunk whose tasks take 30 s, longer than the busy bound: its live claim says it
    // works. (Once it ends the job waits for its finalizer, which is another matter.)
    let (w, id, msg) = slow_world(40).await;
    *w.runner.delay.lock().unwrap() = Duration::from_secs(3);
    let executor = w.executor();
    let run = executor.handle(&msg);
    let watch = async {
        let steps = w.sweep_for(&id, bounds().busy + Duration::from_secs(5)).await;
        assert!(steps.is_empty(), "{steps:?}");
    };
    let (disposition, ()) = tokio::join!(run, watch);
    assert!(matches!(disposition.unwrap(), Disposition::Recorded { .. }));
}

#[tokio::test(start_paused = true)]
async fn waiting_chunks_that_lost_their_runnable_mark_are_marked_again() {
    let mut w = World::new(10, Duration::from_secs(60));
    w.depth = 1;
    let id = w.intake().create_job(&w.spec(&manifest(30), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    // The mark is cleared (as a round that read a short page did before paging was fixed).
    let (_, pushes) = w.store.runnable().await.unwrap().into_iter().find(|(j, _)| *j == id).unwrap();
    w.store.unmark(&id, pushes).await.unwrap();
    w.drain().await;
    assert_eq!(w.status(&id).await, JobStatus::Active, "waiting chunks no round will release");
    let steps = w.sweep_for(&id, bounds().period).await;
    assert_eq!(steps, vec![Step::Remarked]);
    w.drain().await;
    assert_eq!(w.assert_exact(&id).await.status, JobStatus::Complete);
}

#[tokio::test(start_paused = true)]
async fn a_job_all_of_whose_messages_are_lost_ends_within_the_liveness_bound() {
    for stage in ["new", "preparing", "running"] {
        let w = World::new(10, Duration::ZERO);
        let id = w.intake().create_job(&w.spec(&manifest(50), json!({})), Caller::Unknown).await.unwrap();
        match stage {
            "new" => {}
            "preparing" => {
                // One continuation of a zero budget runs, then every message is lost.
                let msg = serde_json::from_str(&w.control.pop().unwrap()).unwrap();
                w.chunker().handle(msg, Instant::now()).await.unwrap();
            }
            _ => {
                w.drain_control_only().await;
                let msg = ChunkMessage::decode(&w.chunks.pop().unwrap()).unwrap();
                w.executor().handle(&msg).await.unwrap();
            }
        }
        w.lose_all();
        let start = tokio::time::Instant::now();
        while !w.status(&id).await.is_terminal() {
            assert!(start.elapsed() <= bounds().liveness(), "{stage}: not ended within {:?}", bounds().liveness());
            w.sweeper().sweep().await.unwrap();
            w.lose_all();
            tokio::time::advance(bounds().period).await;
        }
        let job = w.assert_exact(&id).await;
        let code = if stage == "running" { "ChunksLost" } else { "PreparationStalled" };
        assert_eq!((job.status, job.failure_reasons[0].failure_code.as_str()), (JobStatus::Failed, code), "{stage}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_job_left_ready_by_a_chunker_that_died_after_its_write_is_activated_by_the_sweep() {
    // The chunker wrote Preparing -> Ready with the totals and died before Ready -> Active;
    // its redelivered Continue finds a job no longer being prepared and does nothing.
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(30), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    let mut ready = w.store.get(&id).await.unwrap();
    ready.status = JobStatus::Ready;
    w.store.put(&ready).await.unwrap();
    let msg = ControlMessage::Continue { job_id: id.clone(), checkpoint: ready.checkpoint.clone() };
    w.chunker().handle(msg, Instant::now() + Duration::from_secs(60)).await.unwrap();
    while let Some(m) = w.chunks.pop() {
        w.executor().handle(&ChunkMessage::decode(&m).unwrap()).await.unwrap();
    }
    assert_eq!(w.status(&id).await, JobStatus::Ready, "every chunk ran, and nothing moves it");
    let steps = w.sweep_for(&id, bounds().busy + bounds().period * 2).await;
    assert_eq!(steps, vec![Step::Prepare]);
    w.drain().await;
    assert_eq!(w.assert_exact(&id).await.status, JobStatus::Complete);
}

#[tokio::test]
async fn a_start_redelivered_after_its_first_delivery_died_mid_cut_goes_on_with_the_cut() {
    // The simulation's seed 853: the chunker moved a confirmed job Ready -> Active, began its
    // cut and crashed; the redelivered Start found it Active and did nothing, and the job
    // waited for the sweep (78 simulated minutes instead of 22).
    let w = World::new(10, Duration::from_secs(60));
    let spec = w.spec(&manifest(30), json!({"ConfirmationRequired": true}));
    let id = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    w.drain().await;
    w.intake().update_job_status(id.as_str(), "Ready", None).await.unwrap();
    let start: ControlMessage = serde_json::from_str(&w.control.pop().unwrap()).unwrap();
    let began = transition_from(&*w.store, &*w.events, &id, &[JobStatus::Ready], JobStatus::Active, |j| {
        j.checkpoint = Default::default();
        j.progress.total_chunks = None;
    });
    assert!(began.await.unwrap().is_ok(), "the first delivery's write");
    w.chunker().handle(start, Instant::now() + Duration::from_secs(60)).await.unwrap();
    w.drain().await;
    let job = w.assert_exact(&id).await;
    assert_eq!((job.status, job.progress.tasks_run()), (JobStatus::Complete, 30));
}

impl World {
    /// Plays the queues until they are empty, merges of report segments handled at most
    /// `merges` times in all (the others lost); returns the merges handled.
    async fn drain_merges_up_to(&self, mut merges: usize) -> usize {
        let mut handled = 0;
        loop {
            match self.finalize.pop() {
                Some(m) => {
                    let msg: FinalizeMessage = serde_json::from_str(&m).unwrap();
                    if msg.merge.is_some() && merges == 0 {
                        continue;
                    }
                    if msg.merge.is_some() {
                        (merges, handled) = (merges - 1, handled + 1);
                    }
                    self.finalizer().handle(&msg).await.unwrap();
                }
                None if !self.step().await => return handled,
                None => {}
            }
        }
    }

    /// The result files `manifest.json` lists.
    fn manifest_files(&self, id: &JobId) -> usize {
        let body = self.objects.get("reports", &format!("r/job-{id}/manifest.json")).unwrap();
        let doc: Value = serde_json::from_slice(&body).unwrap();
        doc["Results"].as_array().unwrap().len()
    }
}

#[tokio::test(start_paused = true)]
async fn a_report_whose_merges_never_get_through_is_ended_by_the_sweep_with_its_chunk_files() {
    // GIVEN a job of 40 one-task chunks reported in 3 segments, whose merge messages are all
    // lost (as when each merge dies: at the receive limit they are dead-lettered and dropped)
    let mut w = World::new(1, Duration::from_secs(60));
    w.settings.report_segments = 3;
    let id = w.intake().create_job(&w.spec(&manifest(40), json!({})), Caller::Unknown).await.unwrap();
    assert_eq!(w.drain_merges_up_to(0).await, 0);
    assert_eq!(w.status(&id).await, JobStatus::Completing);
    // WHEN the sweep asks again (lost again), then acts
    let steps = w.sweep_for(&id, bounds().busy + bounds().period * 2).await;
    assert_eq!(w.drain_merges_up_to(0).await, 0);
    let mut steps2 = w.sweep_for(&id, bounds().busy + bounds().period * 2).await;
    steps2.retain(|s| *s != Step::Finalize);
    assert_eq!((steps, steps2), (vec![Step::Finalize], vec![Step::Finalized]));
    // THEN it ends, its segments listing their chunks' files unmerged: every row once
    let job = w.assert_exact(&id).await;
    assert_eq!((job.status, job.progress.tasks_run()), (JobStatus::Complete, 40));
    assert_eq!(w.store.segments_recorded(&id).await.unwrap(), 3);
    assert_eq!(w.manifest_files(&id), 40, "one file per one-task chunk");
}

#[tokio::test(start_paused = true)]
async fn a_report_merged_slower_than_the_bound_is_moving_and_ends_merged() {
    // GIVEN the same job, whose merges get through one per 15 s (a bound is 20 s)
    let mut w = World::new(1, Duration::from_secs(60));
    w.settings.report_segments = 3;
    let id = w.intake().create_job(&w.spec(&manifest(40), json!({})), Caller::Unknown).await.unwrap();
    let mut merged = w.drain_merges_up_to(0).await;
    let mut steps = Vec::new();
    while !w.status(&id).await.is_terminal() {
        steps.extend(w.sweep_for(&id, Duration::from_secs(15)).await);
        // The sweep's own finalize requests re-send the merges not recorded.
        merged += w.drain_merges_up_to(1).await;
        assert!(merged <= 6, "{steps:?}");
    }
    // THEN every segment recording counts as the job moving: it is never ended unmerged
    assert!(!steps.contains(&Step::Finalized), "{steps:?}");
    let job = w.assert_exact(&id).await;
    assert_eq!(job.status, JobStatus::Complete);
    assert!(w.manifest_files(&id) <= 6, "one file per status per segment: {}", w.manifest_files(&id));
}
