//! The targets: each parser of outside input, what feeds it, and what must hold.
//!
//! | Target | Parser | Outside input |
//! |---|---|---|
//! | `api` | the API's router: XML and JSON bodies, query strings, job ids, headers | HTTP requests |
//! | `spec-upload` | S3 event notifications (`uploaded_objects`) | the specs bucket's SQS messages |
//! | `schedule` | `Expression::parse`, `next_after`, `time_zone`, `resolve_relative` | schedule expressions, relative windows |
//! | `scheduler-input` | `Firing::parse` | EventBridge Scheduler's input |
//! | `cloudformation-request` | `resource::Request::parse`, `Properties::parse` | CloudFormation's custom resource requests |
//! | `csv-manifest` | the chunker's cutter and the executor's reader, whole jobs | CSV manifests |
//! | `inventory` | `parse_manifest`, the gzip data files, whole jobs | S3 Inventory reports |
//! | `generator` | keys listed by a ManifestGenerator job, its written manifest read back | S3 listings |
//! | `lambda-answer` | `lambda_invoke::outcome`, report rows | LambdaInvoke functions' answers |
//! | `report-file` | `Records`, `failures::parse_row` | result files read back (retry-failed, failures) |
//! | `queue-message` | chunk, control and finalize messages | SQS message bodies |

use std::sync::{Arc, OnceLock};

use batchops_core::chunk::{decode_rows, ChunkBody, ChunkMessage, ControlMessage, FinalizeMessage};
use batchops_core::report::{ResultRow, MAX_RESULT_MESSAGE};
use proptest::prelude::*;

use crate::gen;
use crate::world::{count_tasks, runtime, World};
use crate::Target;

const MIB: usize = 1 << 20;

/// Every target.
pub fn all() -> Vec<Target> {
    ALL.to_vec()
}

/// The targets, as data.
static ALL: &[Target] = &[
    Target {
        name: "api",
        about: "HTTP requests to the API's router (XML and JSON bodies, query strings, ids, headers)",
        inputs: api_inputs,
        check: api,
        memory: |input| 32 * MIB + 16 * input.len(),
        short_cases: 300,
    },
    Target {
        name: "spec-upload",
        about: "S3 event notifications of the specs bucket, as SQS delivers them",
        inputs: || prop_oneof![gen::bytes(256), gen::json_value().prop_map(|v| v.to_string().into_bytes())].boxed(),
        check: spec_upload,
        memory: |input| 4 * MIB + 16 * input.len(),
        short_cases: 300,
    },
    Target {
        name: "schedule",
        about: "schedule expressions (at, rate, cron), time zones and relative windows",
        inputs: schedule_inputs,
        check: schedule,
        memory: |_| 16 * MIB,
        short_cases: 500,
    },
    Target {
        name: "scheduler-input",
        about: "EventBridge Scheduler's input to the schedule function",
        inputs: scheduler_inputs,
        check: scheduler_input,
        memory: |input| 8 * MIB + 16 * input.len(),
        short_cases: 300,
    },
    Target {
        name: "cloudformation-request",
        about: "CloudFormation's request documents to the custom resource function (Custom::BatchopsJob)",
        inputs: cloudformation_inputs,
        check: cloudformation_request,
        memory: |input| 8 * MIB + 16 * input.len(),
        short_cases: 300,
    },
    Target {
        name: "csv-manifest",
        about: "CSV manifests run as whole jobs (cutter, executor, report, retry of failures)",
        inputs: csv_inputs,
        check: csv_manifest,
        memory: |input| 64 * MIB + 64 * expanded_len(input),
        short_cases: 40,
    },
    Target {
        name: "inventory",
        about: "S3 Inventory manifest.json and gzip data files (bombs too) run as whole jobs",
        inputs: inventory_inputs,
        check: inventory,
        memory: |input| 96 * MIB + 64 * expanded_len(input).min(4 * MIB),
        short_cases: 40,
    },
    Target {
        name: "generator",
        about: "keys a listing returns (ManifestGenerator jobs, their manifest written and read back)",
        inputs: generator_inputs,
        check: generator,
        memory: |input| 64 * MIB + 64 * input.len(),
        short_cases: 40,
    },
    Target {
        name: "lambda-answer",
        about: "LambdaInvoke functions' answers, to report rows",
        inputs: lambda_inputs,
        check: lambda_answer,
        memory: |input| 4 * MIB + 8 * input.len(),
        short_cases: 300,
    },
    Target {
        name: "report-file",
        about: "result files read back by retry-failed and the failures route",
        inputs: report_inputs,
        check: report_file,
        memory: |input| 4 * MIB + 8 * input.len(),
        short_cases: 300,
    },
    Target {
        name: "queue-message",
        about: "SQS message bodies of the chunk, control and finalize queues",
        inputs: queue_inputs,
        check: queue_message,
        memory: |input| 4 * MIB + 16 * input.len(),
        short_cases: 300,
    },
];

