//! The chunker over CSV manifests: budgets and hand-ons, checkpoints, ETags, limits, header rows.

use super::*;

#[tokio::test]
async fn a_zero_time_budget_loses_and_repeats_no_row() {
    // Every piece read (7 bytes) exhausts the budget: the chunker continues itself constantly.
    let w = World::new(4, Duration::ZERO);
    let id = w.intake().create_job(&w.spec(&manifest(53), json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!(job.progress.total_tasks, Some(53));
    assert_eq!(job.progress.total_chunks, Some(14));
    let rows = w.report_rows(&job);
    let expected: Vec<String> = {
        let mut keys: Vec<String> = manifest(53).lines().map(|l| l.split(',').nth(1).unwrap().to_string()).collect();
        keys.sort();
        keys
    };
    let mut keys: Vec<String> = rows.iter().map(|r| r.split(',').nth(1).unwrap().to_string()).collect();
    keys.sort();
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn blank_lines_by_the_thousand_hand_on_and_count_as_no_row() {
    // GIVEN manifests mostly blank (`\n`, `\r\r\n`), before, between and after their rows, a
    // CSV one and an inventory file, read with no time budget: before issue 23 a run of blank
    // lines before a chunk's first task never paused (no chunk was cut), and `\r\r` was a
    // failed row to the executor but no task to the chunker
    let w = World::new(4, Duration::ZERO);
    let blanks = "\n\r\r\n".repeat(500);
    let csv = format!("{blanks}{}{blanks}{}{blanks}", manifest(6), manifest(3).replace("src,", "src,b-"));
    let id = w.intake().create_job(&w.spec(&csv, json!({})), Caller::Unknown).await.unwrap();
    let v = World::new(4, Duration::ZERO);
    let inventory = format!("{blanks}{}{blanks}", inventory_rows(0, 5));
    let spec = v.inventory_spec(INVENTORY_SCHEMA, &[gzip(&inventory)], None, json!({}));
    let inv = v.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    // WHEN they run
    w.drain().await;
    v.drain().await;
    // THEN each completes with one row per line that names an object, and counters to match
    for (w, id, tasks) in [(&w, id, 9), (&v, inv, 5)] {
        let job = w.store.get(&id).await.unwrap();
        assert_eq!(job.status, JobStatus::Complete, "{:?}", job.failure_reasons);
        assert_eq!(job.progress.total_tasks, Some(tasks));
        assert_eq!(job.progress.succeeded + job.progress.failed, tasks);
        assert_eq!(w.report_rows(&job).len() as u64, tasks);
    }
}

#[tokio::test]
async fn a_tiny_budget_hands_on_within_runs_of_blank_lines_before_any_chunk() {
    // GIVEN with no time budget and chunks of 10 tasks, a CSV manifest and an inventory file
    // whose rows follow 3 MiB and 250,000 blank lines: before, a run of blank lines cut no
    // chunk, so the chunker read it whole whatever its budget
    let handed_on = |csv: bool, blank: usize| async move {
        let w = World::new(10, Duration::ZERO);
        let blanks = "\n".repeat(blank);
        let spec = if csv {
            w.spec(&format!("{blanks}{}", manifest(5)), json!({}))
        } else {
            w.inventory_spec(INVENTORY_SCHEMA, &[gzip(&format!("{blanks}{}", inventory_rows(0, 5)))], None, json!({}))
        };
        let id = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
        let control = w.drain_counting_control().await;
        let job = w.store.get(&id).await.unwrap();
        assert_eq!((job.status, job.progress.total_tasks), (JobStatus::Complete, Some(5)));
        assert_eq!(w.report_rows(&job).len(), 5);
        control
    };
    // WHEN they run, and the same rows without the blank lines
    let (csv, csv_alone) = (handed_on(true, 3 << 20).await, handed_on(true, 0).await);
    let (inv, inv_alone) = (handed_on(false, 250_000).await, handed_on(false, 0).await);
    // THEN the blank runs are read over several invocations: a megabyte, or 100,000 lines, each
    assert!(csv >= csv_alone + 2, "{csv} control messages, {csv_alone} without the blank lines");
    assert!(inv >= inv_alone + 2, "{inv} control messages, {inv_alone} without the blank lines");
}

#[tokio::test]
async fn checkpoints_whose_answers_are_lost_still_lead_the_preparation_on() {
    // Every continuation's checkpoint is written, and its answer lost: the retry meets the
    // write it repeats. The chunker must know it for its own and go on, not stop as if another
    // writer had changed the job.
    let w = World::new(4, Duration::ZERO);
    *w.store.lose_put_answers.lock().unwrap() =
        Some(Box::new(|j| j.status == JobStatus::Preparing && j.checkpoint != crate::job::Checkpoint::default()));
    let id = w.intake().create_job(&w.spec(&manifest(53), json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!((job.status, job.progress.total_chunks), (JobStatus::Complete, Some(14)), "{:?}", job.history);
    assert_eq!(w.report_rows(&job).len(), 53);
}

/// A confirmed job that a job of higher priority pauses while it is being cut (issue 22, hole
/// 4: its continuation, its parts and the end of its cut were refused for a Pausing or Paused
/// job, so it never learnt its chunk total and stayed Active forever). Returns the chunk total.
async fn paused_while_cut(mut w: World, spec: Vec<u8>, tasks: usize) -> u64 {
    let id = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    w.drain().await;
    w.intake().update_job_status(id.as_str(), "Ready", None).await.unwrap();
    // The executors are busy with the other job: nothing of this one is released.
    w.depth = 0;
    // The confirmation's Start: Active, the cut begun and to be continued.
    assert!(w.step().await);
    let job = w.store.get(&id).await.unwrap();
    assert_eq!((job.status, job.progress.total_chunks), (JobStatus::Active, None));
    assert!(!w.control.is_empty(), "the cut continues");
    for (from, to) in [(JobStatus::Active, JobStatus::Pausing), (JobStatus::Pausing, JobStatus::Paused)] {
        let paused = transition_from(&*w.store, &*w.events, &id, &[from], to, |_| {}).await;
        assert!(paused.unwrap().is_ok());
    }
    w.drain_control_only().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Paused);
    let chunks = job.progress.total_chunks.expect("cut whole while paused");
    // The other job is done: this one resumes, runs and ends.
    w.depth = 1_000_000;
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.history);
    assert_eq!(w.report_rows(&job).len(), tasks);
    chunks
}

#[tokio::test]
async fn a_confirmed_job_paused_while_it_is_cut_still_learns_its_chunks_and_ends() {
    // A zero budget: the cut continues itself after every piece it reads.
    let w = World::new(4, Duration::ZERO);
    let spec = w.spec(&manifest(53), json!({"ConfirmationRequired": true}));
    assert_eq!(paused_while_cut(w, spec, 53).await, 14);
    let w = World::new(4, Duration::ZERO);
    let files = vec![gzip(&inventory_rows(0, 9)), gzip(&inventory_rows(1, 6))];
    let spec = w.inventory_spec(INVENTORY_SCHEMA, &files, None, json!({"ConfirmationRequired": true}));
    assert_eq!(paused_while_cut(w, spec, 15).await, 5, "chunks of 4 of 9 rows and of 6");
}

#[tokio::test]
async fn a_wrong_manifest_etag_fails_the_job_with_a_reason() {
    let w = World::new(10, Duration::from_secs(60));
    let mut spec: Value = serde_json::from_slice(&w.spec(&manifest(5), json!({}))).unwrap();
    spec["Manifest"]["Location"]["ETag"] = json!("0000");
    let id = w.intake().create_job(spec.to_string().as_bytes(), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.failure_reasons[0].failure_code, "ManifestETagMismatch");
    assert!(job.failure_reasons[0].failure_reason.contains("0000"));
    assert!(w.report_rows(&job).is_empty(), "no task ran, so no report");
}

#[tokio::test]
async fn a_permanent_error_while_preparing_fails_the_job_at_once() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(5), json!({})), Caller::Unknown).await.unwrap();
    // A stored record (without its plan) whose spec no longer validates: delivering the
    // message again cannot help.
    modify(&*w.store, &id, |j| {
        j.spec.role_arn = Some("not a role".into());
        j.plan = None;
        true
    })
    .await
    .unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.failure_reasons[0].failure_code, "PreparationFailed");
    assert!(job.failure_reasons[0].failure_reason.contains("RoleArn"), "{:?}", job.failure_reasons);
}

