//! The chunker over S3 Inventory manifests: files read in parallel, checked, counted then cut.

use super::*;

#[tokio::test]
async fn inventory_files_are_read_in_parallel_with_one_row_per_line_whatever_the_budget() {
    // GIVEN an inventory of four gzip files, with an empty version ID, a short line, a blank
    // line, an empty file and a line that is not UTF-8, read with no time budget at all (every
    // chunk hands on)
    let w = World::new(7, Duration::ZERO);
    let mut second = inventory_rows(1, 20);
    second.push_str("\"src\",\"null-version\",\"\",\"true\",\"false\",\"1\"\n\n\"src\",\"short\"\n");
    let mut third = b"\"src\",\"ok-key\",\"v1\",\"true\",\"false\",\"1\"\n".to_vec();
    third.extend_from_slice(b"\"src\",\"bad\xff\",\"v1\",\"true\",\"false\",\"1\"\n");
    let files = vec![gzip(&inventory_rows(0, 30)), gzip(&second), gzip(""), gzip_bytes(&third)];
    let id = w
        .intake()
        .create_job(&w.inventory_spec(INVENTORY_SCHEMA, &files, None, json!({})), Caller::Unknown)
        .await
        .unwrap();
    // WHEN the job runs
    w.drain().await;
    // THEN every line is one report row, failures name their file and line, versions are kept
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.failure_reasons);
    assert_eq!(job.progress.total_tasks, Some(54));
    assert_eq!(job.progress.files_total, Some(4));
    assert_eq!((job.progress.succeeded, job.progress.failed), (51, 3));
    let rows = w.report_rows(&job);
    assert_eq!(rows.len(), 54);
    assert!(rows.contains(&"src,ok-key,v1,succeeded,200,,Successful".to_string()), "a bad line spoils only itself");
    assert!(rows.iter().any(|r| r.ends_with("inventory file src/cfg/data/3.csv.gz line 2: is not UTF-8")), "{rows:?}");
    assert!(rows.contains(&"src,f0/obj%2029,v29,succeeded,200,,Successful".to_string()), "{rows:?}");
    assert!(rows
        .contains(&"src,null-version,,failed,400,InvalidManifestContent,inventory file src/cfg/data/1.csv.gz line 21: Task failed due to missing VersionId".to_string()), "{rows:?}");
    assert!(rows.iter().any(|r| r.starts_with("src,short,,failed,400,InvalidManifestContent,\"inventory file src/cfg/data/1.csv.gz line 23: expected 6 columns")), "{rows:?}");
}

#[tokio::test]
async fn inventory_files_that_do_not_check_out_fail_the_job_before_any_task() {
    for (files, md5, schema, code, says) in [
        (
            vec![gzip(&inventory_rows(0, 5))],
            Some((0, "0123456789abcdef0123456789abcdef")),
            INVENTORY_SCHEMA,
            "ManifestChecksumMismatch",
            "not the 0123456789abcdef0123456789abcdef its manifest.json gives",
        ),
        (vec![b"not gzip at all".to_vec()], None, INVENTORY_SCHEMA, "InvalidManifestContent", "is not valid gzip"),
        (vec![gzip(&inventory_rows(0, 5))], None, "Bucket, Size", "InvalidManifestContent", "has no Key column"),
    ] {
        let w = World::new(10, Duration::from_secs(60));
        let id =
            w.intake().create_job(&w.inventory_spec(schema, &files, md5, json!({})), Caller::Unknown).await.unwrap();
        w.drain().await;
        let job = w.store.get(&id).await.unwrap();
        assert_eq!(job.status, JobStatus::Failed);
        assert_eq!(job.failure_reasons[0].failure_code, code);
        assert!(job.failure_reasons[0].failure_reason.contains(says), "{:?}", job.failure_reasons);
        assert_eq!(job.progress.tasks_run(), 0);
    }
}

#[tokio::test]
async fn a_confirmed_inventory_job_counts_then_cuts() {
    let w = World::new(4, Duration::ZERO);
    let files = vec![gzip(&inventory_rows(0, 9)), gzip(&inventory_rows(1, 6))];
    let spec = w.inventory_spec(INVENTORY_SCHEMA, &files, None, json!({"ConfirmationRequired": true}));
    let id = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!((job.status, job.progress.total_tasks), (JobStatus::Suspended, Some(15)));
    assert_eq!(job.progress.tasks_run(), 0);
    w.intake().update_job_status(id.as_str(), "Ready", None).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.failure_reasons);
    assert_eq!(w.report_rows(&job).len(), 15);
}

#[tokio::test]
async fn a_redelivered_inventory_prepare_reads_each_file_into_the_totals_once() {
    // GIVEN an inventory job whose Prepare message is delivered twice
    let w = World::new(4, Duration::ZERO);
    let files = vec![gzip(&inventory_rows(0, 10)), gzip(&inventory_rows(1, 7))];
    let id = w
        .intake()
        .create_job(&w.inventory_spec(INVENTORY_SCHEMA, &files, None, json!({})), Caller::Unknown)
        .await
        .unwrap();
    let prepare = w.control.pop().unwrap();
    w.control.send(vec![prepare.clone(), prepare]).await.unwrap();
    // WHEN everything runs
    w.drain().await;
    // THEN the files were sent twice, read twice, but counted and reported once
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.failure_reasons);
    assert_eq!((job.progress.total_tasks, job.progress.cut.files), (Some(17), 2));
    assert_eq!(w.report_rows(&job).len(), 17);
}