// ---- api ----

/// The router with an in-memory intake, built once per thread, with its runtime.
fn api_router() -> &'static (tokio::runtime::Runtime, axum::Router) {
    static API: OnceLock<(tokio::runtime::Runtime, axum::Router)> = OnceLock::new();
    API.get_or_init(|| {
        let world = World::new(10, false, 64 * 1024);
        (runtime(), job_intake::api::router(Arc::new(world.intake())))
    })
}

/// An input is a request written as text: `METHOD target`, header lines, a blank line, the body.
fn api_inputs() -> BoxedStrategy<Vec<u8>> {
    let method = proptest::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH"]);
    let path = prop_oneof![
        Just("/v20180820/jobs".to_string()),
        Just("/v20180820/jobs/validate".to_string()),
        (
            gen::tricky_text(40),
            proptest::sample::select(vec![
                "",
                "/status",
                "/priority",
                "/rate",
                "/tagging",
                "/retry-failed",
                "/failures",
                "/report-files"
            ])
        )
            .prop_map(|(id, tail)| format!("/v20180820/jobs/{}{tail}", percent(&id))),
    ];
    let query = proptest::collection::vec(
        (
            proptest::sample::select(vec![
                "maxResults",
                "jobStatuses",
                "nextToken",
                "requestedJobStatus",
                "statusUpdateReason",
                "priority",
                "maxTasksPerSecond",
                "limit",
            ]),
            prop_oneof![gen::edge_number(), gen::tricky_text(20)],
        ),
        0..4,
    )
    .prop_map(|pairs| pairs.iter().map(|(k, v)| format!("{k}={}", percent(v))).collect::<Vec<_>>().join("&"));
    let headers = proptest::collection::vec(
        prop_oneof![
            Just("Content-Type: application/xml".to_string()),
            Just("Content-Type: application/json".to_string()),
            Just("x-amz-account-id: 123456789012".to_string()),
            gen::tricky_text(14).prop_map(|a| format!("x-amz-account-id: {}", a.replace(['\n', '\r'], ""))),
            Just("Accept: application/json".to_string()),
        ],
        0..3,
    );
    let body = prop_oneof![gen::bytes(256), gen::mutated_spec(), gen::xml_body(), gen::deep_json()];
    (method, path, query, headers, body)
        .prop_map(|(m, p, q, h, b)| {
            let mut out =
                format!("{m} {p}{}{q}\n{}\n\n", if q.is_empty() { "" } else { "?" }, h.join("\n")).into_bytes();
            out.extend(b);
            out
        })
        .boxed()
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn api(input: &[u8]) -> Result<(), String> {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let split = input.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(i) => (&input[..i], &input[i + 2..]),
        None => (input, &b""[..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let first = lines.next().unwrap_or_default();
    let (method, target) = first.split_once(' ').unwrap_or(("POST", "/v20180820/jobs"));
    let mut req = axum::http::Request::builder()
        .method(axum::http::Method::from_bytes(method.as_bytes()).unwrap_or(axum::http::Method::POST))
        .uri(axum::http::Uri::try_from(target).unwrap_or_else(|_| axum::http::Uri::from_static("/v20180820/jobs")));
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            if let (Ok(k), Ok(v)) =
                (axum::http::HeaderName::try_from(k.trim()), axum::http::HeaderValue::try_from(v.trim()))
            {
                req = req.header(k, v);
            }
        }
    }
    let req = req.body(Body::from(body.to_vec())).map_err(|e| format!("request: {e}"))?;
    let speaks_xml = job_intake::xml::speaks_xml(req.headers());
    let (rt, app) = api_router();
    let (status, answer) = rt.block_on(async {
        let resp = app.clone().oneshot(req).await.unwrap_or_else(|e| match e {});
        let status = resp.status().as_u16();
        (status, resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default())
    });
    if status >= 500 {
        return Err(format!("answered {status}: {}", String::from_utf8_lossy(&answer)));
    }
    if status >= 400 {
        let text = String::from_utf8_lossy(&answer);
        let shaped = if speaks_xml {
            text.contains("<Code>") && text.contains("<Message>")
        } else {
            serde_json::from_slice::<serde_json::Value>(&answer)
                .is_ok_and(|v| v["Code"].is_string() && v["Message"].as_str().is_some_and(|m| !m.is_empty()))
        };
        if !shaped {
            return Err(format!("answered {status} not in S3 Control's error shape: {text:.300}"));
        }
        if answer.len() > 2 * input.len() + 4096 {
            return Err(format!("a {status} of {} bytes to a request of {}", answer.len(), input.len()));
        }
    }
    Ok(())
}

// ---- specs bucket and scheduler ----

fn spec_upload(input: &[u8]) -> Result<(), String> {
    match job_intake::s3_trigger::uploaded_objects(&String::from_utf8_lossy(input)) {
        Err(e) if e.to_string().trim().is_empty() => Err("an error that says nothing".into()),
        _ => Ok(()),
    }
}

fn schedule_inputs() -> BoxedStrategy<Vec<u8>> {
    let field = prop_oneof![
        Just("*".to_string()),
        Just("?".to_string()),
        Just("L".to_string()),
        Just("LW".to_string()),
        gen::edge_number(),
        (0u32..70, 0u32..70).prop_map(|(a, b)| format!("{a}-{b}")),
        (0u32..70, 0u32..100).prop_map(|(a, b)| format!("{a}/{b}")),
        (1u32..8, 0u32..8).prop_map(|(a, b)| format!("{a}#{b}")),
        Just("MON-FRI".to_string()),
        Just("JAN,DEC".to_string()),
        gen::tricky_text(4),
    ];
    let expr = prop_oneof![
        proptest::collection::vec(field, 0..8).prop_map(|f| format!("cron({})", f.join(" "))),
        (gen::edge_number(), proptest::sample::select(vec!["minute", "minutes", "hours", "days", "weeks", ""]))
            .prop_map(|(n, u)| format!("rate({n} {u})")),
        gen::tricky_text(20).prop_map(|t| format!("at({t})")),
        (-10000i32..10000, 1u8..13, 1u8..32).prop_map(|(y, m, d)| format!("at({y:04}-{m:02}-{d:02}T00:00:00)")),
        (gen::edge_number(), proptest::sample::select(vec!["D", "W", "H", "M", "S", "Y"]))
            .prop_map(|(n, u)| format!("-P{}{n}{u}", if u == "H" || u == "S" || u == "M" { "T" } else { "" })),
        gen::tricky_text(30),
    ];
    (expr, any::<i64>(), any::<i64>()).prop_map(|(e, a, b)| format!("{a} {b} {e}").into_bytes()).boxed()
}

fn schedule(input: &[u8]) -> Result<(), String> {
    use batchops_core::generator::resolve_relative;
    use batchops_core::schedule::{time_zone, Expression};
    let text = String::from_utf8_lossy(input);
    let mut parts = text.splitn(3, ' ');
    let a: i64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let b: i64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let expr = parts.next().unwrap_or_default();
    let clamp = |s: i64| jiff::Timestamp::from_second(s % 253_402_207_200).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    match Expression::parse(expr) {
        Ok(e) => {
            for tz in ["UTC", "America/New_York", "Asia/Kathmandu"] {
                let tz = time_zone(Some(tz)).map_err(|e| e.to_string())?;
                let _ = e.next_after(clamp(a), &tz, clamp(b));
                let _ = e.next_after(jiff::Timestamp::MAX, &tz, jiff::Timestamp::MIN);
                let _ = e.next_after(jiff::Timestamp::MIN, &tz, jiff::Timestamp::MAX);
            }
        }
        Err(e) if !e.to_string().starts_with("ScheduleExpression: ") => return Err(format!("names no field: {e}")),
        Err(_) => {}
    }
    let _ = time_zone(Some(expr));
    let reference = jiff::Timestamp::from_second(a % 253_402_207_200).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    match resolve_relative("Filter.CreatedAfter", expr, reference) {
        Err(e) if !e.to_string().starts_with("Filter.CreatedAfter: ") => Err(format!("names no field: {e}")),
        _ => Ok(()),
    }
}

fn scheduler_inputs() -> BoxedStrategy<Vec<u8>> {
    let spec = gen::mutated_spec().prop_map(|s| String::from_utf8_lossy(&s).into_owned());
    let time = prop_oneof![
        Just("2026-12-06T02:00:00Z".to_string()),
        gen::tricky_text(24),
        gen::edge_number(),
        Just("-271821-04-20T00:00:00Z".to_string()),
        Just("9999-12-31T23:59:60Z".to_string()),
    ];
    prop_oneof![
        (spec, time.clone()).prop_map(|(s, t)| {
            format!(
                "{{\"batchops\": {{\"Spec\": {s}, \"ScheduleArn\": \"arn:x\", \"ScheduledTime\": {}}}}}",
                serde_json::json!(t)
            )
            .into_bytes()
        }),
        (gen::tricky_text(30), time).prop_map(|(l, t)| serde_json::json!({"batchops": {"SpecLocation": l,
            "ScheduleArn": "arn:x", "ScheduledTime": t}})
        .to_string()
        .into_bytes()),
        gen::deep_json(),
        gen::bytes(128),
    ]
    .boxed()
}

fn scheduler_input(input: &[u8]) -> Result<(), String> {
    use batchops_core::schedule::Firing;
    match Firing::parse(input) {
        Ok(f) => {
            let _ = (f.time(), f.token());
            Ok(())
        }
        Err(batchops_core::Error::InvalidField { field, .. }) if field.is_empty() => Err("an empty field name".into()),
        Err(_) => Ok(()),
    }
}

// ---- cloudformation-request ----

/// Request documents around mutated specs, their scalars as strings (as CloudFormation sends
/// them) or not, with the custom resource's own members; and anything else.
fn cloudformation_inputs() -> BoxedStrategy<Vec<u8>> {
    let kind = prop_oneof![Just("Create"), Just("Update"), Just("Delete"), Just("Replace")];
    let own = prop_oneof![
        Just(serde_json::json!({})),
        Just(serde_json::json!({"WaitFor": "Complete", "ServiceTimeout": "3600"})),
        gen::json_value().prop_map(|v| serde_json::json!({"WaitFor": v.clone(), "ServiceTimeout": v})),
    ];
    let text = gen::tricky_text(40);
    let document = (gen::mutated_spec(), kind, own, text.clone(), text, any::<bool>()).prop_map(
        |(spec, kind, own, id, physical, strings)| {
            let mut props: serde_json::Value = serde_json::from_slice(&spec)
                .unwrap_or_else(|_| serde_json::json!({"Spec": String::from_utf8_lossy(&spec)}));
            if strings {
                props = as_strings(props);
            }
            if let (Some(p), Some(o)) = (props.as_object_mut(), own.as_object()) {
                p.extend(o.clone());
            }
            serde_json::json!({"RequestType": kind, "ResponseURL": "https://r.example/x", "StackId": "arn:s",
                "RequestId": id, "LogicalResourceId": "Job", "PhysicalResourceId": physical,
                "ResourceProperties": props, "OldResourceProperties": props})
            .to_string()
            .into_bytes()
        },
    );
    prop_oneof![4 => document, 1 => gen::deep_json(), 1 => gen::bytes(256)].boxed()
}

/// Every scalar of `v` as a string, as CloudFormation passes a custom resource's properties.
fn as_strings(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, as_strings(v))).collect()),
        Value::Array(a) => Value::Array(a.into_iter().map(as_strings).collect()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Number(n) => Value::String(n.to_string()),
        other => other,
    }
}

