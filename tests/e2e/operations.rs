//! Every operation end to end through `batchops local` on moto: the objects are checked
//! afterwards and the report row by row.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, Destination, ObjectLockLegalHoldStatus,
    ReplicationConfiguration, ReplicationRule, ReplicationRuleFilter, ReplicationRuleStatus, StorageClass,
};
use base64::Engine;
use batchops_aws::OpsSettings;
use batchops_core::manifest::encode_key;
use batchops_core::pipeline::Settings;
use batchops_e2e::{columns, spec, System};
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(300);
const MIB: usize = 1024 * 1024;

/// A finished job: its descriptor and its report rows by key (as the manifest spelled it).
struct Ran {
    job: Value,
    rows: HashMap<String, Vec<String>>,
}

impl Ran {
    fn row(&self, key: &str) -> &Vec<String> {
        self.rows.get(&encode_key(key)).unwrap_or_else(|| panic!("no report row for {key}: {:?}", self.rows.keys()))
    }

    fn status(&self) -> &str {
        self.job["Status"].as_str().unwrap_or_default()
    }
}

/// Runs `op` over `rows` ((bucket, key, version)), waits for the end, reads the report.
async fn run(sys: &System, op: Value, rows: &[(String, String, Option<String>)]) -> Result<Ran> {
    let man = sys.bucket("man");
    let rep = sys.bucket("rep");
    for b in [&man, &rep] {
        if sys.clients.s3.head_bucket().bucket(b.as_str()).send().await.is_err() {
            sys.create_bucket(b).await?;
        }
    }
    let versioned = rows.iter().any(|r| r.2.is_some());
    let body: String = rows
        .iter()
        .map(|(b, k, v)| match (versioned, v) {
            (true, Some(v)) => format!("{b},{},{v}\n", encode_key(k)),
            (true, None) => format!("{b},{},\n", encode_key(k)),
            _ => format!("{b},{}\n", encode_key(k)),
        })
        .collect();
    let key = format!("m-{}.csv", uuid::Uuid::new_v4());
    let etag = sys.put(&man, &key, body).await?;
    let mut s = spec(op, &man, &key, &etag, &rep);
    if versioned {
        s["Manifest"]["Spec"]["Fields"] = json!(["Bucket", "Key", "VersionId"]);
    }
    let id = sys.api.create_job(&s).await?;
    let job = sys.wait_for(&id, &["Complete", "Failed", "Cancelled"], LONG).await?;
    let mut out = HashMap::new();
    if job["ProgressSummary"]["NumberOfTasksSucceeded"].as_u64().unwrap_or(0)
        + job["ProgressSummary"]["NumberOfTasksFailed"].as_u64().unwrap_or(0)
        > 0
    {
        let (_, report) = sys.report(&rep, "reports", &id).await?;
        for (_, line) in report {
            let c = columns(&line);
            assert!(out.insert(c[1].clone(), c).is_none(), "one row per key");
        }
    }
    Ok(Ran { job, rows: out })
}

fn on(bucket: &str, keys: &[&str]) -> Vec<(String, String, Option<String>)> {
    keys.iter().map(|k| (bucket.to_string(), k.to_string(), None)).collect()
}

async fn put_with(sys: &System, bucket: &str, key: &str, body: Vec<u8>) -> Result<()> {
    sys.clients
        .s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .content_type("text/plain")
        .metadata("origin", "batchops-tests")
        .tagging("team=data&stage=raw")
        .send()
        .await?;
    Ok(())
}

