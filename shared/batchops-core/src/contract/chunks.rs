//! The contract of [`ChunkLedger`]: one delivery's claim on a chunk at a time, lapsing when
//! not renewed; a chunk or part recorded at most once, its counts added to its job's in the
//! same write and only while the job takes them; the rest of a chunk handed on into the
//! backlog with its record; records read back in pages.

use super::fixtures::{chunk, files, lease, set_status, stored_job};
use crate::job::{JobId, JobStatus};
use crate::ports::{
    now_ms, Backlog, ChunkLedger, ChunkRecord, FileRecord, JobRecords, LeaseOutcome, Pass, RecordOutcome, Waiting,
    SPLIT_BASE,
};
use crate::Result;

/// Runs every case of the contract on `store`: the ledger, the job records it counts into
/// and the backlog it hands chunks on into, of one backend.
pub async fn chunk_ledger<S: JobRecords + ChunkLedger + Backlog>(store: &S) -> Result<()> {
    a_chunk_is_recorded_once_and_counted_once(store).await?;
    two_records_racing_count_once(store).await?;
    a_chunk_is_claimed_by_one_delivery_until_its_claim_lapses(store).await?;
    of_two_deliveries_racing_for_a_chunk_one_claims_it(store).await?;
    a_lapsed_claim_reaped_can_no_longer_record(store).await?;
    a_job_that_stops_starts_no_chunk_and_one_that_ended_records_none(store).await?;
    records_are_read_in_index_order_in_pages_that_go_on(store).await?;
    parts_are_recorded_once_per_pass_while_the_job_takes_them(store).await?;
    chunk_indexes_handed_on_are_never_given_twice(store).await?;
    a_chunk_hands_its_rest_on_into_the_backlog_with_its_record(store, store).await
}

/// Claims a chunk for `owner` and records it.
async fn run(store: &dyn ChunkLedger, id: &JobId, record: &ChunkRecord, owner: &str) -> Result<RecordOutcome> {
    store.start_chunk(id, &lease(record.index, owner, 60)).await?;
    store.record_chunk(id, record, owner).await
}

fn indexes(leases: &[crate::ports::ChunkLease]) -> Vec<u64> {
    leases.iter().map(|l| l.index).collect()
}

async fn a_chunk_is_recorded_once_and_counted_once<S: JobRecords + ChunkLedger>(store: &S) -> Result<()> {
    let id = stored_job(store, JobStatus::Active).await?.id;
    assert_eq!(run(store, &id, &chunk(0, 7, 3), "w1").await?, RecordOutcome::Recorded);
    assert!(store.chunk_leases(&id).await?.is_empty(), "recording ends the claim");
    assert_eq!(run(store, &id, &chunk(0, 7, 3), "w2").await?, RecordOutcome::AlreadyRecorded);
    // A record tried again by its owner (its first answer lost) is its own, and counted once.
    assert_eq!(store.record_chunk(&id, &chunk(0, 7, 3), "w1").await?, RecordOutcome::Recorded);
    store.release_chunk(&id, 0, "w2").await?;
    assert_eq!(run(store, &id, &chunk(1, 5, 0), "w1").await?, RecordOutcome::Recorded);
    assert!(store.chunk_recorded(&id, 1).await? && !store.chunk_recorded(&id, 2).await?);
    let p = store.get(&id).await?.progress;
    assert_eq!((p.succeeded, p.failed, p.chunks_done), (12, 3, 2));
    assert_eq!(store.chunks(&id).await?, vec![chunk(0, 7, 3), chunk(1, 5, 0)]);
    Ok(())
}

/// A delivery's record sent twice at once (an SDK retry racing its first try): one record.
async fn two_records_racing_count_once<S: JobRecords + ChunkLedger>(store: &S) -> Result<()> {
    let id = stored_job(store, JobStatus::Active).await?.id;
    store.start_chunk(&id, &lease(4, "w1", 60)).await?;
    let c = chunk(4, 2, 1);
    let (a, b) = futures::join!(store.record_chunk(&id, &c, "w1"), store.record_chunk(&id, &c, "w1"));
    assert_eq!((a?, b?), (RecordOutcome::Recorded, RecordOutcome::Recorded), "both answers are the owner's");
    let p = store.get(&id).await?.progress;
    assert_eq!((p.succeeded, p.failed, p.chunks_done), (2, 1, 1), "counted once");
    Ok(())
}