/// A request parses or is refused by name; its properties give a CreateJob body or an error
/// naming a member; a FAILED answer's reason fits CloudFormation's response document.
fn cloudformation_request(input: &[u8]) -> Result<(), String> {
    use batchops_core::resource::{Properties, Request, Response};
    // A member whose own name is empty is named by its place (`unknown field ```), not its path.
    let named = |e: &batchops_core::Error| match e {
        batchops_core::Error::InvalidField { field, message } if field.is_empty() && !message.contains("field ``") => {
            Err(format!("an empty field name: {e}"))
        }
        _ => Ok(()),
    };
    let req = match Request::parse(input) {
        Ok(req) => req,
        Err(e) => return named(&e),
    };
    let token = req.token();
    if token.len() > 64 {
        return Err(format!("a token of {} characters (ClientRequestToken takes 64)", token.len()));
    }
    match Properties::parse(&req.resource_properties) {
        Ok(p) => {
            let body = serde_json::to_vec(&p.job_spec(token)).map_err(|e| e.to_string())?;
            batchops_core::spec::parse(&body).map_err(|e| format!("a body CreateJob refuses: {e}"))?;
        }
        Err(e) => {
            named(&e)?;
            let answer = Response::failed(&req, "batchops-no-job", &e.to_string());
            if answer.reason.len() > 1003 {
                return Err(format!("a reason of {} bytes", answer.reason.len()));
            }
        }
    }
    Ok(())
}

