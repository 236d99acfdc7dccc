//! Input generators: arbitrary bytes, and inputs shaped like what each parser expects, so that
//! cases reach past the first syntax check (deep nesting, numbers at the edges, entities,
//! quotes and line breaks where a reader must handle them).

use proptest::prelude::*;
use serde_json::{json, Value};

/// Any bytes, up to `max`.
pub fn bytes(max: usize) -> BoxedStrategy<Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max).boxed()
}

/// Nesting levels: mostly near the limits (32), sometimes thousands, sometimes 100,000.
pub fn levels() -> BoxedStrategy<usize> {
    prop_oneof![6 => 0usize..40, 2 => 40usize..5_000, 1 => Just(100_000usize)].boxed()
}

/// Text with what readers trip on: quotes, commas, line breaks, `%`, `&`, `<`, non-ASCII.
pub fn tricky_text(max: usize) -> BoxedStrategy<String> {
    let ch = prop_oneof![
        8 => proptest::char::range('a', 'z'),
        1 => Just('"'), 1 => Just(','), 1 => Just('\n'), 1 => Just('\r'), 1 => Just('%'),
        1 => Just('&'), 1 => Just('<'), 1 => Just('>'), 1 => Just('é'), 1 => Just('\u{1F600}'),
        1 => Just('\0'), 1 => Just('+'), 1 => Just('/'), 1 => Just('['), 1 => Just('{'),
    ];
    proptest::collection::vec(ch, 0..max).prop_map(|cs| cs.into_iter().collect()).boxed()
}

/// Numbers at the edges of the types that read them.
pub fn edge_number() -> BoxedStrategy<String> {
    prop_oneof![
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("2147483648".to_string()),
        Just("9223372036854775808".to_string()),
        Just("-9223372036854775809".to_string()),
        Just("1e400".to_string()),
        Just("1.5".to_string()),
        Just("NaN".to_string()),
        Just("9".repeat(400)),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u32>().prop_map(|n| n.to_string()),
    ]
    .boxed()
}

/// Any JSON value, a few levels deep, with strings and numbers at the edges.
pub fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        tricky_text(24).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map(member_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Member names of the API's bodies (S3 Control's and batchops' own), and some that are none.
pub fn member_name() -> BoxedStrategy<String> {
    proptest::sample::select(MEMBERS.to_vec()).prop_map(String::from).boxed()
}

pub const MEMBERS: &[&str] = &[
    "AccountId",
    "ClientRequestToken",
    "ConfirmationRequired",
    "Description",
    "Priority",
    "RoleArn",
    "Tags",
    "Key",
    "Value",
    "Operation",
    "S3PutObjectTagging",
    "TagSet",
    "S3PutObjectCopy",
    "TargetResource",
    "LambdaInvoke",
    "FunctionArn",
    "UserArguments",
    "S3DeleteObject",
    "S3ComputeObjectChecksum",
    "Manifest",
    "Spec",
    "Format",
    "Fields",
    "Location",
    "ObjectArn",
    "ETag",
    "ObjectVersionId",
    "Report",
    "Bucket",
    "Enabled",
    "Prefix",
    "ReportScope",
    "ManifestGenerator",
    "S3JobManifestGenerator",
    "SourceBucket",
    "Filter",
    "CreatedAfter",
    "CreatedBefore",
    "KeyNameConstraint",
    "MatchAnyPrefix",
    "MatchAnyObjectEncryption",
    "SSE-KMS",
    "KmsKeyArn",
    "ObjectSizeGreaterThanBytes",
    "EnableManifestOutput",
    "ManifestOutputLocation",
    "ManifestPrefix",
    "ManifestFormat",
    "ManifestEncryption",
    "MaxTasksPerSecond",
    "DryRun",
    "TaggingMode",
    "member",
    "entry",
    "key",
    "value",
    "Unknown",
    "",
];

/// A spec of the examples, with members replaced, removed or added at random.
pub fn mutated_spec() -> BoxedStrategy<Vec<u8>> {
    let base: Vec<Value> = EXAMPLES.iter().filter_map(|s| serde_json::from_str(s).ok()).collect();
    (proptest::sample::select(base), proptest::collection::vec((member_name(), json_value(), 0u8..3), 0..4))
        .prop_map(|(mut spec, edits)| {
            for (name, value, how) in edits {
                mutate(&mut spec, &name, value, how);
            }
            spec.to_string().into_bytes()
        })
        .boxed()
}

/// Replaces (0), removes (1) or adds (2) `name` at the first object level that has it (or the top).
fn mutate(v: &mut Value, name: &str, value: Value, how: u8) {
    fn find<'a>(v: &'a mut Value, name: &str) -> Option<&'a mut serde_json::Map<String, Value>> {
        let obj = v.as_object_mut()?;
        if obj.contains_key(name) {
            return Some(obj);
        }
        obj.values_mut().find_map(|child| find(child, name))
    }
    let has = find(v, name).is_some();
    let Some(obj) = (if has { find(v, name) } else { v.as_object_mut() }) else { return };
    match how {
        1 => drop(obj.remove(name)),
        _ => drop(obj.insert(name.to_string(), value)),
    }
}

