use serde_json::{json, Map, Value};

use super::convert::{request_json, response_xml};
use super::model::{element_name, Model, ShapeType};
use batchops_core::spec;

fn model() -> &'static Model {
    Model::get()
}

/// The XML request S3's SDKs would send for the JSON body `v` (the model's encoding).
fn create_job_xml(v: &Value) -> String {
    response_xml(model(), "CreateJobRequest", v)
}

fn round_trip(v: &Value) -> Value {
    request_json(model(), "CreateJobRequest", "CreateJobRequest", &create_job_xml(v)).unwrap()
}

#[test]
fn every_example_spec_survives_xml_both_ways() {
    // Every member an example uses, S3's and batchops' (S3DeleteObject, TaggingMode, DryRun,
    // MaxTasksPerSecond), has a shape in the model: written as XML and read back, each spec is
    // the same JSON (AccountId aside: S3 Control sends it in the x-amz-account-id header).
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/specs");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        spec.as_object_mut().unwrap().remove("AccountId");
        assert_eq!(round_trip(&spec), spec, "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 15, "{seen} examples");
    let fixture: Value = serde_json::from_str(include_str!("../../fixtures/create-job.json")).unwrap();
    let xml = create_job_xml(&fixture);
    assert!(xml.contains("<Fields><member>Bucket</member><member>Key</member></Fields>"), "{xml}");
    assert!(!xml.contains("AccountId"), "a header member is not in the body: {xml}");
}

#[test]
fn the_model_names_of_elements_are_used_not_the_members() {
    // SSES3 is written <SSE-S3>, MatchAnyObjectEncryption's items <ObjectEncryption>.
    let generator = json!({"S3JobManifestGenerator": {
        "SourceBucket": "arn:aws:s3:::src", "EnableManifestOutput": true,
        "ManifestOutputLocation": {"Bucket": "arn:aws:s3:::out", "ManifestFormat": "S3InventoryReport_CSV_V1",
                                   "ManifestEncryption": {"SSES3": {}}},
        "Filter": {"MatchAnyObjectEncryption": [{"SSEKMS": {"KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/k"}}],
                   "CreatedAfter": "-P1D", "ObjectSizeGreaterThanBytes": 10}}});
    let spec = json!({"ManifestGenerator": generator, "Operation": {"S3PutObjectCopy": {
        "TargetResource": "arn:aws:s3:::dst", "NewObjectMetadata": {"UserMetadata": {"team": "data", "a&b": "<1>"}}}}});
    let xml = create_job_xml(&spec);
    for part in [
        "<SSE-S3></SSE-S3>",
        "<MatchAnyObjectEncryption><ObjectEncryption><SSE-KMS>",
        "<UserMetadata><entry><key>a&amp;b</key><value>&lt;1&gt;</value></entry>",
        "<ObjectSizeGreaterThanBytes>10</ObjectSizeGreaterThanBytes>",
    ] {
        assert!(xml.contains(part), "{part} in {xml}");
    }
    assert_eq!(round_trip(&spec), spec);
}

#[test]
fn bad_xml_is_refused_naming_the_member() {
    let parse =
        |body: &str| request_json(model(), "CreateJobRequest", "CreateJobRequest", body).unwrap_err().to_string();
    let ns = super::model::NAMESPACE;
    let e = parse(&format!("<CreateJobRequest xmlns=\"{ns}\"><Priority>high</Priority></CreateJobRequest>"));
    assert!(e.starts_with("Priority: 'high' is not an integer"), "{e}");
    let e = parse("<CreateJobRequest><Report><Enabled>yes</Enabled></Report></CreateJobRequest>");
    assert!(e.starts_with("Report.Enabled: 'yes' is not true or false"), "{e}");
    let e = parse("<CreateJobRequest><Operation><S3PutObjectCopy><Colour>red</Colour></S3PutObjectCopy></Operation></CreateJobRequest>");
    assert!(e.starts_with("Operation.S3PutObjectCopy.Colour: is not a member of S3CopyObjectOperation"), "{e}");
    let e = parse("<CreateJobRequest><Tags><Tag><Key>a</Key></Tag></Tags></CreateJobRequest>");
    assert!(e.starts_with("Tags[0]: is <Tag>, not <member>"), "{e}");
    let e = parse("<CreateJobRequest><Priority>1</Priority><Priority>2</Priority></CreateJobRequest>");
    assert!(e.starts_with("Priority: is given twice"), "{e}");
    let e = parse("<PutJobTaggingRequest/>");
    assert!(e.contains("root element is <PutJobTaggingRequest>, not <CreateJobRequest>"), "{e}");
    let e = parse("<CreateJobRequest xmlns=\"urn:other\"/>");
    assert!(e.contains("namespace 'urn:other'"), "{e}");
    let e = parse("<CreateJobRequest><Priority>1</CreateJobRequest>");
    assert!(e.contains("not XML"), "{e}");
    let e = parse("<!DOCTYPE x [<!ENTITY a \"aaaa\">]><CreateJobRequest/>");
    assert!(e.contains("not XML"), "a DTD is refused: {e}");
    let deep =
        format!("<CreateJobRequest>{}{}</CreateJobRequest>", "<Operation>".repeat(40), "</Operation>".repeat(40));
    assert!(parse(&deep).contains("is not a member") || parse(&deep).contains("nests deeper"), "{}", parse(&deep));
}

#[test]
fn nesting_beyond_the_limit_is_refused_before_it_is_parsed() {
    // 4,000 levels (28 KB) overflowed the stack inside roxmltree and aborted `batchops local`
    // (issue 23); the scan refuses them first, naming where. Run on a thread with a quarter of
    // a tokio worker's stack, so that a recursion that came back would fail here too.
    let run = |body: String| {
        std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(move || {
                request_json(model(), "CreateJobRequest", "CreateJobRequest", &body).map_err(|e| e.to_string())
            })
            .unwrap()
            .join()
            .unwrap()
    };
    let nested = |levels: usize, open: &str, close: &str| {
        format!("<CreateJobRequest>{}{}</CreateJobRequest>", open.repeat(levels), close.repeat(levels))
    };
    for levels in [33, 4_000, 100_000] {
        let e = run(nested(levels, "<a>", "</a>")).unwrap_err();
        // The root at column 1, then 32 levels of `<a>` (3 bytes each): the 33rd starts at 115.
        assert!(e.contains("nests deeper than 32 elements at line 1, column 115"), "{levels}: {e}");
    }
    let e = run(format!("<CreateJobRequest>\n{}", "<a x='>'\n>".repeat(50))).unwrap_err();
    assert!(e.contains("nests deeper than 32 elements at line 34, column 2"), "a quoted > is no tag end: {e}");
    // Levels that close themselves, comments, CDATA and processing instructions are no levels;
    // 32 under the root pass the scan and meet the converter's own members check.
    let flat =
        format!("<CreateJobRequest>{}</CreateJobRequest>", "<a/><!--<b>--><![CDATA[<c>]]><?p <d>?>".repeat(5_000));
    assert!(run(flat).unwrap_err().contains("a: is not a member"));
    assert!(run(nested(32, "<a>", "</a>")).unwrap_err().contains("a: is not a member"));
    // Attribute values may hold no `<`: each one counts, and a self-closing tag after it does not fool it.
    let e = run(nested(40, "<a x='<b/>'>", "</a>")).unwrap_err();
    assert!(e.contains("not XML") || e.contains("nests deeper"), "{e}");
    let e = run("<!DOCTYPE x><CreateJobRequest/>".into()).unwrap_err();
    assert!(e.contains("a declaration (DTD) at line 1, column 1"), "{e}");
}

#[test]
fn operations_are_found_by_method_and_path_literals_first() {
    let m = model();
    let name = |method: &str, path: &str| m.operation_for(method, path).map(|o| o.name.as_str());
    assert_eq!(name("POST", "/v20180820/jobs"), Some("CreateJob"));
    assert_eq!(name("GET", "/v20180820/jobs"), Some("ListJobs"));
    assert_eq!(name("POST", "/v20180820/jobs/validate"), Some("ValidateJob"));
    assert_eq!(name("GET", "/v20180820/jobs/abc"), Some("DescribeJob"));
    assert_eq!(name("POST", "/v20180820/jobs/abc/status"), Some("UpdateJobStatus"));
    assert_eq!(name("DELETE", "/v20180820/jobs/abc/tagging"), Some("DeleteJobTagging"));
    assert_eq!(name("POST", "/v20180820/jobs/abc/rate"), Some("UpdateJobRate"));
    assert_eq!(name("GET", "/v20180820/nothing"), None);
}

#[test]
fn answers_are_written_in_the_output_shape_with_batchops_members_in_their_json_form() {
    let descriptor = json!({"Job": {
        "JobId": "j1", "Priority": 5, "ConfirmationRequired": false, "FailureReasons": [],
        "CreationTime": "2026-12-01T10:00:00Z",
        "ProgressSummary": {"TotalNumberOfTasks": 3, "Timers": {"ElapsedTimeInActiveSeconds": 2}},
        "StatusHistory": [{"Status": "New", "Time": "2026-12-01T10:00:00Z"}],
        "PreparationProgress": {"TasksPrepared": 3, "Files": [1, 2]},
        "Operation": {"S3DeleteObject": {}}}});
    let xml = response_xml(model(), "DescribeJobResult", &descriptor);
    for part in [
        "<DescribeJobResult xmlns=\"http://awss3control.amazonaws.com/doc/2018-08-20/\"><Job>",
        "<CreationTime>2026-12-01T10:00:00Z</CreationTime>",
        "<ConfirmationRequired>false</ConfirmationRequired>",
        "<FailureReasons></FailureReasons>",
        "<Timers><ElapsedTimeInActiveSeconds>2</ElapsedTimeInActiveSeconds></Timers>",
        "<StatusHistory><member><Status>New</Status>",
        "<PreparationProgress><Files><member>1</member><member>2</member></Files>",
        "<Operation><S3DeleteObject></S3DeleteObject></Operation>",
    ] {
        assert!(xml.contains(part), "{part} in {xml}");
    }
    let tricky = response_xml(model(), "DescribeJobResult", &json!({"Job": {"Description": "a\u{1}b\nc & 'd'"}}));
    assert!(tricky.contains("<Description>a\u{FFFD}b&#xA;c &amp; &apos;d&apos;</Description>"), "{tricky}");
    let parsed = roxmltree::Document::parse(&tricky).unwrap();
    assert_eq!(
        parsed.descendants().find(|n| n.has_tag_name("Description")).unwrap().text(),
        Some("a\u{FFFD}b\nc & 'd'")
    );
}

/// A value of every member of `shape` (lists of one, maps of one entry): what a client
/// filling every member S3's model has would send.
fn sample(m: &Model, shape: &str, depth: usize) -> Value {
    let s = m.shape(shape).unwrap_or_else(|| panic!("no shape {shape}"));
    match s.kind {
        ShapeType::Structure => {
            let mut out = Map::new();
            for (name, r) in s.members.iter().filter(|(_, r)| r.in_body()) {
                if depth < 12 {
                    out.insert(name.clone(), sample(m, &r.shape, depth + 1));
                }
            }
            Value::Object(out)
        }
        ShapeType::List => json!([sample(m, &s.member.as_ref().unwrap().shape, depth + 1)]),
        ShapeType::Map => json!({"k": sample(m, &s.value.as_ref().unwrap().shape, depth + 1)}),
        ShapeType::Boolean => json!(true),
        ShapeType::Integer | ShapeType::Long => json!(1),
        ShapeType::Float | ShapeType::Double => json!(1.5),
        ShapeType::Timestamp => json!("2026-01-01T00:00:00Z"),
        _ => json!(s.enum_values.first().cloned().unwrap_or_else(|| "sample".into())),
    }
}

/// A member the spec parser does not know, or reads as another type.
fn unhandled(e: &batchops_core::Error) -> bool {
    let m = e.to_string();
    m.contains("unknown field") || m.contains("invalid type")
}

/// Model members batchops refuses on purpose, each with an error naming it.
const REFUSED: &[&str] = &[
    "Operation.S3PutObjectCopy.AnnotationDirective",
    "Operation.S3PutObjectCopy.ObjectLockEventHold",
    "Operation.S3PutObjectCopy.ObjectLockEventHoldDuration",
    "Operation.S3PutObjectRetention.Retention.EventHold",
    "Operation.S3PutObjectRetention.Retention.EventHoldDuration",
];

#[test]
fn every_member_of_the_models_create_job_is_handled() {
    // GIVEN a CreateJob filling every member of S3's model, one operation and one manifest
    // generator alternative at a time
    let m = model();
    let job_ops = m.shape("JobOperation").unwrap();
    let union = |shape: &str| m.shape(shape).unwrap().members.keys().cloned().collect::<Vec<_>>();
    let (mut checked, mut missing) = (0, Vec::new());
    for op in job_ops.members.keys() {
        for generator in union("JobManifestGenerator") {
            let mut spec = sample(m, "CreateJobRequest", 0);
            let full_op = sample(m, &job_ops.members[op].shape, 1);
            spec["Operation"] = json!({ op: full_op });
            spec["ManifestGenerator"] = json!({ &generator: spec["ManifestGenerator"][&generator].clone() });
            if let Some(encryption) =
                spec.pointer_mut("/ManifestGenerator/S3JobManifestGenerator/Filter/MatchAnyObjectEncryption/0")
            {
                // a union: one member at a time is the model's rule; the first here
                let first = union("ObjectEncryptionFilter")[0].clone();
                *encryption = json!({ &first: encryption[&first].clone() });
            }
            if let Some(enc) =
                spec.pointer_mut("/ManifestGenerator/S3JobManifestGenerator/ManifestOutputLocation/ManifestEncryption")
            {
                *enc = json!({"SSES3": {}});
            }
            // (the refused members are checked one by one below: each would hide the rest)
            for path in REFUSED {
                let (parent, member) = path.rsplit_once('.').unwrap();
                if let Some(Value::Object(p)) = spec.pointer_mut(&format!("/{}", parent.replace('.', "/"))) {
                    p.remove(member);
                }
            }
            // WHEN it is sent as XML and read as the API reads it
            let body = serde_json::to_vec(&round_trip(&spec)).unwrap();
            let parsed = spec::parse(&body).unwrap_or_else(|e| panic!("{op}: {e}"));
            // THEN every member is read (valid or refused for its value, never unknown)
            for problem in parsed.problems() {
                let text = problem.to_string();
                if unhandled(&problem) && !missing.contains(&text) {
                    missing.push(text);
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 11, "{checked} operations");
    assert!(missing.is_empty(), "members of S3's model batchops does not handle:\n{}", missing.join("\n"));
    // AND each refused member is refused by name
    for path in REFUSED {
        let (parent, member) = path.rsplit_once('.').unwrap();
        let mut spec = json!({"Operation": {}});
        let op = parent.split('.').nth(1).unwrap();
        spec["Operation"][op] = sample(m, &job_ops.members[op].shape, 1);
        let at = format!("/{}", parent.replace('.', "/"));
        let Some(Value::Object(p)) = spec.pointer_mut(&at) else { panic!("{path}") };
        p.retain(|k, _| k == member || !REFUSED.iter().any(|r| r.ends_with(&format!(".{k}"))));
        let problems = spec::parse(&serde_json::to_vec(&round_trip(&spec)).unwrap()).unwrap().problems();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            text.iter().any(|t| t == &format!("{path}: is not supported by this version of batchops")),
            "{path}: {text:?}"
        );
    }
    // AND the tagging request, whose only member is Tags
    let tags = sample(m, "PutJobTaggingRequest", 0);
    assert_eq!(tags, json!({"Tags": [{"Key": "sample", "Value": "sample"}]}));
}

#[test]
fn every_model_member_of_an_answer_is_one_the_api_writes_or_one_it_has_no_value_for() {
    // The descriptors' members that are not S3's are declared in model/batchops.json; the
    // ones batchops writes that S3's model lacks are listed so a new one is a decision.
    let m = model();
    let s3: Value = serde_json::from_str(include_str!("../../model/s3control-jobs.json")).unwrap();
    for (shape, ours) in
        [("JobDescriptor", vec!["DryRun", "MaxTasksPerSecond", "StatusHistory"]), ("JobListDescriptor", vec!["Tags"])]
    {
        let theirs = s3["shapes"][shape]["members"].as_object().unwrap();
        let merged = &m.shape(shape).unwrap().members;
        let added: Vec<&str> = merged.keys().map(String::as_str).filter(|k| !theirs.contains_key(*k)).collect();
        assert_eq!(added, ours, "{shape}");
        for (name, r) in merged {
            assert_eq!(element_name(name, r), name, "{shape}.{name} is written under its own name");
        }
    }
}

mod routes {
    use super::*;
    use crate::api::tests::{app, SPEC};
    use axum::body::Body;
    use axum::http::{HeaderMap, Request};
    use axum::Router;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    const A: &str = "111122223333";
    const B: &str = "444455556666";

    struct Answer {
        status: u16,
        headers: HeaderMap,
        body: String,
    }

    impl Answer {
        /// The text of the first element named by `path` (`Job/Status`) under the root.
        fn at(&self, path: &str) -> Option<String> {
            let doc = roxmltree::Document::parse(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body));
            let mut node = doc.root_element();
            for name in path.split('/') {
                node = node.children().find(|c| c.has_tag_name(name))?;
            }
            Some(node.text().unwrap_or_default().to_string())
        }

        fn count(&self, name: &str) -> usize {
            roxmltree::Document::parse(&self.body).unwrap().descendants().filter(|n| n.has_tag_name(name)).count()
        }

        fn root(&self) -> String {
            roxmltree::Document::parse(&self.body).unwrap().root_element().tag_name().name().to_string()
        }
    }

    /// A request as boto3 sends it: the account in `x-amz-account-id`, an XML body if any.
    async fn s3control(app: &Router, account: &str, method: &str, uri: &str, body: &str) -> Answer {
        let req = Request::builder().method(method).uri(uri).header("x-amz-account-id", account);
        let req = if body.is_empty() { req } else { req.header("content-type", "application/xml") };
        answer(app, req.body(Body::from(body.to_string())).unwrap()).await
    }

    async fn answer(app: &Router, req: Request<Body>) -> Answer {
        let resp = app.clone().oneshot(req).await.unwrap();
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        let body = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        Answer { status, headers, body }
    }

    fn create_body(token: &str) -> String {
        let mut spec: Value = serde_json::from_str(SPEC).unwrap();
        spec.as_object_mut().unwrap().remove("AccountId");
        spec["ClientRequestToken"] = json!(token);
        create_job_xml(&spec)
    }

    fn error_of(a: &Answer) -> (u16, String, String) {
        (a.status, a.at("Error/Code").unwrap_or_default(), a.at("Error/Message").unwrap_or_default())
    }

    #[tokio::test]
    async fn every_job_operation_speaks_xml() {
        let app = app();
        let created = s3control(&app, A, "POST", "/v20180820/jobs", &create_body("t1")).await;
        assert_eq!((created.status, created.root()), (200, "CreateJobResult".into()), "{}", created.body);
        assert_eq!(created.headers["content-type"], "application/xml");
        assert!(created.headers.contains_key("x-amz-request-id"));
        let id = created.at("JobId").unwrap();
        let jobs = format!("/v20180820/jobs/{id}");

        let described = s3control(&app, A, "GET", &jobs, "").await;
        assert_eq!(described.root(), "DescribeJobResult", "{}", described.body);
        assert_eq!(described.at("Job/Status").as_deref(), Some("New"));
        assert_eq!(described.at("Job/JobArn").unwrap(), format!("arn:aws:s3:us-east-1:{A}:job/{id}"));
        assert_eq!(described.at("Job/Operation/S3PutObjectTagging/TagSet/member/Key").as_deref(), Some("reviewed"));
        assert_eq!(described.at("Job/Manifest/Spec/Fields/member").as_deref(), Some("Bucket"));
        assert_eq!(described.at("Job/Report/Enabled").as_deref(), Some("true"));

        let listed = s3control(&app, A, "GET", "/v20180820/jobs?jobStatuses=New&maxResults=10", "").await;
        assert_eq!((listed.root(), listed.count("member")), ("ListJobsResult".into(), 1), "{}", listed.body);
        assert_eq!(listed.at("Jobs/member/JobId"), Some(id.clone()));
        assert_eq!(listed.at("Jobs/member/Operation").as_deref(), Some("S3PutObjectTagging"));

        let priority = s3control(&app, A, "POST", &format!("{jobs}/priority?priority=42"), "").await;
        assert_eq!((priority.root(), priority.at("Priority")), ("UpdateJobPriorityResult".into(), Some("42".into())));

        let tags = format!("<PutJobTaggingRequest xmlns=\"{}\"><Tags><member><Key>team</Key><Value>data + ml</Value></member></Tags></PutJobTaggingRequest>", super::super::model::NAMESPACE);
        let put = s3control(&app, A, "PUT", &format!("{jobs}/tagging"), &tags).await;
        assert_eq!(put.status, 200, "{}", put.body);
        let got = s3control(&app, A, "GET", &format!("{jobs}/tagging"), "").await;
        assert_eq!(got.root(), "GetJobTaggingResult");
        assert_eq!(got.at("Tags/member/Value").as_deref(), Some("data + ml"), "{}", got.body);
        assert_eq!(s3control(&app, A, "DELETE", &format!("{jobs}/tagging"), "").await.status, 200);
        assert_eq!(s3control(&app, A, "GET", &format!("{jobs}/tagging"), "").await.count("member"), 0);

        let cancelled = s3control(
            &app,
            A,
            "POST",
            &format!("{jobs}/status?requestedJobStatus=Cancelled&statusUpdateReason=done"),
            "",
        )
        .await;
        assert_eq!(cancelled.root(), "UpdateJobStatusResult", "{}", cancelled.body);
        assert_eq!(cancelled.at("Status").as_deref(), Some("Cancelling"));
        assert_eq!(cancelled.at("StatusUpdateReason").as_deref(), Some("done"));
    }

    #[tokio::test]
    async fn errors_are_s3_controls_error_document_with_its_codes() {
        let app = app();
        let bad = create_body("t1").replace("<Priority>10</Priority>", "<Priority>high</Priority>");
        let e = s3control(&app, A, "POST", "/v20180820/jobs", &bad).await;
        assert_eq!(e.root(), "ErrorResponse", "{}", e.body);
        let (status, code, message) = error_of(&e);
        assert_eq!((status, code.as_str()), (400, "BadRequestException"));
        assert!(message.starts_with("Priority: 'high' is not an integer"), "{message}");
        assert_eq!(e.at("RequestId").unwrap(), e.headers["x-amz-request-id"].to_str().unwrap());

        let id = s3control(&app, A, "POST", "/v20180820/jobs", &create_body("t1")).await.at("JobId").unwrap();
        let again = create_body("t1").replace("<Priority>10</Priority>", "<Priority>11</Priority>");
        let e = s3control(&app, A, "POST", "/v20180820/jobs", &again).await;
        assert_eq!(error_of(&e).1, "IdempotencyException", "{}", e.body);
        let e = s3control(&app, A, "POST", &format!("/v20180820/jobs/{id}/status?requestedJobStatus=Ready"), "").await;
        assert_eq!((error_of(&e).0, error_of(&e).1.as_str()), (409, "JobStatusException"), "{}", e.body);
        let e = s3control(&app, A, "GET", "/v20180820/jobs/00000000-0000-0000-0000-000000000000", "").await;
        assert_eq!((error_of(&e).0, error_of(&e).1.as_str()), (404, "NotFoundException"));
        let e = s3control(&app, A, "GET", "/v20180820/jobs?jobStatuses=Running", "").await;
        assert!(error_of(&e).2.starts_with("jobStatuses:"), "{}", e.body);
        let e = s3control(&app, "12", "GET", "/v20180820/jobs", "").await;
        assert_eq!(
            error_of(&e),
            (400, "BadRequestException".into(), "AccountId: x-amz-account-id must be 12 digits".into())
        );
        let tags: String = (0..51).map(|i| format!("<member><Key>k{i}</Key><Value>v</Value></member>")).collect();
        let e = s3control(
            &app,
            A,
            "PUT",
            &format!("/v20180820/jobs/{id}/tagging"),
            &format!("<PutJobTaggingRequest><Tags>{tags}</Tags></PutJobTaggingRequest>"),
        )
        .await;
        assert_eq!(error_of(&e).1, "TooManyTagsException", "{}", e.body);
        let no_account = Request::post("/v20180820/jobs").header("content-type", "application/xml");
        let e = answer(&app, no_account.body(Body::from(create_body("t2"))).unwrap()).await;
        assert_eq!(error_of(&e), (400, "BadRequestException".into(), "AccountId: x-amz-account-id is required".into()));
        let e = s3control(&app, A, "GET", "/v20180820/elsewhere", "").await;
        assert_eq!(error_of(&e).1, "NotFoundException", "{}", e.body);
    }

    #[tokio::test]
    async fn an_account_sees_and_changes_only_its_own_jobs() {
        let app = app();
        let id = s3control(&app, A, "POST", "/v20180820/jobs", &create_body("same")).await.at("JobId").unwrap();
        // another account: not found, not listed, not changed
        let e = s3control(&app, B, "GET", &format!("/v20180820/jobs/{id}"), "").await;
        assert_eq!(error_of(&e).1, "NotFoundException");
        assert_eq!(s3control(&app, B, "GET", "/v20180820/jobs", "").await.count("member"), 0);
        for (method, path) in [
            ("POST", "priority?priority=1"),
            ("POST", "status?requestedJobStatus=Cancelled"),
            ("GET", "tagging"),
            ("DELETE", "tagging"),
        ] {
            let e = s3control(&app, B, method, &format!("/v20180820/jobs/{id}/{path}"), "").await;
            assert_eq!(error_of(&e).1, "NotFoundException", "{method} {path}: {}", e.body);
        }
        // the same token is the other account's own
        let other = s3control(&app, B, "POST", "/v20180820/jobs", &create_body("same")).await.at("JobId").unwrap();
        assert_ne!(other, id);
        assert_eq!(s3control(&app, A, "GET", "/v20180820/jobs", "").await.count("member"), 1);
        // a spec naming another account than the request's is refused
        let mut spec: Value = serde_json::from_str(SPEC).unwrap();
        spec["AccountId"] = json!(B);
        let json_req = |account: Option<&str>, method: &str, uri: &str, body: String| {
            let mut r = Request::builder().method(method).uri(uri).header("content-type", "application/json");
            if let Some(a) = account {
                r = r.header("x-amz-account-id", a);
            }
            r.body(Body::from(body)).unwrap()
        };
        let e = answer(&app, json_req(Some(A), "POST", "/v20180820/jobs", spec.to_string())).await;
        assert_eq!(e.status, 400, "{}", e.body);
        assert!(e.body.contains("AccountId: '444455556666' is not the account of the request"), "{}", e.body);
        // the JSON API without an account sees every account's jobs; with one, that account's
        let all = answer(&app, json_req(None, "GET", "/v20180820/jobs", String::new())).await;
        assert_eq!(serde_json::from_str::<Value>(&all.body).unwrap()["Jobs"].as_array().unwrap().len(), 2);
        let mut only_b = json_req(Some(B), "GET", "/v20180820/jobs", String::new());
        only_b.headers_mut().insert("accept", "application/json".parse().unwrap());
        let only_b = answer(&app, only_b).await;
        let jobs = serde_json::from_str::<Value>(&only_b.body).unwrap()["Jobs"].clone();
        assert_eq!(
            jobs.as_array().unwrap().iter().map(|j| j["JobId"].as_str().unwrap()).collect::<Vec<_>>(),
            [other.as_str()]
        );
    }

    #[test]
    fn the_protocol_is_chosen_by_content_type_then_the_account_header() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            h
        };
        use super::super::speaks_xml;
        assert!(speaks_xml(&headers(&[("content-type", "application/xml")])));
        assert!(speaks_xml(&headers(&[("content-type", "text/xml; charset=utf-8")])));
        assert!(speaks_xml(&headers(&[("x-amz-account-id", A)])));
        assert!(!speaks_xml(&headers(&[("x-amz-account-id", A), ("accept", "application/json")])));
        assert!(!speaks_xml(&headers(&[("x-amz-account-id", A), ("content-type", "application/json")])));
        assert!(!speaks_xml(&headers(&[])));
    }
}