// ---- manifests ----

/// A manifest input: an options byte, a repeat count (u32, little-endian), then the content,
/// which the manifest holds `count` times (so a bomb is a few bytes of input).
fn expand(input: &[u8], most: usize) -> (u8, Vec<u8>) {
    let options = input.first().copied().unwrap_or(0);
    let count = input.get(1..5).map_or(1, |c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize).max(1);
    let content = input.get(5..).unwrap_or_default();
    let count = if content.is_empty() { 1 } else { count.min(most / content.len()).max(1) };
    (options, content.repeat(count))
}

/// The manifest's size once expanded (for the memory bound).
fn expanded_len(input: &[u8]) -> usize {
    let count = input.get(1..5).map_or(1, |c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize).max(1);
    input.len().saturating_sub(5).saturating_mul(count).min(64 * MIB)
}

/// The most tasks a fuzzed job holds (a case must stay quick); blank lines are not limited.
const MOST_TASKS: u64 = 1_000;

/// Chunk sizes: small ones put chunk boundaries everywhere, large ones are what runs; at most
/// about 150 chunks (each is a few messages and a report file: a case stays quick).
fn chunk_size(options: u8, tasks: u64) -> u64 {
    [1, 3, 7, 50, 1000][usize::from(options) % 5].max(tasks / 150)
}

