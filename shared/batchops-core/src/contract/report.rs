//! The contract of [`ReportLedger`]: each segment of a big report recorded once (the first
//! merge's stands), read back in index order in pages that go on past a page's bytes, and
//! counted.

use super::fixtures::files;
use crate::job::JobId;
use crate::ports::{ReportLedger, ResultFile, SegmentRecord};
use crate::Result;

/// Runs every case of the contract on `store`.
pub async fn report_ledger(store: &dyn ReportLedger) -> Result<()> {
    a_segment_is_recorded_once(store).await?;
    of_two_merges_racing_for_a_segment_one_records_it(store).await?;
    segments_are_read_in_index_order_and_counted(store).await?;
    segments_of_many_files_are_read_past_a_pages_bytes(store).await
}

fn file(key: &str) -> ResultFile {
    ResultFile { key: key.into(), status: "succeeded".into(), md5: "00".into(), rows: 1 }
}

fn segment(index: u64, key: &str) -> SegmentRecord {
    SegmentRecord { index, files: vec![file(key)] }
}

async fn a_segment_is_recorded_once(store: &dyn ReportLedger) -> Result<()> {
    let id = JobId::new_random();
    assert!(store.record_segment(&id, &segment(0, "first")).await?);
    assert!(!store.record_segment(&id, &segment(0, "second")).await?, "recorded once");
    assert_eq!(store.segments_after(&id, None, 10).await?, vec![segment(0, "first")], "the first stands");
    assert!(store.segments_after(&JobId::new_random(), None, 10).await?.is_empty(), "another job's");
    Ok(())
}

/// A merge delivered twice at once: one record, and it is the one read back.
async fn of_two_merges_racing_for_a_segment_one_records_it(store: &dyn ReportLedger) -> Result<()> {
    let id = JobId::new_random();
    let (a, b) = (segment(3, "a"), segment(3, "b"));
    let (ra, rb) = futures::join!(store.record_segment(&id, &a), store.record_segment(&id, &b));
    let won = match (ra?, rb?) {
        (true, false) => a,
        (false, true) => b,
        other => panic!("one record: {other:?}"),
    };
    assert_eq!(store.segments_after(&id, None, 10).await?, vec![won]);
    Ok(())
}

async fn segments_are_read_in_index_order_and_counted(store: &dyn ReportLedger) -> Result<()> {
    let id = JobId::new_random();
    // More than the ten a page of the default `segment_indexes` reads, recorded out of order.
    let all: Vec<SegmentRecord> = (0..25).map(|i| segment(i, &format!("s{i}"))).collect();
    for s in all.iter().rev() {
        assert!(store.record_segment(&id, s).await?);
    }
    assert_eq!(store.segments_after(&id, None, 5).await?, all[..5]);
    assert_eq!(store.segments_after(&id, Some(4), 3).await?, all[5..8]);
    let (mut read, mut after) = (Vec::new(), None);
    loop {
        let page = store.segments_after(&id, after, 7).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.index);
        read.extend(page);
    }
    assert_eq!(read, all);
    assert_eq!(store.segment_indexes(&id).await?, (0..25).collect::<Vec<u64>>());
    assert_eq!(store.segments_recorded(&id).await?, 25);
    let other = JobId::new_random();
    assert_eq!((store.segment_indexes(&other).await?, store.segments_recorded(&other).await?), (Vec::new(), 0));
    Ok(())
}

/// A segment recorded unmerged lists up to a thousand files (some 300 KB): a DynamoDB query
/// page of them stops at 1 MB, and reading them, or only their indexes, goes on past it.
async fn segments_of_many_files_are_read_past_a_pages_bytes(store: &dyn ReportLedger) -> Result<()> {
    let id = JobId::new_random();
    let all: Vec<SegmentRecord> = (0..5).map(|index| SegmentRecord { index, files: files(280, 1_000) }).collect();
    for s in &all {
        assert!(store.record_segment(&id, s).await?);
    }
    assert_eq!(store.segments_after(&id, None, 5).await?, all, "1.5 MB of segments");
    assert_eq!(store.segment_indexes(&id).await?, [0, 1, 2, 3, 4]);
    Ok(())
}