#[tokio::test]
async fn a_manifest_overwritten_during_the_job_fails_it() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(30), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    // GIVEN the manifest is replaced after it was cut
    w.objects.insert("manifests", "m.csv", manifest(31).into_bytes());
    // WHEN the chunks run
    w.drain().await;
    // THEN the job fails naming the change, and no task ran against the new content
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.failure_reasons[0].failure_code, "ManifestChanged");
    assert_eq!(job.progress.tasks_run(), 0);
}

#[tokio::test]
async fn an_empty_manifest_or_inventory_completes_with_no_tasks_and_says_so() {
    let w = World::new(10, Duration::from_secs(60));
    // (the inventory's spec writes the CSV manifest too: it goes first)
    let inv = w
        .intake()
        .create_job(&w.inventory_spec(INVENTORY_SCHEMA, &[], None, json!({})), Caller::Unknown)
        .await
        .unwrap();
    let csv = w.intake().create_job(&w.spec("\n", json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    for id in [csv, inv] {
        let job = w.store.get(&id).await.unwrap();
        assert_eq!((job.status, job.progress.total_tasks), (JobStatus::Complete, Some(0)), "{:?}", job.failure_reasons);
        assert_eq!(job.status_update_reason.as_deref(), Some("The manifest holds no tasks: nothing to run"));
        assert!(w.report_rows(&job).is_empty(), "no report when no task ran");
    }
}

#[tokio::test]
async fn a_csv_manifest_with_a_header_row_fails_naming_line_one() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec("Bucket,Key\nsrc,a\n", json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.failure_reasons[0].failure_code, "InvalidManifestContent");
    assert!(job.failure_reasons[0].failure_reason.starts_with("manifest line 1: 'Bucket' is not a bucket name"));
    assert_eq!(job.progress.tasks_run(), 0);
}

#[tokio::test]
async fn manifests_beyond_the_configured_limits_fail_the_job() {
    let mut w = World::new(3, Duration::from_secs(60));
    w.settings.max_tasks = 5;
    let id = w.intake().create_job(&w.spec(&manifest(9), json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!((job.status, job.failure_reasons[0].failure_code.as_str()), (JobStatus::Failed, "ManifestTooLarge"));

    let mut w = World::new(3, Duration::from_secs(60));
    w.settings.max_line_bytes = 100;
    let long = format!("src,a\nsrc,{}\n", "x".repeat(500));
    let id = w.intake().create_job(&w.spec(&long, json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.failure_reasons[0].failure_code, "InvalidManifestContent");
    assert!(
        job.failure_reasons[0].failure_reason.starts_with("manifest line 2 is longer than 100 bytes"),
        "{:?}",
        job.failure_reasons
    );
}

#[tokio::test]
async fn a_chunker_that_wrote_its_checkpoint_but_never_sent_its_continuation_is_resumed_by_the_redelivery() {
    // A zero budget: every piece read continues itself.
    let w = World::new(4, Duration::ZERO);
    let id = w.intake().create_job(&w.spec(&manifest(30), json!({})), Caller::Unknown).await.unwrap();
    let deadline = || Instant::now() + Duration::from_secs(60);
    let cut_off = Chunker { control: Arc::new(Unreachable), ..w.chunker() };
    // The Prepare: checkpoint written, continuation lost; the Prepare comes again.
    let prepare: ControlMessage = serde_json::from_str(&w.control.pop().unwrap()).unwrap();
    assert!(cut_off.handle(prepare.clone(), deadline()).await.unwrap_err().is_transient());
    assert_ne!(w.store.get(&id).await.unwrap().checkpoint, Default::default());
    w.chunker().handle(prepare, deadline()).await.unwrap();
    // A continuation: the same again.
    let next: ControlMessage = serde_json::from_str(&w.control.pop().unwrap()).unwrap();
    assert!(matches!(next, ControlMessage::Continue { .. }));
    assert!(cut_off.handle(next.clone(), deadline()).await.unwrap_err().is_transient());
    w.chunker().handle(next, deadline()).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!((job.progress.total_tasks, job.progress.tasks_run()), (Some(30), 30));
    assert_eq!(w.report_rows(&job).len(), 30, "each row once");
}