/// Lines of a CSV manifest: rows with the quotes, commas, escapes and bytes readers trip on.
fn csv_line() -> BoxedStrategy<Vec<u8>> {
    let key = prop_oneof![
        gen::tricky_text(12).prop_map(|k| k.replace('\n', "").into_bytes()),
        Just(b"fail-me".to_vec()),
        Just(b"caf%C3%A9".to_vec()),
        Just(b"%ZZ".to_vec()),
        Just(b"a+b".to_vec()),
        Just(vec![0xff, 0xfe]),
    ];
    prop_oneof![
        4 => key.clone().prop_map(|k| [b"src,".to_vec(), k, b"\n".to_vec()].concat()),
        2 => key.prop_map(|k| [b"\"src\",\"".to_vec(), k, b"\"\n".to_vec()].concat()),
        1 => Just(b"\n".to_vec()), 1 => Just(b"\r\r\n".to_vec()), 1 => Just(b"\r\n".to_vec()),
        1 => Just(b"src,k,v1,extra\n".to_vec()), 1 => Just(b"\"src,k\n".to_vec()),
        1 => (1usize..70_000).prop_map(|n| [b"src,".to_vec(), vec![b'x'; n], b"\n".to_vec()].concat()),
        1 => gen::bytes(24),
    ]
    .boxed()
}

