//! The finalizer: the completion report, merged segments, and the failures view.

use super::*;

#[tokio::test]
async fn a_finalize_request_lost_after_the_last_chunk_is_made_up_by_the_chunks_redelivery() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(20), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    let first = ChunkMessage::decode(&w.chunks.pop().unwrap()).unwrap();
    let last = ChunkMessage::decode(&w.chunks.pop().unwrap()).unwrap();
    w.executor().handle(&first).await.unwrap();
    // The last chunk is recorded, then the finalize queue cannot be reached: the delivery fails.
    let mut cut_off = w.executor();
    cut_off.ports.finalize = Arc::new(Unreachable);
    let err = cut_off.handle(&last).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(w.store.get(&id).await.unwrap().progress.chunks_done, 2);
    assert!(w.finalize.is_empty());
    // Its redelivery finds it recorded and asks for the finalizer.
    assert!(matches!(w.executor().handle(&last).await.unwrap(), Disposition::Duplicate));
    assert_eq!(w.finalize.len(), 1);
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!(w.report_rows(&job).len(), 20);
}

#[tokio::test]
async fn a_report_whose_files_cannot_be_merged_lists_them_all_in_a_manifest_of_parts() {
    // GIVEN an active job with 12,001 recorded chunks of two result files each (about 9 MiB of
    // manifest.json), files the report bucket does not hold, so merges cannot read them
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(1), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    w.chunks.pop().expect("the job's one chunk");
    let long = "k".repeat(300);
    let key = |index: u64, status: &str| format!("r/job-{id}/results/{index:040}-{status}-{long}.csv");
    // WHEN the finalizer ends it (its merges run, and record their chunks' files unmerged)
    w.end_with_recorded_chunks(&id, 12_001, key).await;
    let job = w.store.get(&id).await.unwrap();
    // THEN the manifest (written in parts: it is larger than one) lists every file in order
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!(w.store.segments_recorded(&id).await.unwrap(), 481, "12,001 chunks in segments of 25");
    let body = w.objects.get("reports", &format!("r/job-{id}/manifest.json")).unwrap();
    assert!(body.len() > crate::pipeline::finalizer::report::REPORT_PART_BYTES, "{} bytes", body.len());
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let results = doc["Results"].as_array().unwrap();
    assert_eq!(results.len(), 24_002);
    assert!(results[24_001]["Key"].as_str().unwrap().contains(&format!("{:040}-failed", 12_000)));
    assert_eq!(doc["Format"], "Report_CSV_20180820");
}

#[tokio::test]
async fn unmerged_segments_of_a_report_under_the_longest_prefix_each_fit_one_dynamodb_item() {
    // GIVEN a job reported under a 512-character prefix in one segment (as it would be), with
    // 600 recorded chunks of two result files each that merges cannot read
    let mut w = World::new(10, Duration::from_secs(60));
    w.settings.report_segments = 1;
    let prefix = "p".repeat(512);
    let report = json!({"Report": {"Enabled": true, "Bucket": "arn:aws:s3:::reports", "Format": "Report_CSV_20180820",
                                   "Prefix": prefix, "ReportScope": "AllTasks"}});
    let id = w.intake().create_job(&w.spec(&manifest(1), report), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    w.chunks.pop().expect("the job's one chunk");
    let key = |index: u64, status: &str| {
        format!("{prefix}/job-{id}/results/{:040}.csv", index * 2 + (status == "failed") as u64)
    };
    // WHEN the finalizer ends it (its merges record their chunks' files unmerged)
    w.end_with_recorded_chunks(&id, 600, key).await;
    // THEN the segments were cut small enough for DynamoDB's 400 KB items (the store refuses
    // larger ones as DynamoDB does), and the job ended listing every file
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    let segments = w.store.segments_recorded(&id).await.unwrap();
    assert!(segments > 1, "600 chunks of the widest files cannot be one item");
    let body = w.objects.get("reports", &format!("{prefix}/job-{id}/manifest.json")).unwrap();
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["Results"].as_array().unwrap().len(), 1200);
}

/// Runs the job's queues to the end, handing every merge message of a big report to the
/// finalizer `times` times (a duplicate delivery).
async fn drain_merging(w: &World, times: usize) {
    loop {
        if let Some(m) = w.finalize.pop() {
            let msg: FinalizeMessage = serde_json::from_str(&m).unwrap();
            let n = if msg.merge.is_some() { times } else { 1 };
            for _ in 0..n {
                w.finalizer().handle(&msg).await.unwrap();
            }
        } else if !w.step().await {
            return;
        }
    }
}