async fn a_chunk_is_claimed_by_one_delivery_until_its_claim_lapses<S: JobRecords + ChunkLedger>(
    store: &S,
) -> Result<()> {
    let id = stored_job(store, JobStatus::Active).await?.id;
    assert_eq!(store.start_chunk(&id, &lease(7, "w1", 60)).await?, LeaseOutcome::Started);
    match store.start_chunk(&id, &lease(7, "w2", 60)).await? {
        LeaseOutcome::Held { until_ms } => assert!(until_ms > now_ms() + 50_000, "held until {until_ms}"),
        other => panic!("held by w1: {other:?}"),
    }
    assert_eq!(store.record_chunk(&id, &chunk(7, 1, 0), "w2").await?, RecordOutcome::LeaseLost);
    assert!(store.renew_chunk(&id, &lease(7, "w1", 120)).await?);
    assert!(!store.renew_chunk(&id, &lease(7, "w2", 120)).await?, "only its owner renews a claim");
    store.release_chunk(&id, 7, "w2").await?;
    assert_eq!(indexes(&store.chunk_leases(&id).await?), [7], "only its owner releases a claim");
    store.release_chunk(&id, 7, "w1").await?;
    assert!(store.chunk_leases(&id).await?.is_empty());
    // A claim that lapsed is taken over, and its late owner can no longer record the chunk.
    assert_eq!(store.start_chunk(&id, &lease(8, "w1", -1)).await?, LeaseOutcome::Started);
    assert_eq!(store.start_chunk(&id, &lease(8, "w2", 60)).await?, LeaseOutcome::Started, "taken over");
    assert!(!store.renew_chunk(&id, &lease(8, "w1", 60)).await?, "a claim taken over is lost");
    assert_eq!(store.record_chunk(&id, &chunk(8, 1, 0), "w1").await?, RecordOutcome::LeaseLost);
    assert_eq!(store.record_chunk(&id, &chunk(8, 1, 0), "w2").await?, RecordOutcome::Recorded);
    assert_eq!(store.get(&id).await?.progress.succeeded, 1);
    Ok(())
}

async fn of_two_deliveries_racing_for_a_chunk_one_claims_it<S: JobRecords + ChunkLedger>(store: &S) -> Result<()> {
    let id = stored_job(store, JobStatus::Active).await?.id;
    let (w1, w2) = (lease(9, "w1", 60), lease(9, "w2", 90));
    let (a, b) = futures::join!(store.start_chunk(&id, &w1), store.start_chunk(&id, &w2));
    let winner = match (a?, b?) {
        (LeaseOutcome::Started, LeaseOutcome::Held { until_ms }) => {
            assert_eq!(until_ms, w1.until_ms, "held until the winner's claim lapses");
            w1
        }
        (LeaseOutcome::Held { until_ms }, LeaseOutcome::Started) => {
            assert_eq!(until_ms, w2.until_ms, "held until the winner's claim lapses");
            w2
        }
        other => panic!("one claim and one held: {other:?}"),
    };
    assert_eq!(store.chunk_leases(&id).await?, vec![winner]);
    Ok(())
}

/// The finalizer reaps the lapsed claims before writing the report: a worker that comes back
/// after that records nothing, and a claim renewed since it was read is left.
async fn a_lapsed_claim_reaped_can_no_longer_record<S: JobRecords + ChunkLedger>(store: &S) -> Result<()> {
    let id = stored_job(store, JobStatus::Active).await?.id;
    let stale = lease(8, "w2", -1);
    assert_eq!(store.start_chunk(&id, &stale).await?, LeaseOutcome::Started);
    assert!(!store.reap_chunk(&id, &lease(8, "w2", -5)).await?, "not the claim as it is");
    assert!(store.reap_chunk(&id, &stale).await?);
    assert!(!store.reap_chunk(&id, &stale).await?, "reaped once");
    assert!(store.chunk_leases(&id).await?.is_empty());
    assert!(!store.renew_chunk(&id, &lease(8, "w2", 60)).await?, "a reaped claim is not renewed");
    assert_eq!(store.record_chunk(&id, &chunk(8, 1, 0), "w2").await?, RecordOutcome::LeaseLost);
    assert!(!store.chunk_recorded(&id, 8).await?);
    Ok(())
}