fn csv_inputs() -> BoxedStrategy<Vec<u8>> {
    let lines = proptest::collection::vec(csv_line(), 0..40).prop_map(|l| l.concat());
    let count = prop_oneof![8 => Just(1u32), 1 => 2u32..50, 1 => Just(5_000_000u32)];
    (any::<u8>(), count, lines).prop_map(|(o, c, l)| [vec![o], c.to_le_bytes().to_vec(), l].concat()).boxed()
}

fn csv_manifest(input: &[u8]) -> Result<(), String> {
    let (options, mut manifest) = expand(input, 4 * MIB);
    while count_tasks(&manifest) > MOST_TASKS {
        manifest.truncate(manifest.len() / 2);
    }
    // Pieces of 7 bytes exercise the readers' seams; on small manifests only (a case stays quick).
    let piece = if options & 0x40 != 0 && manifest.len() < 64 * 1024 { 7 } else { 65_536 };
    let world = World::new(chunk_size(options, count_tasks(&manifest)), options & 0x80 != 0, piece);
    let etag = world.objects.insert("manifests", "m.csv", manifest.clone());
    let spec = world.spec("m.csv", &etag, "S3BatchOperations_CSV_20180820");
    // A line over the line limit fails the job: then any count goes.
    let expected = (!manifest.split(|b| *b == b'\n').any(|l| l.len() > 64 * 1024)).then(|| count_tasks(&manifest));
    runtime().block_on(world.run_and_check(&spec, expected))
}

fn inventory_inputs() -> BoxedStrategy<Vec<u8>> {
    let row = prop_oneof![
        4 => gen::tricky_text(10).prop_map(|k| format!("\"src\",\"{}\",\"v1\"\n", k.replace(['\n', '"'], "")).into_bytes()),
        1 => Just(b"\"src\",\"fail-me\",\"\"\n".to_vec()),
        1 => Just(b"\n".to_vec()), 1 => Just(b"\r\r\n".to_vec()), 1 => Just(b"\"src\"\n".to_vec()),
        1 => gen::bytes(16),
    ];
    let count = prop_oneof![6 => Just(1u32), 2 => 2u32..100, 2 => Just(20_000_000u32)];
    (any::<u8>(), count, proptest::collection::vec(row, 0..30).prop_map(|r| r.concat()))
        .prop_map(|(o, c, r)| [vec![o], c.to_le_bytes().to_vec(), r].concat())
        .boxed()
}

use batchops_core::inventory::gzip;

/// One inventory file of the expanded rows (a thousandfold bomb when they are blank), its
/// manifest.json; options corrupt the gzip or the manifest.json.
fn inventory(input: &[u8]) -> Result<(), String> {
    use md5::{Digest, Md5};
    // With no time budget every 100,000 blank lines hand on, and each hand-on decompresses the
    // file again from its start: the bomb stays at 4 MiB then (64 MiB took minutes a case), and
    // at 16 MiB otherwise (a thousandfold of its gzip; 64 MiB took 45 s a case in a debug build).
    let no_budget = input.first().is_some_and(|o| o & 0x80 != 0);
    let (options, mut rows) = expand(input, if no_budget { 4 * MIB } else { 16 * MIB });
    while count_tasks(&rows) > MOST_TASKS {
        rows.truncate(rows.len() / 2);
    }
    let world = World::new(chunk_size(options, count_tasks(&rows)), options & 0x80 != 0, 16 * 1024);
    let mut data = gzip(&rows);
    let corrupt = options & 0x20 != 0 && !data.is_empty();
    if corrupt {
        let at = (options as usize * 7919) % data.len();
        data[at] ^= 0x5a;
    }
    let sum = hex::encode(Md5::digest(&data));
    world.objects.insert("inv", "src/data/0.csv.gz", data.clone());
    let schema = if options & 0x10 != 0 { "Bucket, Key, VersionId, Bucket" } else { "Bucket, Key, VersionId" };
    let manifest = serde_json::json!({"sourceBucket": "src", "destinationBucket": "arn:aws:s3:::inv",
        "version": "2016-11-30", "fileFormat": "CSV", "fileSchema": schema,
        "files": [{"key": "src/data/0.csv.gz", "size": data.len(), "MD5checksum": sum}]});
    // Also the parser alone, on the manifest.json a byte of it changed.
    let mut text = manifest.to_string().into_bytes();
    if options & 0x08 != 0 {
        let at = (options as usize * 31) % text.len();
        text[at] = text[at].wrapping_add(1);
    }
    let _ = batchops_core::inventory::parse_manifest(&text, "inv");
    let etag = world.objects.insert("manifests", "manifest.json", manifest.to_string());
    let spec = world.spec("manifest.json", &etag, "S3InventoryReport_CSV_20161130");
    let fails = corrupt || options & 0x10 != 0 || rows.split(|b| *b == b'\n').any(|l| l.len() > 64 * 1024);
    runtime().block_on(world.run_and_check(&spec, (!fails).then(|| count_tasks(&rows))))
}

