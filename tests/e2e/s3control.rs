//! The Rust SDK's S3 Control client (`aws-sdk-s3control`), unchanged, against the local API
//! speaking S3 Control's REST-XML. Its endpoint rules put the account in front of the host
//! (`123456789012.127.0.0.1`), which nothing resolves: an endpoint resolver of the caller's
//! own names the local API, as the README shows.

use anyhow::Result;
use aws_sdk_s3control::config::endpoint::{Endpoint, EndpointFuture, Params, ResolveEndpoint};
use aws_sdk_s3control::operation::describe_job::DescribeJobError;
use aws_sdk_s3control::types::{
    JobManifest, JobManifestFieldName, JobManifestFormat, JobManifestLocation, JobManifestSpec, JobOperation,
    JobReport, JobReportFormat, JobReportScope, JobStatus, S3SetObjectTaggingOperation, S3Tag,
};
use batchops_core::pipeline::Settings;
use batchops_e2e::System;

use crate::LONG;

const ACCOUNT: &str = "210987654321";

/// Every request of the client to `url`, whatever the endpoint rules would build.
#[derive(Debug)]
struct LocalApi(String);

impl ResolveEndpoint for LocalApi {
    fn resolve_endpoint<'a>(&'a self, _: &'a Params) -> EndpointFuture<'a> {
        EndpointFuture::ready(Ok(Endpoint::builder().url(self.0.clone()).build()))
    }
}

fn client(sys: &System) -> aws_sdk_s3control::Client {
    let config = aws_sdk_s3control::config::Builder::from(&sys.clients.sdk)
        .endpoint_resolver(LocalApi(sys.handle.api_url.clone()))
        .build();
    aws_sdk_s3control::Client::from_conf(config)
}

#[tokio::test]
async fn the_rust_sdk_creates_and_follows_a_job_to_its_report() -> Result<()> {
    let sys = System::start(Settings::default(), 2).await?;
    let [src, man, rep] = sys.buckets(["src", "man", "rep"]).await?;
    let keys: Vec<String> = (0..12).map(|i| format!("rust/obj-{i}.txt")).collect();
    let mut manifest = String::new();
    for k in &keys {
        sys.put(&src, k, b"x".to_vec()).await?;
        manifest.push_str(&format!("{src},{k}\n"));
    }
    let etag = sys.put(&man, "m.csv", manifest).await?;
    let s3control = client(&sys);

    let created = s3control
        .create_job()
        .account_id(ACCOUNT)
        .confirmation_required(false)
        .priority(3)
        .role_arn("arn:aws:iam::123456789012:role/batchops-tests")
        .operation(
            JobOperation::builder()
                .s3_put_object_tagging(
                    S3SetObjectTaggingOperation::builder()
                        .tag_set(S3Tag::builder().key("sdk").value("rust").build()?)
                        .build(),
                )
                .build(),
        )
        .manifest(
            JobManifest::builder()
                .spec(
                    JobManifestSpec::builder()
                        .format(JobManifestFormat::S3BatchOperationsCsv20180820)
                        .fields(JobManifestFieldName::Bucket)
                        .fields(JobManifestFieldName::Key)
                        .build()?,
                )
                .location(
                    JobManifestLocation::builder()
                        .object_arn(format!("arn:aws:s3:::{man}/m.csv"))
                        .e_tag(etag)
                        .build()?,
                )
                .build(),
        )
        .report(
            JobReport::builder()
                .bucket(format!("arn:aws:s3:::{rep}"))
                .format(JobReportFormat::ReportCsv20180820)
                .enabled(true)
                .prefix("reports")
                .report_scope(JobReportScope::AllTasks)
                .build(),
        )
        .send()
        .await?;
    let id = created.job_id().unwrap_or_default().to_string();

    let deadline = std::time::Instant::now() + LONG;
    let job = loop {
        let out = s3control.describe_job().account_id(ACCOUNT).job_id(&id).send().await?;
        let job = out.job.expect("DescribeJob answers the job");
        if matches!(job.status(), Some(JobStatus::Complete | JobStatus::Failed)) {
            break job;
        }
        assert!(std::time::Instant::now() < deadline, "job {id} still {:?}", job.status());
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert_eq!(job.status(), Some(&JobStatus::Complete));
    let progress = job.progress_summary().expect("a progress summary");
    assert_eq!((progress.total_number_of_tasks(), progress.number_of_tasks_succeeded()), (Some(12), Some(12)));
    assert!(job.creation_time().is_some() && job.termination_date() >= job.creation_time());
    assert_eq!(job.job_arn(), Some(format!("arn:aws:s3:us-east-1:{ACCOUNT}:job/{id}").as_str()));
    let (_, rows) = sys.report(&rep, "reports", &id).await?;
    assert_eq!(rows.len(), 12);

    let listed = s3control.list_jobs().account_id(ACCOUNT).send().await?;
    assert_eq!(listed.jobs().iter().filter_map(|j| j.job_id()).collect::<Vec<_>>(), [id.as_str()]);
    let missing = s3control.describe_job().account_id(ACCOUNT).job_id(uuid::Uuid::new_v4().to_string()).send().await;
    let err = missing.expect_err("no such job").into_service_error();
    assert!(matches!(err, DescribeJobError::NotFoundException(_)), "{err:?}");
    sys.stop().await;
    Ok(())
}

#[tokio::test]
async fn the_batchops_client_acts_for_one_account_or_sees_them_all() -> Result<()> {
    // `batchops --account-id` sends x-amz-account-id and asks for JSON
    let sys = System::start(Settings::default(), 1).await?;
    let [man, rep] = sys.buckets(["man", "rep"]).await?;
    let etag = sys.put(&man, "m.csv", format!("{man},m.csv\n")).await?;
    let mut spec = batchops_e2e::spec(serde_json::json!({"S3DeleteObjectTagging": {}}), &man, "m.csv", &etag, &rep);
    spec.as_object_mut().map(|s| s.remove("AccountId"));
    let mine = sys.api.clone().for_account(Some(ACCOUNT.into()));
    let theirs = sys.api.clone().for_account(Some("333333333333".into()));
    let id = mine.create_job(&spec).await?;
    assert_eq!(mine.describe_job(&id).await?["Job"]["JobArn"], format!("arn:aws:s3:us-east-1:{ACCOUNT}:job/{id}"));
    let missing = theirs.describe_job(&id).await.expect_err("another account's job");
    assert!(missing.to_string().contains("NotFoundException"), "{missing}");
    assert_eq!(theirs.list_jobs(&[], None, None).await?["Jobs"], serde_json::json!([]));
    let all = sys.api.list_jobs(&[], None, None).await?;
    assert!(all["Jobs"].as_array().unwrap().iter().any(|j| j["JobId"] == id.as_str()), "{all}");
    sys.stop().await;
    Ok(())
}