async fn a_job_that_stops_starts_no_chunk_and_one_that_ended_records_none<S: JobRecords + ChunkLedger>(
    store: &S,
) -> Result<()> {
    let id = stored_job(store, JobStatus::Active).await?.id;
    assert_eq!(store.start_chunk(&id, &lease(2, "w1", 60)).await?, LeaseOutcome::Started);
    set_status(store, &id, JobStatus::Cancelling).await?;
    let closed = LeaseOutcome::JobClosed(JobStatus::Cancelling);
    assert_eq!(store.start_chunk(&id, &lease(3, "w1", 60)).await?, closed);
    assert_eq!(indexes(&store.chunk_leases(&id).await?), [2]);
    // A chunk claimed before the job was cancelled records the tasks that ran.
    assert_eq!(store.record_chunk(&id, &chunk(2, 1, 0), "w1").await?, RecordOutcome::Recorded);
    assert_eq!(store.get(&id).await?.progress.succeeded, 1);
    let cancelled = set_status(store, &id, JobStatus::Cancelled).await?;
    assert_eq!(cancelled.progress.succeeded, 1, "ending the job kept its counts");
    let closed = RecordOutcome::JobClosed(JobStatus::Cancelled);
    assert_eq!(store.record_chunk(&id, &chunk(9, 1, 0), "w1").await?, closed);
    assert!(!store.chunk_recorded(&id, 9).await?);
    assert_eq!(store.get(&id).await?.progress.chunks_done, 1);
    Ok(())
}

/// Records of many result files: a DynamoDB query page stops at 1 MB, so a page of records
/// may end long before the limit asked for, and reading goes on past it.
async fn records_are_read_in_index_order_in_pages_that_go_on<S: JobRecords + ChunkLedger>(store: &S) -> Result<()> {
    let id = stored_job(store, JobStatus::Active).await?.id;
    // Inventory parts' indexes are `part << 32 | n`: far above, and after, the first.
    let big = (3 << 32) | 5;
    let records: Vec<ChunkRecord> = [0, 1, 2, 10, 11, big]
        .into_iter()
        .map(|index| ChunkRecord { files: files(200, 1_000), ..chunk(index, 1, 0) })
        .collect();
    for r in records.iter().rev() {
        assert_eq!(run(store, &id, r, "w1").await?, RecordOutcome::Recorded, "chunk {}", r.index);
    }
    let all = store.chunks_after(&id, None, 6).await?;
    assert_eq!(all.iter().map(|c| c.index).collect::<Vec<_>>(), [0, 1, 2, 10, 11, big], "1.2 MB of records");
    assert_eq!(all, records);
    assert_eq!(store.chunks_after(&id, None, 2).await?, records[..2]);
    assert_eq!(store.chunks_after(&id, Some(1), 3).await?, records[2..5]);
    assert_eq!(store.chunks_after(&id, Some(3), 100).await?, records[3..]);
    assert!(store.chunks_after(&id, Some(big), 5).await?.is_empty());
    assert!(store.chunks_after(&JobId::new_random(), None, 5).await?.is_empty(), "another job's");
    Ok(())
}