/// Keys separated by NUL: what a bucket holds (and a listing returns) for a generator job.
fn generator_inputs() -> BoxedStrategy<Vec<u8>> {
    let key = prop_oneof![
        4 => gen::tricky_text(16),
        1 => Just("fail-me".to_string()), 1 => Just("a\nb,c\"d".to_string()), 1 => Just("x".repeat(1024)),
        1 => Just("%41 +/".to_string()), 1 => Just("//".to_string()),
    ];
    (any::<bool>(), proptest::collection::vec(key, 0..60))
        .prop_map(|(output, keys)| [vec![u8::from(output)], keys.join("\0").into_bytes()].concat())
        .boxed()
}

/// Every key is listed, filtered by nothing, becomes one task (and, with manifest output, one
/// row of the manifest written and read back): rows = counters = the keys.
fn generator(input: &[u8]) -> Result<(), String> {
    let (output, keys) = input.split_first().map_or((false, &b""[..]), |(o, k)| (o & 1 == 1, k));
    let keys: std::collections::BTreeSet<String> = String::from_utf8_lossy(keys)
        .split('\0')
        .filter(|k| !k.is_empty() && k.len() <= 1024)
        .map(String::from)
        .collect();
    let world = World::new(chunk_size(keys.len() as u8, keys.len() as u64), false, 65_536);
    for k in &keys {
        world.objects.insert("src", k, b"x".to_vec());
    }
    let mut spec: serde_json::Value =
        serde_json::from_slice(&world.spec("unused", "unused", "S3BatchOperations_CSV_20180820"))
            .map_err(|e| e.to_string())?;
    let spec_obj = spec.as_object_mut().ok_or("a spec")?;
    spec_obj.remove("Manifest");
    let mut g = serde_json::json!({"SourceBucket": "arn:aws:s3:::src", "EnableManifestOutput": output});
    if output {
        g["ManifestOutputLocation"] = serde_json::json!({"Bucket": "arn:aws:s3:::gen", "ManifestPrefix": "out",
            "ManifestFormat": "S3InventoryReport_CSV_20211130"});
    }
    spec_obj.insert("ManifestGenerator".into(), serde_json::json!({"S3JobManifestGenerator": g}));
    runtime().block_on(world.run_and_check(spec.to_string().as_bytes(), Some(keys.len() as u64)))
}

// ---- answers, reports, messages ----

fn lambda_inputs() -> BoxedStrategy<Vec<u8>> {
    let code = proptest::sample::select(vec!["Succeeded", "TemporaryFailure", "PermanentFailure", "Bogus", ""]);
    let answer =
        (code, prop_oneof![gen::tricky_text(40), (1usize..7_000_000).prop_map(|n| "x".repeat(n))], gen::json_value())
            .prop_map(|(c, s, extra)| {
                serde_json::json!({"invocationSchemaVersion": "2.0", "treatMissingKeysAs": c,
                "results": [{"taskId": "t", "resultCode": c, "resultString": s, "extra": extra}]})
                .to_string()
                .into_bytes()
            });
    (any::<bool>(), prop_oneof![answer, gen::deep_json(), gen::bytes(64)])
        .prop_map(|(error, body)| [vec![u8::from(error)], body].concat())
        .boxed()
}

