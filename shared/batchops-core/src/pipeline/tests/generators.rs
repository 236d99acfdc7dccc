//! The chunker over a ManifestGenerator: listing, filters, the written manifest.

use super::*;

#[tokio::test]
async fn a_generator_lists_filters_and_writes_its_manifest_whatever_the_budget() {
    // GIVEN 2,300 objects, of which the .log ones under logs/ match, listed with no time budget
    let w = World::new(5, Duration::ZERO);
    for i in 0..2300 {
        let key = if i % 2 == 0 { format!("logs/{i:05} a.log") } else { format!("logs/{i:05}.txt") };
        w.objects.insert("src", &key, vec![b'x'; i % 7]);
    }
    w.objects.insert("src", "other/x.log", "x");
    let filter = json!({"KeyNameConstraint": {"MatchAnyPrefix": ["logs/"], "MatchAnySuffix": [".log"]},
                        "ObjectSizeGreaterThanBytes": 0});
    let id = w.intake().create_job(&w.generator_spec(filter, true, json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.failure_reasons);
    let expected: Vec<usize> = (0..2300).filter(|i| i % 2 == 0 && i % 7 != 0).collect();
    assert_eq!(job.progress.total_tasks, Some(expected.len() as u64));
    let rows = w.report_rows(&job);
    assert_eq!(rows.len(), expected.len());
    assert!(rows.contains(&"src,logs/00002+a.log,,succeeded,200,,Successful".to_string()), "{:?}", &rows[..2]);
    // AND the generated manifest lists the same objects, and DescribeJob says where it is
    let d = crate::pipeline::describe::descriptor(&job, jiff::Timestamp::now());
    let loc = &d["GeneratedManifestDescriptor"];
    assert_eq!(loc["Format"], "S3InventoryReport_CSV_20211130");
    assert_eq!(loc["Location"]["ObjectArn"], format!("arn:aws:s3:::gen/out/job-{id}/manifest.json"));
    let m =
        crate::inventory::parse_manifest(&w.objects.get("gen", &format!("out/job-{id}/manifest.json")).unwrap(), "gen")
            .unwrap();
    assert!(m.files.len() >= 2, "one data file per {} chunks", crate::pipeline::chunker::listing::FILE_CHUNKS);
    let mut listed = 0;
    for f in &m.files {
        let body = w.objects.get("gen", &f.key).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text).unwrap();
        listed += text.lines().count();
    }
    assert_eq!(listed, expected.len());
}

#[tokio::test]
async fn a_generator_that_matches_nothing_completes_with_zero_tasks_and_says_so() {
    let w = World::new(50, Duration::from_secs(60));
    w.objects.insert("src", "a.txt", "x");
    let id = w
        .intake()
        .create_job(&w.generator_spec(json!({"MatchAnyStorageClass": ["GLACIER"]}), false, json!({})), Caller::Unknown)
        .await
        .unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!((job.status, job.progress.total_tasks), (JobStatus::Complete, Some(0)));
    let reason = job.status_update_reason.unwrap_or_default();
    assert!(reason.contains("matched none of the 1 objects listed in s3://src"), "{reason}");
}

#[tokio::test]
async fn a_confirmed_generator_job_runs_on_what_it_listed_before_confirmation() {
    let w = World::new(5, Duration::ZERO);
    for i in 0..12 {
        w.objects.insert("src", &format!("k{i:02}"), "x");
    }
    let spec = w.generator_spec(json!({}), false, json!({"ConfirmationRequired": true}));
    let id = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    w.drain().await;
    assert_eq!(w.store.get(&id).await.unwrap().progress.total_tasks, Some(12));
    w.objects.insert("src", "k99-added-later", "x");
    w.intake().update_job_status(id.as_str(), "Ready", None).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.failure_reasons);
    let rows = w.report_rows(&job);
    assert_eq!(rows.len(), 12);
    assert!(!rows.iter().any(|r| r.contains("added-later")));
    assert!(
        crate::pipeline::describe::descriptor(&job, jiff::Timestamp::now())
            .get("GeneratedManifestDescriptor")
            .is_none(),
        "not asked for"
    );
}