#[tokio::test]
async fn a_job_of_many_chunks_reports_in_at_most_a_thousand_files_with_every_row_once() {
    use crate::pipeline::finalizer::report::MAX_SEGMENTS;
    // 1,203 chunks of one task: 401 segments of 3 chunks.
    let w = World::new(1, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(1203), json!({})), Caller::Unknown).await.unwrap();
    drain_merging(&w, 2).await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    let manifest_json = w.objects.get("reports", &format!("r/job-{id}/manifest.json")).unwrap();
    let doc: Value = serde_json::from_slice(&manifest_json).unwrap();
    let results = doc["Results"].as_array().unwrap();
    assert!(results.len() as u64 <= 2 * MAX_SEGMENTS, "{} files", results.len());
    let succeeded = results.iter().filter(|f| f["TaskExecutionStatus"] == "succeeded").count();
    // Every segment has successes; one line in ten fails, in 120 of them.
    assert_eq!((succeeded, results.len() - succeeded), (401, 120), "one file per status per segment");
    for f in results {
        let body = w.objects.get("reports", f["Key"].as_str().unwrap()).unwrap();
        assert_eq!(f["MD5Checksum"].as_str().unwrap(), hex::encode(<md5::Md5 as md5::Digest>::digest(&body)));
    }
    let rows = w.report_rows(&job);
    assert_eq!(rows.len(), 1203);
    let mut keys: Vec<&str> = rows.iter().map(|r| r.split(',').nth(1).unwrap()).collect();
    keys.dedup();
    assert_eq!(keys.len(), 1203, "each row once, though every merge ran twice");
    assert_eq!((job.progress.succeeded + job.progress.failed), 1203);
    // The chunks' own files were merged and deleted; a duplicate merge's output too.
    let left = w.objects.keys("reports").into_iter().filter(|k| k.contains("/results/")).count();
    assert_eq!(left, results.len());
}

#[tokio::test]
async fn a_job_of_few_chunks_keeps_its_chunk_files() {
    let w = World::new(1, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(40), json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(w.report_rows(&job).len(), 40);
    assert!(w.store.segments_after(&id, None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn failures_count_every_failed_row_of_the_report_per_code_with_the_first_rows() {
    let w = World::new(10, Duration::from_secs(60));
    // 40 rows: every tenth object is missing, and one line is not a manifest row.
    let mut text = manifest(40);
    text.push_str("src\n");
    let id = w.intake().create_job(&w.spec_at("f.csv", &text, json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.progress.failed, 5);
    let f = w.intake().failures(id.as_str(), 2).await.unwrap();
    assert!(f.complete);
    assert_eq!((f.failed_tasks, f.rows_read, f.other_rows), (5, 5, 0), "rows read = counters");
    let counts: Vec<_> = f.groups.iter().map(|g| (g.error_code.as_str(), g.http_status_code, g.count)).collect();
    assert_eq!(counts, [("NoSuchKey", 404, 4), ("InvalidManifestContent", 400, 1)]);
    assert_eq!(f.groups[0].tasks.len(), 2, "at most `limit` rows per pair");
    assert!(f.groups[0].tasks.iter().all(|t| t.bucket == "src" && t.key.starts_with("missing-")));
    assert!(f.groups[1].tasks[0].result_message.contains("line 41"), "{:?}", f.groups[1]);

    // Every result file, and the manifest of the ended job, with a link.
    let links = w.intake().report_links(id.as_str()).await.unwrap();
    assert_eq!(
        links.files.len(),
        crate::pipeline::finalizer::report::report_files(&*w.store, &id).await.unwrap().len()
    );
    assert_eq!(links.files.iter().map(|f| f.rows.unwrap()).sum::<u64>(), 41, "every row in some file");
    assert!(links.files.iter().all(|f| f.url == format!("memory://reports/{}", f.key)), "{links:?}");
    assert_eq!(links.manifest.unwrap().key, format!("r/job-{id}/manifest.json"));
    let bad = w.intake().failures(id.as_str(), 0).await.unwrap_err();
    assert!(bad.to_string().contains("limit"), "{bad}");
    let quiet = w.spec_at("q2.csv", "src,missing-1\n", json!({"Report": {"Enabled": false}}));
    let quiet = w.intake().create_job(&quiet, Caller::Unknown).await.unwrap();
    w.drain().await;
    let unreported = w.intake().failures(quiet.as_str(), 10).await.unwrap_err();
    assert!(unreported.to_string().contains("has no report"), "{unreported}");
}