async fn tags(sys: &System, bucket: &str, key: &str) -> Result<BTreeMap<String, String>> {
    let out = sys.clients.s3.get_object_tagging().bucket(bucket).key(key).send().await?;
    Ok(out.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_object_acl_with_a_canned_acl_and_with_grants() -> Result<()> {
    let sys = System::start(Settings::default(), 2).await?;
    let [src] = sys.buckets(["src"]).await?;
    for k in ["a", "b c+"] {
        put_with(&sys, &src, k, b"x".to_vec()).await?;
    }
    let ran = run(
        &sys,
        json!({"S3PutObjectAcl": {"AccessControlPolicy": {"CannedAccessControlList": "public-read"}}}),
        &on(&src, &["a", "b c+", "missing"]),
    )
    .await?;
    assert_eq!(ran.status(), "Complete");
    assert_eq!(ran.row("a")[3..6], ["succeeded", "200", ""]);
    assert_eq!(ran.row("missing")[3..6], ["failed", "404", "NoSuchKey"]);
    let acl = sys.clients.s3.get_object_acl().bucket(&src).key("b c+").send().await?;
    let all_users = acl.grants().iter().any(|g| {
        g.grantee().and_then(|g| g.uri()) == Some("http://acs.amazonaws.com/groups/global/AllUsers")
            && g.permission().map(|p| p.as_str()) == Some("READ")
    });
    assert!(all_users, "public-read on b c+: {:?}", acl.grants());

    let owner = acl.owner().and_then(|o| o.id()).context("owner")?.to_string();
    let policy = json!({"S3PutObjectAcl": {"AccessControlPolicy": {"AccessControlList": {
        "Owner": {"ID": owner},
        "Grants": [
            {"Grantee": {"TypeIdentifier": "id", "Identifier": owner}, "Permission": "FULL_CONTROL"},
            {"Grantee": {"TypeIdentifier": "uri", "Identifier": "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"}, "Permission": "READ_ACP"}
        ]
    }}}});
    let ran = run(&sys, policy, &on(&src, &["a"])).await?;
    assert_eq!(ran.row("a")[3], "succeeded");
    let acl = sys.clients.s3.get_object_acl().bucket(&src).key("a").send().await?;
    let perms: Vec<(Option<&str>, &str)> = acl
        .grants()
        .iter()
        .map(|g| (g.grantee().and_then(|g| g.uri()), g.permission().map(|p| p.as_str()).unwrap_or_default()))
        .collect();
    assert!(
        perms.contains(&(Some("http://acs.amazonaws.com/groups/global/AuthenticatedUsers"), "READ_ACP")),
        "{perms:?}"
    );
    assert!(!perms.iter().any(|(u, _)| u.is_some_and(|u| u.ends_with("AllUsers"))), "the ACL was replaced: {perms:?}");
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_start_for_archived_objects_and_fail_with_s3s_code_for_others() -> Result<()> {
    let sys = System::start(Settings::default(), 2).await?;
    let [src, rep] = sys.buckets(["src", "rep"]).await?;
    for k in ["cold/1", "cold/2"] {
        sys.clients
            .s3
            .put_object()
            .bucket(&src)
            .key(k)
            .body(ByteStream::from_static(b"archived"))
            .storage_class(StorageClass::Glacier)
            .send()
            .await?;
    }
    sys.put(&src, "warm", "standard").await?;
    let op = json!({"S3InitiateRestoreObject": {"ExpirationInDays": 2, "GlacierJobTier": "BULK"}});
    let ran = run(&sys, op, &on(&src, &["cold/1", "cold/2", "warm"])).await?;
    assert_eq!(ran.status(), "Complete");
    for k in ["cold/1", "cold/2"] {
        assert_eq!(ran.row(k)[3], "succeeded", "{k}");
        let head = sys.clients.s3.head_object().bucket(&src).key(k).send().await?;
        assert!(head.restore().is_some(), "restore requested for {k}");
    }
    assert_eq!(ran.row("warm")[3..6], ["failed", "403", "InvalidObjectState"]);

    // EXPEDITED is refused at intake, naming the field.
    let etag = sys.put(&sys.bucket("man"), "x.csv", format!("{src},cold/1\n")).await?;
    let bad = spec(
        json!({"S3InitiateRestoreObject": {"GlacierJobTier": "EXPEDITED"}}),
        &sys.bucket("man"),
        "x.csv",
        &etag,
        &rep,
    );
    let err = sys.api.create_job(&bad).await.unwrap_err().to_string();
    assert!(err.contains("Operation.S3InitiateRestoreObject.GlacierJobTier"), "{err}");
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_and_legal_hold_need_object_lock_on_the_bucket() -> Result<()> {
    let sys = System::start(Settings::default(), 2).await?;
    let locked = sys.bucket("locked");
    sys.clients.s3.create_bucket().bucket(&locked).object_lock_enabled_for_bucket(true).send().await?;
    let [plain] = sys.buckets(["plain"]).await?;
    for k in ["r/1", "r/2"] {
        sys.put(&locked, k, "kept").await?;
        sys.put(&plain, k, "kept").await?;
    }
    let until = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(3 * 24);
    let until_text = until.to_string();
    let op = json!({"S3PutObjectRetention": {"Retention": {"Mode": "GOVERNANCE", "RetainUntilDate": until_text}}});
    let ran = run(&sys, op.clone(), &on(&locked, &["r/1", "r/2"])).await?;
    assert_eq!(ran.status(), "Complete");
    for k in ["r/1", "r/2"] {
        assert_eq!(ran.row(k)[3], "succeeded");
        let head = sys.clients.s3.head_object().bucket(&locked).key(k).send().await?;
        assert_eq!(head.object_lock_mode().map(|m| m.as_str()), Some("GOVERNANCE"), "{k}");
        let date = head.object_lock_retain_until_date().context("retain until")?;
        assert!((date.secs() - until.as_second()).abs() <= 1, "{date:?} vs {until}");
    }
    let hold = json!({"S3PutObjectLegalHold": {"LegalHold": {"Status": "ON"}}});
    let ran = run(&sys, hold.clone(), &on(&locked, &["r/1"])).await?;
    assert_eq!(ran.row("r/1")[3], "succeeded");
    let h = sys.clients.s3.get_object_legal_hold().bucket(&locked).key("r/1").send().await?;
    assert_eq!(h.legal_hold().and_then(|h| h.status()), Some(&ObjectLockLegalHoldStatus::On));

    // A bucket without Object Lock fails the job before any task runs.
    for op in [op, hold] {
        let ran = run(&sys, op, &on(&plain, &["r/1", "r/2"])).await?;
        assert_eq!(ran.status(), "Failed");
        assert_eq!(ran.job["FailureReasons"][0]["FailureCode"], "ObjectLockNotEnabled");
        assert!(ran.job["FailureReasons"][0]["FailureReason"].as_str().unwrap_or_default().contains(&plain));
        assert_eq!(ran.job["ProgressSummary"]["NumberOfTasksSucceeded"], 0);
        assert!(ran.rows.is_empty(), "no task ran");
    }
    sys.stop().await;
    Ok(())
}

/// Independent implementations: the `crc` crate, RustCrypto's hashes.
fn expected_digest(algorithm: &str, data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    match algorithm {
        "CRC32" => crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(data).to_be_bytes().to_vec(),
        "CRC32C" => crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(data).to_be_bytes().to_vec(),
        "CRC64NVME" => crc::Crc::<u64>::new(&crc::CRC_64_NVME).checksum(data).to_be_bytes().to_vec(),
        "SHA1" => sha1::Sha1::digest(data).to_vec(),
        "SHA256" => sha2::Sha256::digest(data).to_vec(),
        "MD5" => md5::Md5::digest(data).to_vec(),
        other => panic!("{other}"),
    }
}

fn b64(d: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksums_match_independent_implementations_full_and_composite() -> Result<()> {
    let sys = System::start(Settings::default(), 2).await?;
    let [src] = sys.buckets(["src"]).await?;
    let small: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
    put_with(&sys, &src, "small", small.clone()).await?;
    // A multipart object: parts of 5 MiB and 1 KiB.
    let parts: Vec<Vec<u8>> = vec![(0..5 * MIB).map(|i| (i % 253) as u8).collect(), vec![7u8; 1024]];
    let up = sys.clients.s3.create_multipart_upload().bucket(&src).key("multi").send().await?;
    let upload_id = up.upload_id().context("upload id")?;
    let mut done = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let out = sys
            .clients
            .s3
            .upload_part()
            .bucket(&src)
            .key("multi")
            .upload_id(upload_id)
            .part_number(i as i32 + 1)
            .body(ByteStream::from(p.clone()))
            .send()
            .await?;
        done.push(CompletedPart::builder().part_number(i as i32 + 1).set_e_tag(out.e_tag().map(String::from)).build());
    }
    sys.clients
        .s3
        .complete_multipart_upload()
        .bucket(&src)
        .key("multi")
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(done)).build())
        .send()
        .await?;
    let whole: Vec<u8> = parts.concat();

    let mut jobs = Vec::new();
    for alg in ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256", "MD5"] {
        jobs.push((alg, "FULL_OBJECT"));
    }
    jobs.push(("CRC32", "COMPOSITE"));
    jobs.push(("SHA256", "COMPOSITE"));
    for (alg, kind) in jobs {
        let op = json!({"S3ComputeObjectChecksum": {"ChecksumAlgorithm": alg, "ChecksumType": kind}});
        let ran = run(&sys, op, &on(&src, &["small", "multi", "missing"])).await?;
        assert_eq!(ran.status(), "Complete", "{alg} {kind}");
        assert_eq!(ran.row("missing")[3..6], ["failed", "404", "NoSuchKey"]);
        let got = |key: &str| -> Value { serde_json::from_str(&ran.row(key)[6]).unwrap() };
        let small_msg = got("small");
        assert_eq!(small_msg["checksum_base64"], b64(&expected_digest(alg, &small)), "{alg} {kind} small");
        assert_eq!(small_msg["checksum_hex"], hex::encode(expected_digest(alg, &small)));
        assert_eq!(
            (small_msg["checksumAlgorithm"].as_str(), small_msg["checksumType"].as_str()),
            (Some(alg), Some(kind))
        );
        let expected_multi = match kind {
            "FULL_OBJECT" => b64(&expected_digest(alg, &whole)),
            _ => {
                let joined: Vec<u8> = parts.iter().flat_map(|p| expected_digest(alg, p)).collect();
                format!("{}-2", b64(&expected_digest(alg, &joined)))
            }
        };
        assert_eq!(got("multi")["checksum_base64"], expected_multi, "{alg} {kind} multi");
    }
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_encryption_keeps_metadata_tags_storage_class_and_acl() -> Result<()> {
    let ops = OpsSettings { multipart_threshold: 6 * MIB as u64, part_size: 5 * MIB as u64, ..OpsSettings::default() };
    let sys = System::start_with(Settings::default(), ops, 2).await?;
    let [src] = sys.buckets(["src"]).await?;
    let big: Vec<u8> = (0..12 * MIB).map(|i| (i % 241) as u8).collect();
    for (k, body) in [("small", b"tiny".to_vec()), ("big", big.clone())] {
        sys.clients
            .s3
            .put_object()
            .bucket(&src)
            .key(k)
            .body(ByteStream::from(body))
            .content_type("text/csv")
            .metadata("origin", "tests")
            .tagging("team=data")
            .storage_class(StorageClass::StandardIa)
            .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
            .send()
            .await?;
    }
    let key_arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let op = json!({"S3UpdateObjectEncryption": {"ObjectEncryption": {"SSEKMS": {"KMSKeyArn": key_arn, "BucketKeyEnabled": true}}}});
    let ran = run(&sys, op, &on(&src, &["small", "big"])).await?;
    assert_eq!(ran.status(), "Complete", "{}", ran.job);
    for k in ["small", "big"] {
        assert_eq!(ran.row(k)[3], "succeeded", "{:?}", ran.row(k));
        let head = sys.clients.s3.head_object().bucket(&src).key(k).send().await?;
        assert_eq!(head.server_side_encryption().map(|s| s.as_str()), Some("aws:kms"), "{k}");
        assert_eq!(head.ssekms_key_id(), Some(key_arn), "{k}");
        if k == "small" {
            // moto does not record BucketKeyEnabled on multipart uploads (S3 does).
            assert_eq!(head.bucket_key_enabled(), Some(true), "{k}");
        }
        assert_eq!(head.content_type(), Some("text/csv"), "{k}");
        assert_eq!(head.metadata().and_then(|m| m.get("origin")).map(String::as_str), Some("tests"), "{k}");
        assert_eq!(head.storage_class(), Some(&StorageClass::StandardIa), "{k}");
        assert_eq!(tags(&sys, &src, k).await?.get("team").map(String::as_str), Some("data"), "{k}");
        let acl = sys.clients.s3.get_object_acl().bucket(&src).key(k).send().await?;
        assert!(
            acl.grants().iter().any(|g| g.grantee().and_then(|g| g.uri()).is_some_and(|u| u.ends_with("AllUsers"))),
            "ACL kept on {k}"
        );
    }
    assert_eq!(sys.get(&src, "big").await?, big, "the multipart in-place copy kept every byte");
    let msg: Value = serde_json::from_str(&ran.row("big")[6])?;
    assert_eq!(msg["Parts"], 3);
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_copies_to_each_destination_of_the_matching_rules() -> Result<()> {
    let sys = System::start(Settings::default(), 2).await?;
    let [src, a, b, c] = sys.buckets(["src", "dst-a", "dst-b", "dst-c"]).await?;
    for bkt in [&src, &a, &b, &c] {
        sys.enable_versioning(bkt).await?;
    }
    let rule = |id: &str, priority: i32, dest: &str, enabled: bool, class: Option<StorageClass>| {
        ReplicationRule::builder()
            .id(id)
            .priority(priority)
            .status(if enabled { ReplicationRuleStatus::Enabled } else { ReplicationRuleStatus::Disabled })
            .filter(ReplicationRuleFilter::builder().prefix("").build())
            .delete_marker_replication(
                aws_sdk_s3::types::DeleteMarkerReplication::builder()
                    .status(aws_sdk_s3::types::DeleteMarkerReplicationStatus::Disabled)
                    .build(),
            )
            .destination(
                Destination::builder().bucket(format!("arn:aws:s3:::{dest}")).set_storage_class(class).build().unwrap(),
            )
            .build()
            .unwrap()
    };
    let config = ReplicationConfiguration::builder()
        .role("arn:aws:iam::123456789012:role/replication")
        .rules(rule("to-a", 1, &a, true, None))
        .rules(rule("to-b", 2, &b, true, Some(StorageClass::StandardIa)))
        .rules(rule("to-c", 3, &c, false, None))
        .build()?;
    sys.clients.s3.put_bucket_replication().bucket(&src).replication_configuration(config).send().await?;
    let keys = ["logs/1", "data/ü 2"];
    let mut rows = Vec::new();
    for k in keys {
        put_with(&sys, &src, k, format!("body {k}").into_bytes()).await?;
        let v = sys.clients.s3.head_object().bucket(&src).key(k).send().await?.version_id().map(String::from);
        rows.push((src.clone(), k.to_string(), v));
    }
    let ran = run(&sys, json!({"S3ReplicateObject": {}}), &rows).await?;
    assert_eq!(ran.status(), "Complete", "{}", ran.job);
    for k in keys {
        let msg: Value = serde_json::from_str(&ran.row(k)[6])?;
        let dests: Vec<&str> =
            msg["Replicated"].as_array().unwrap().iter().map(|d| d["Bucket"].as_str().unwrap()).collect();
        assert_eq!(dests, [a.as_str(), b.as_str()], "{k}");
        for d in [&a, &b] {
            assert_eq!(sys.get(d, k).await?, format!("body {k}").into_bytes(), "{k} in {d}");
            assert_eq!(tags(&sys, d, k).await?.get("team").map(String::as_str), Some("data"));
        }
        let head_b = sys.clients.s3.head_object().bucket(&b).key(k).send().await?;
        assert_eq!(head_b.storage_class(), Some(&StorageClass::StandardIa), "the rule's storage class");
        assert!(
            sys.clients.s3.head_object().bucket(&c).key(k).send().await.is_err(),
            "the disabled rule copied nothing"
        );
    }
    // A bucket without replication configuration fails the job with a reason.
    let ran = run(&sys, json!({"S3ReplicateObject": {}}), &on(&a, &["logs/1"])).await?;
    assert_eq!(ran.status(), "Failed");
    assert_eq!(ran.job["FailureReasons"][0]["FailureCode"], "ReplicationConfigurationNotFound");
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_copies_go_multipart_and_keep_metadata_tags_storage_class_and_checksums() -> Result<()> {
    let ops = OpsSettings { multipart_threshold: 6 * MIB as u64, part_size: 5 * MIB as u64, ..OpsSettings::default() };
    let sys = System::start_with(Settings::default(), ops, 2).await?;
    let [src, dst] = sys.buckets(["src", "dst"]).await?;
    let big: Vec<u8> = (0..(12 * MIB + 321)).map(|i| (i % 239) as u8).collect();
    sys.clients
        .s3
        .put_object()
        .bucket(&src)
        .key("big file")
        .body(ByteStream::from(big.clone()))
        .content_type("application/x-test")
        .cache_control("max-age=60")
        .metadata("origin", "tests")
        .tagging("team=data&size=big")
        .storage_class(StorageClass::StandardIa)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await?;
    put_with(&sys, &src, "small", b"small".to_vec()).await?;
    let op = json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{dst}")}});
    let ran = run(&sys, op, &on(&src, &["big file", "small", "missing"])).await?;
    assert_eq!(ran.status(), "Complete");
    assert_eq!(ran.row("missing")[3..6], ["failed", "404", "NoSuchKey"]);
    let msg: Value = serde_json::from_str(&ran.row("big file")[6])?;
    assert_eq!(msg["Parts"], 3, "{msg}");
    assert_eq!(sys.get(&dst, "big file").await?, big);
    let head =
        sys.clients.s3.head_object().bucket(&dst).key("big file").checksum_mode(ChecksumMode::Enabled).send().await?;
    assert_eq!(head.content_type(), Some("application/x-test"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(head.metadata().and_then(|m| m.get("origin")).map(String::as_str), Some("tests"));
    assert_eq!(head.storage_class(), Some(&StorageClass::StandardIa));
    assert!(head.checksum_crc32().is_some(), "the copy has a CRC32 checksum like its source");
    let t = tags(&sys, &dst, "big file").await?;
    assert_eq!(t, BTreeMap::from([("size".into(), "big".into()), ("team".into(), "data".into())]));
    assert_eq!(sys.get(&dst, "small").await?, b"small");
    let uploads = sys.clients.s3.list_multipart_uploads().bucket(&dst).send().await?;
    assert!(uploads.uploads().is_empty(), "no multipart upload left");
    sys.stop().await;

    // Out of time: the copy fails with a reason and its upload is aborted.
    let ops = OpsSettings { multipart_threshold: 6 * MIB as u64, part_size: 5 * MIB as u64, ..OpsSettings::default() };
    let sys = System::start_executing(Settings::default(), ops, 2, Some(Duration::ZERO)).await?;
    let [src, dst] = sys.buckets(["src", "dst"]).await?;
    sys.clients.s3.put_object().bucket(&src).key("big").body(ByteStream::from(big)).send().await?;
    let op = json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{dst}")}});
    let ran = run(&sys, op, &on(&src, &["big"])).await?;
    let row = ran.row("big");
    assert_eq!(row[3..6], ["failed", "500", "TimeBudgetExceeded"], "{row:?}");
    assert!(row[6].contains("time budget") && row[6].contains("aborted"), "{}", row[6]);
    let uploads = sys.clients.s3.list_multipart_uploads().bucket(&dst).send().await?;
    assert!(uploads.uploads().is_empty(), "the upload was aborted: {:?}", uploads.uploads());
    assert!(sys.clients.s3.head_object().bucket(&dst).key("big").send().await.is_err());
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_object_batches_keys_and_reports_each_one() -> Result<()> {
    let sys = System::start(Settings { chunk_size: 1500, ..Settings::default() }, 2).await?;
    let [src, other] = sys.buckets(["src", "other"]).await?;
    let keys: Vec<String> = (0..1200).map(|i| format!("d/{i} é")).collect();
    let mut set = tokio::task::JoinSet::new();
    for k in keys.iter().cloned() {
        let (s3, b) = (sys.clients.s3.clone(), src.clone());
        set.spawn(async move { s3.put_object().bucket(b).key(k).body(ByteStream::from_static(b"x")).send().await });
        if set.len() >= 16 {
            set.join_next().await.context("join")???;
        }
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    sys.put(&other, "keep-me-not", "x").await?;
    let mut rows: Vec<(String, String, Option<String>)> = keys.iter().map(|k| (src.clone(), k.clone(), None)).collect();
    rows.push((other.clone(), "keep-me-not".into(), None));
    rows.push((src.clone(), "never-existed".into(), None));
    let ran = run(&sys, json!({"S3DeleteObject": {}}), &rows).await?;
    assert_eq!(ran.status(), "Complete");
    assert_eq!(ran.rows.len(), 1202);
    assert!(ran.rows.values().all(|r| r[3] == "succeeded"), "every key deleted");
    let left = sys.clients.s3.list_objects_v2().bucket(&src).send().await?;
    assert_eq!(left.key_count(), Some(0));
    assert!(sys.clients.s3.head_object().bucket(&other).key("keep-me-not").send().await.is_err());

    // Versions: deleting a version removes it; a version under legal hold fails on its own.
    let locked = sys.bucket("locked");
    sys.clients.s3.create_bucket().bucket(&locked).object_lock_enabled_for_bucket(true).send().await?;
    let mut rows = Vec::new();
    for k in ["v/free", "v/held"] {
        let out = sys.clients.s3.put_object().bucket(&locked).key(k).body(ByteStream::from_static(b"v")).send().await?;
        rows.push((locked.clone(), k.to_string(), out.version_id().map(String::from)));
    }
    sys.clients
        .s3
        .put_object_legal_hold()
        .bucket(&locked)
        .key("v/held")
        .legal_hold(aws_sdk_s3::types::ObjectLockLegalHold::builder().status(ObjectLockLegalHoldStatus::On).build())
        .send()
        .await?;
    let ran = run(&sys, json!({"S3DeleteObject": {}}), &rows).await?;
    assert_eq!(ran.row("v/free")[3], "succeeded");
    assert_eq!(ran.row("v/free")[2], rows[0].2.clone().unwrap_or_default(), "the version column");
    assert_eq!(ran.row("v/held")[3..6], ["failed", "403", "AccessDenied"]);
    let versions = sys.clients.s3.list_object_versions().bucket(&locked).send().await?;
    let left: Vec<&str> = versions.versions().iter().filter_map(|v| v.key()).collect();
    assert_eq!(left, ["v/held"]);
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_tagging_adds_to_the_tags_an_object_has() -> Result<()> {
    let sys = System::start(Settings::default(), 2).await?;
    let [src] = sys.buckets(["src"]).await?;
    put_with(&sys, &src, "two tags", b"x".to_vec()).await?;
    let nine: String = (0..9).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join("&");
    sys.clients
        .s3
        .put_object()
        .bucket(&src)
        .key("nine")
        .body(ByteStream::from_static(b"x"))
        .tagging(nine)
        .send()
        .await?;
    let op = json!({"S3PutObjectTagging": {"TaggingMode": "MERGE",
        "TagSet": [{"Key": "stage", "Value": "clean"}, {"Key": "owner", "Value": "platform"}]}});
    let ran = run(&sys, op, &on(&src, &["two tags", "nine"])).await?;
    assert_eq!(ran.row("two tags")[3], "succeeded");
    assert_eq!(
        tags(&sys, &src, "two tags").await?,
        BTreeMap::from([
            ("owner".into(), "platform".into()),
            ("stage".into(), "clean".into()),
            ("team".into(), "data".into())
        ])
    );
    let row = ran.row("nine");
    assert_eq!(row[3..6], ["failed", "400", "BadRequest"]);
    assert!(row[6].contains("11 tags") && row[6].contains("limit of 10"), "{}", row[6]);
    assert_eq!(tags(&sys, &src, "nine").await?.len(), 9, "left as it was");
    sys.stop().await;
    Ok(())
}

/// `LambdaInvoke` against the example function served by `cargo lambda watch` (started by
/// `make test` at `BATCHOPS_TEST_LAMBDA_ENDPOINT`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_invoke_with_schema_1_0_and_2_0() -> Result<()> {
    std::env::var("BATCHOPS_TEST_LAMBDA_ENDPOINT")
        .context("BATCHOPS_TEST_LAMBDA_ENDPOINT is not set: `make test` starts `cargo lambda watch` and sets it")?;
    let mut settings = Settings::default();
    settings.retry.max_attempts = 3;
    settings.retry.base_delay = Duration::from_millis(10);
    let sys = System::start(settings, 2).await?;
    let [src] = sys.buckets(["src"]).await?;
    let keys = ["ok/a b+c é.txt", "permanent/x", "temporary/x", "flaky/x", "panic/x", "omit/x"];
    let function = "batchops-example-lambda";
    let ran = run(&sys, json!({"LambdaInvoke": {"FunctionArn": function}}), &on(&src, &keys)).await?;
    assert_eq!(ran.status(), "Complete", "{}", ran.job);
    let ok: Value = serde_json::from_str(&ran.row("ok/a b+c é.txt")[6])?;
    assert_eq!(ok["key"], "ok/a b+c é.txt", "the function decoded the URL-encoded key");
    assert_eq!(ok["bucket"], src, "schema 1.0: bucket from s3BucketArn");
    assert_eq!(ran.row("ok/a b+c é.txt")[3..6], ["succeeded", "200", ""]);
    assert_eq!(ran.row("permanent/x")[3..6], ["failed", "200", "PermanentFailure"]);
    assert!(ran.row("permanent/x")[6].contains("not something this function handles"));
    let temporary = ran.row("temporary/x");
    assert_eq!(temporary[3..6], ["failed", "200", "TemporaryFailure"]);
    assert!(temporary[6].ends_with("(attempt 3)"), "redriven up to the bound: {}", temporary[6]);
    let flaky: Value = serde_json::from_str(&ran.row("flaky/x")[6])?;
    assert_eq!(flaky["attempt"], 2, "a temporary failure redriven once then succeeded");
    let panic = ran.row("panic/x");
    assert_eq!(panic[3..6], ["failed", "200", "PermanentFailure"]);
    assert!(
        panic[6].starts_with("Lambda returned function error: ") && panic[6].contains("refusing to handle panic/x"),
        "{}",
        panic[6]
    );
    assert_eq!(
        ran.row("omit/x")[3..6],
        ["failed", "200", "TemporaryFailure"],
        "treatMissingKeysAs defaults to TemporaryFailure"
    );

    let op = json!({"LambdaInvoke": {"FunctionArn": function, "InvocationSchemaVersion": "2.0",
        "UserArguments": {"treatMissingKeysAs": "PermanentFailure", "purpose": "tests"}}});
    let ran = run(&sys, op, &on(&src, &["ok/a b+c é.txt", "omit/x"])).await?;
    let ok: Value = serde_json::from_str(&ran.row("ok/a b+c é.txt")[6])?;
    assert_eq!((ok["bucket"].as_str(), ok["userArguments"]["purpose"].as_str()), (Some(src.as_str()), Some("tests")));
    assert_eq!(ok["jobId"], ran.job["JobId"]);
    assert_eq!(ran.row("omit/x")[3..6], ["failed", "200", "PermanentFailure"]);
    sys.stop().await;
    Ok(())
}