pub const EXAMPLES: &[&str] = &[
    include_str!("../../examples/specs/S3PutObjectCopy.json"),
    include_str!("../../examples/specs/S3PutObjectTagging.json"),
    include_str!("../../examples/specs/LambdaInvoke.json"),
    include_str!("../../examples/specs/S3DeleteObject-generator.json"),
    include_str!("../../examples/specs/S3PutObjectTagging-inventory.json"),
    include_str!("../../examples/specs/S3ComputeObjectChecksum.json"),
];

/// S3 Control's XML for a CreateJob-like request: elements named from the model's members,
/// nested at random (deeply sometimes), with text, entities, CDATA, comments, DTDs.
pub fn xml_body() -> BoxedStrategy<Vec<u8>> {
    let piece = prop_oneof![
        4 => (member_name(), tricky_text(12)).prop_map(|(n, t)| format!("<{n}>{}</{n}>", xml_escape(&t))),
        2 => (member_name(), edge_number()).prop_map(|(n, t)| format!("<{n}>{t}</{n}>")),
        1 => member_name().prop_map(|n| format!("<{n}/>")),
        1 => tricky_text(12).prop_map(|t| format!("<![CDATA[{t}]]>")),
        1 => tricky_text(12).prop_map(|t| format!("<!--{}-->", t.replace("--", ""))),
        1 => Just("&amp;&lt;&#x41;&#65;&bogus;".to_string()),
        1 => Just("<?pi data?>".to_string()),
    ];
    let doc = (proptest::collection::vec(piece, 0..12), member_name(), levels(), any::<bool>(), any::<bool>());
    doc.prop_map(|(pieces, deep_name, depth, dtd, ns)| {
        let mut body = String::new();
        if dtd {
            body.push_str("<!DOCTYPE CreateJobRequest [<!ENTITY e \"x\">]>");
        }
        let xmlns = if ns { " xmlns=\"http://awss3control.amazonaws.com/doc/2018-08-20/\"" } else { "" };
        body.push_str(&format!("<CreateJobRequest{xmlns}>"));
        let depth = depth.min(100_000);
        body.push_str(&format!("<{deep_name}>").repeat(depth));
        body.push_str(&pieces.concat());
        body.push_str(&format!("</{deep_name}>").repeat(depth));
        body.push_str("</CreateJobRequest>");
        body.into_bytes()
    })
    .boxed()
}

pub fn xml_escape(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// JSON nested `levels` deep in arrays and objects (a body, a Lambda answer).
pub fn deep_json() -> BoxedStrategy<Vec<u8>> {
    (levels(), any::<bool>())
        .prop_map(|(n, objects)| {
            let (open, close) = if objects { ("{\"a\":", "}") } else { ("[", "]") };
            format!("{}1{}", open.repeat(n), close.repeat(n)).into_bytes()
        })
        .boxed()
}