fn lambda_answer(input: &[u8]) -> Result<(), String> {
    use batchops_core::ops::lambda_invoke::outcome;
    let (error, payload) = input.split_first().map_or((false, &b""[..]), |(e, p)| (e & 1 == 1, p));
    let o = outcome("t", payload, error.then_some("Unhandled"));
    let target = batchops_core::ops::TaskTarget { bucket: "b".into(), key: "k".into(), version_id: None };
    let entry = batchops_core::manifest::ManifestEntry { line: 1, target, encoded_key: "k".into() };
    let row = ResultRow::task(entry, o);
    if row.message.len() > MAX_RESULT_MESSAGE {
        return Err(format!("a report row's message of {} bytes", row.message.len()));
    }
    Ok(())
}

fn report_inputs() -> BoxedStrategy<Vec<u8>> {
    let row = (gen::tricky_text(12), gen::tricky_text(16), any::<bool>(), any::<u16>(), gen::tricky_text(30)).prop_map(
        |(key, code, ok, status, message)| {
            let mut out = String::new();
            let row = ResultRow {
                bucket: "b".into(),
                encoded_key: key,
                version_id: String::new(),
                succeeded: ok,
                http_status: status,
                error_code: code,
                message,
            };
            row.render(&mut out);
            out.into_bytes()
        },
    );
    (any::<u8>(), prop_oneof![proptest::collection::vec(row, 0..20).prop_map(|r| r.concat()), gen::bytes(256)])
        .prop_map(|(piece, body)| [vec![piece], body].concat())
        .boxed()
}

fn report_file(input: &[u8]) -> Result<(), String> {
    use batchops_core::pipeline::failures::parse_row;
    let (piece, body) = input.split_first().map_or((1, &b""[..]), |(p, b)| (usize::from(*p).max(1), b));
    const MAX: usize = 64;
    let mut records = batchops_core::report::Records::new(MAX);
    let mut problem = None;
    let mut check = |r: &[u8], _whole: bool| {
        if r.len() > MAX {
            problem = Some(format!("a record of {} bytes kept, over {MAX}", r.len()));
        }
        let _ = parse_row(r);
    };
    for p in body.chunks(piece) {
        records.feed(p, &mut check);
    }
    records.finish(&mut check);
    problem.map_or(Ok(()), Err)
}

fn queue_inputs() -> BoxedStrategy<Vec<u8>> {
    let header = (gen::edge_number(), gen::edge_number(), gen::tricky_text(8)).prop_map(|(i, t, id)| {
        format!("{{\"job_id\":{},\"index\":{i},\"first_line\":{t},\"tasks\":{t}}}", serde_json::json!(id))
    });
    let lines = (header, gen::json_value(), gen::bytes(64)).prop_map(|(h, v, b)| {
        let mut out = format!("{h}\n{v}\n").into_bytes();
        out.extend(b);
        out
    });
    prop_oneof![lines, gen::json_value().prop_map(|v| v.to_string().into_bytes()), gen::deep_json(), gen::bytes(128)]
        .boxed()
}

fn queue_message(input: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(input);
    let parsed = match ChunkMessage::decode(&text) {
        Ok(msg) => match &msg.body {
            ChunkBody::Lines(lines) => lines.parse(msg.first_line).map(drop),
            ChunkBody::Rows(rows) => decode_rows(rows).map(drop),
            ChunkBody::Range { .. } => Ok(()),
        },
        Err(e) => Err(e),
    };
    if parsed.as_ref().is_err_and(|e| e.trim().is_empty()) {
        return Err("a message refused with an error that says nothing".into());
    }
    let _ = ChunkMessage::redriven_body(&text);
    let _ = serde_json::from_str::<ControlMessage>(&text);
    let _ = serde_json::from_str::<FinalizeMessage>(&text);
    Ok(())
}
