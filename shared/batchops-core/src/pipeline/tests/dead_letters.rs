//! Dead letters are handled by the sweep: a chunk is sent once more, then fails its job; a
//! control or finalize message is dropped and the sweep moves its job on from what is stored.

use super::*;
use crate::pipeline::dead_letters::{DeadLetterQueues, DeadLettered};
use crate::ports::DeadLetters;

/// The three dead-letter queues, in memory.
#[derive(Default)]
struct Dlqs {
    chunks: Arc<InMemoryQueue>,
    control: Arc<InMemoryQueue>,
    finalize: Arc<InMemoryQueue>,
}

impl Dlqs {
    /// Every letter deleted: none waiting, none received and left.
    fn all_handled(&self) -> bool {
        [&self.chunks, &self.control, &self.finalize].iter().all(|q| q.is_empty() && q.in_flight() == 0)
    }
}

impl World {
    /// The chunker that sweeps, reading `q`.
    fn sweeping(&self, q: &Dlqs) -> Chunker {
        let dlq = |q: &Arc<InMemoryQueue>| Some(q.clone() as Arc<dyn DeadLetters>);
        Chunker {
            dead_letters: DeadLetterQueues {
                chunks: dlq(&q.chunks),
                control: dlq(&q.control),
                finalize: dlq(&q.finalize),
            },
            ..self.chunker()
        }
    }

    /// A job of 30 lines in chunks of 10, prepared; chunk 1 (lines 11-20) is dead-lettered
    /// (it failed every delivery), chunks 0 and 2 ran.
    async fn chunk_1_dead_lettered(&self, q: &Dlqs) -> (JobId, String) {
        let id = self.intake().create_job(&self.spec(&manifest(30), json!({})), Caller::Unknown).await.unwrap();
        self.drain_control_only().await;
        let bodies: Vec<String> = std::iter::from_fn(|| self.chunks.pop()).collect();
        assert_eq!(bodies.len(), 3);
        q.chunks.send(vec![bodies[1].clone()]).await.unwrap();
        for body in [&bodies[0], &bodies[2]] {
            self.executor().handle(&ChunkMessage::decode(body).unwrap()).await.unwrap();
        }
        (id, bodies[1].clone())
    }
}

#[tokio::test]
async fn a_dead_lettered_chunk_is_sent_once_more_by_the_sweep_and_its_job_completes() {
    let w = World::new(10, Duration::from_secs(60));
    let q = Dlqs::default();
    let (id, _) = w.chunk_1_dead_lettered(&q).await;
    assert_eq!(w.store.get(&id).await.unwrap().status, JobStatus::Active);
    w.sweeping(&q).sweep().await.unwrap();
    assert!(q.all_handled(), "the letter is deleted");
    // Released at once, as a new message, marked as sent again.
    let again = ChunkMessage::decode(&w.chunks.pop().expect("the chunk released again")).unwrap();
    assert_eq!((again.index, again.redriven), (1, 1));
    w.executor().handle(&again).await.unwrap();
    w.drain().await;
    let job = w.assert_exact(&id).await;
    assert_eq!((job.status, job.progress.tasks_run()), (JobStatus::Complete, 30));
    assert_eq!(w.report_rows(&job).len(), 30, "one row per manifest line");
}

#[tokio::test]
async fn a_chunk_dead_lettered_twice_fails_its_job_naming_it() {
    let w = World::new(10, Duration::from_secs(60));
    let q = Dlqs::default();
    let (id, first) = w.chunk_1_dead_lettered(&q).await;
    let chunker = w.sweeping(&q);
    assert_eq!(chunker.handle_dead_letters().await, DeadLettered { redriven: 1, ..Default::default() });
    // The chunk sent again fails every delivery again.
    q.chunks.send(vec![w.chunks.pop().unwrap()]).await.unwrap();
    assert_eq!(chunker.handle_dead_letters().await, DeadLettered { failed: 1, ..Default::default() });
    assert!(q.all_handled());
    w.drain().await;
    let job = w.assert_exact(&id).await;
    assert_eq!((job.status, job.progress.tasks_run()), (JobStatus::Failed, 20));
    assert_eq!(w.report_rows(&job).len(), 20, "the report lists every task that ran");
    let reason = &job.failure_reasons[0];
    assert_eq!(reason.failure_code, "ChunkDeadLettered");
    assert!(reason.failure_reason.starts_with("Chunk 1 (10 tasks from line 11 of the manifest)"), "{reason:?}");
    assert!(reason.failure_reason.ends_with("the report lists every task that ran"), "{reason:?}");
    // A letter of a job that has ended is dropped (so is one that cannot be read).
    q.chunks.send(vec![first, "not a chunk".into()]).await.unwrap();
    assert_eq!(chunker.handle_dead_letters().await, DeadLettered { dropped: 2, ..Default::default() });
    assert!(q.all_handled());
    assert_eq!(w.store.get(&id).await.unwrap().failure_reasons.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn control_and_finalize_letters_are_dropped_and_the_sweep_still_ends_their_jobs() {
    for lost in ["prepare", "finalize"] {
        let mut w = World::new(10, Duration::from_secs(60));
        (w.settings.stall, w.settings.sweep_every) = (Duration::from_secs(5), Duration::from_secs(1));
        let q = Dlqs::default();
        let id = w.intake().create_job(&w.spec(&manifest(30), json!({})), Caller::Unknown).await.unwrap();
        if lost == "prepare" {
            q.control.send(vec![w.control.pop().unwrap()]).await.unwrap();
        } else {
            w.drain_control_only().await;
            while let Some(m) = w.chunks.pop() {
                w.executor().handle(&ChunkMessage::decode(&m).unwrap()).await.unwrap();
            }
            q.finalize.send(vec![w.finalize.pop().unwrap()]).await.unwrap();
            assert!(w.store.get(&id).await.unwrap().progress.all_chunks_done());
        }
        // Unreadable letters too.
        q.control.send(vec!["{}".into()]).await.unwrap();
        q.finalize.send(vec!["garbage".into()]).await.unwrap();
        let chunker = w.sweeping(&q);
        assert_eq!(chunker.handle_dead_letters().await, DeadLettered { dropped: 3, ..Default::default() }, "{lost}");
        assert!(q.all_handled(), "{lost}");
        let start = tokio::time::Instant::now();
        let bound = crate::pipeline::sweep::Bounds::for_settings(&w.settings).liveness();
        while !w.store.get(&id).await.unwrap().status.is_terminal() {
            assert!(start.elapsed() <= bound, "{lost}: not ended within {bound:?}");
            chunker.sweep().await.unwrap();
            w.drain().await;
            tokio::time::advance(w.settings.sweep_every).await;
        }
        let job = w.assert_exact(&id).await;
        assert_eq!((job.status, job.progress.tasks_run()), (JobStatus::Complete, 30), "{lost}");
        assert_eq!(w.report_rows(&job).len(), 30, "{lost}");
    }
}