async fn parts_are_recorded_once_per_pass_while_the_job_takes_them<S: JobRecords + ChunkLedger>(
    store: &S,
) -> Result<()> {
    let id = stored_job(store, JobStatus::Preparing).await?.id;
    let part = |pass, file| FileRecord { pass, file, tasks: 10 + file, chunks: 1 };
    assert_eq!(store.record_file(&id, &part(Pass::Count, 0)).await?, RecordOutcome::Recorded);
    assert_eq!(store.record_file(&id, &part(Pass::Cut, 0)).await?, RecordOutcome::Recorded, "another pass");
    assert_eq!(store.record_file(&id, &part(Pass::Cut, 0)).await?, RecordOutcome::AlreadyRecorded);
    assert_eq!(store.record_file(&id, &part(Pass::Cut, 1)).await?, RecordOutcome::Recorded);
    let p = store.get(&id).await?.progress;
    assert_eq!((p.cut.files, p.cut.tasks, p.cut.chunks), (2, 21, 2));
    assert_eq!((p.counted.files, p.counted.tasks, p.counted.chunks), (1, 10, 1));
    // A confirmed job's cut goes on while a job of higher priority has it paused.
    for (index, status) in [(2, JobStatus::Pausing), (3, JobStatus::Paused)] {
        set_status(store, &id, status).await?;
        assert_eq!(store.record_file(&id, &part(Pass::Cut, index)).await?, RecordOutcome::Recorded, "{status}");
    }
    for status in [JobStatus::Cancelling, JobStatus::Cancelled] {
        set_status(store, &id, status).await?;
        assert_eq!(store.record_file(&id, &part(Pass::Cut, 9)).await?, RecordOutcome::JobClosed(status));
    }
    assert_eq!(store.get(&id).await?.progress.cut.files, 4);
    Ok(())
}

async fn chunk_indexes_handed_on_are_never_given_twice<S: JobRecords + ChunkLedger>(store: &S) -> Result<()> {
    let id = stored_job(store, JobStatus::Active).await?.id;
    let first = store.allocate_chunks(&id, 1).await?;
    let second = store.allocate_chunks(&id, 2).await?;
    assert!(first >= SPLIT_BASE && second == first + 1, "{first} {second}");
    // Two executors handing on at once get ranges apart.
    let (a, b) = futures::join!(store.allocate_chunks(&id, 3), store.allocate_chunks(&id, 3));
    let (a, b) = (a?, b?);
    assert!(a.min(b) == second + 2 && a.abs_diff(b) == 3, "{a} {b} after {second}");
    let other = stored_job(store, JobStatus::Active).await?.id;
    assert_eq!(store.allocate_chunks(&other, 1).await?, SPLIT_BASE, "each job's from the start");
    Ok(())
}

/// A task is in the chunk's record or in the rest handed on, never in both or neither: the
/// record, its counters, the chunks put into the backlog and the job's runnable mark are one
/// write.
async fn a_chunk_hands_its_rest_on_into_the_backlog_with_its_record<S: JobRecords + ChunkLedger>(
    store: &S,
    backlog: &dyn Backlog,
) -> Result<()> {
    let id = stored_job(store, JobStatus::Active).await?.id;
    let next = store.allocate_chunks(&id, 2).await?;
    let rest = vec![Waiting { index: next, body: "rest-a".into() }, Waiting { index: next + 1, body: "rest-b".into() }];
    store.start_chunk(&id, &lease(0, "w1", 60)).await?;
    assert_eq!(store.record_handing_on(&id, &chunk(0, 5, 0), "w1", &rest).await?, RecordOutcome::Recorded);
    let mut job = store.get(&id).await?;
    let p = &job.progress;
    assert_eq!((p.chunks_done, p.chunks_split, p.succeeded), (1, 2, 5));
    job.progress.total_chunks = Some(1);
    assert!(!job.progress.all_chunks_done(), "the chunks handed on are still to run");
    assert_eq!(backlog.peek(&id, 10).await?, rest);
    assert!(backlog.runnable().await?.iter().any(|(j, _)| *j == id), "marked runnable");
    // Tried again (its answer lost): recorded once, handed on once.
    assert_eq!(store.record_handing_on(&id, &chunk(0, 5, 0), "w1", &rest).await?, RecordOutcome::Recorded);
    assert_eq!(store.get(&id).await?.progress.chunks_split, 2);
    assert_eq!(backlog.peek(&id, 10).await?.len(), 2);
    // A delivery whose claim was lost hands nothing on.
    let lost = vec![Waiting { index: next + 5, body: "lost".into() }];
    assert_eq!(store.record_handing_on(&id, &chunk(1, 5, 0), "w1", &lost).await?, RecordOutcome::LeaseLost);
    assert_eq!(backlog.peek(&id, 10).await?, rest);
    assert_eq!(store.get(&id).await?.progress.chunks_split, 2);
    Ok(())
}
