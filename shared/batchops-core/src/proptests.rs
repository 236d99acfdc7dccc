//! Property tests of the hand-written parsers: the CSV manifest reader against the `csv`
//! crate, key URL-encoding, inventory rows, and spec validation on arbitrary JSON (never a
//! panic; an error always names a member).

use proptest::prelude::*;
use serde_json::Value;

use crate::inventory::{fields_from_schema, quoted};
use crate::manifest::{decode_key, encode_key, parse_line, parse_row, split_csv, RowLayout};
use crate::spec::ManifestField;
use crate::Error;

/// A field of generated CSV text: letters, the characters CSV quotes for, spaces, non-ASCII.
fn field() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![Just('a'), Just('Z'), Just(','), Just('"'), Just(' '), Just('é'), Just('\r'), Just('7')],
        0..8,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

/// Writes fields as one CSV record, quoting as RFC 4180 does (or always, when `all`).
fn record(fields: &[String], all: bool) -> String {
    fields
        .iter()
        .map(|f| {
            if all || f.contains([',', '"', '\r']) || f.is_empty() && fields.len() == 1 {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// What the `csv` crate reads from one record.
fn csv_crate(line: &str) -> Vec<String> {
    let mut r = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(line.as_bytes());
    r.records().next().map(|rec| rec.unwrap().iter().map(String::from).collect()).unwrap_or_default()
}

/// Any JSON value, nested a few levels, with object keys that are often spec members.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(member(), inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn member() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Priority".to_string()),
        Just("RoleArn".to_string()),
        Just("Operation".to_string()),
        Just("Manifest".to_string()),
        Just("Report".to_string()),
        Just("ClientRequestToken".to_string()),
        Just("Spec".to_string()),
        Just("Location".to_string()),
        Just("MaxTasksPerSecond".to_string()),
        "[A-Za-z]{1,8}",
    ]
}

/// Parses and validates a body: Ok, or an error that names a member or says the JSON is bad.
fn check_spec(body: &[u8]) -> Result<(), TestCaseError> {
    match crate::spec::parse(body).and_then(|s| s.validate().map(|_| ())) {
        Ok(()) | Err(Error::InvalidBody { .. }) => Ok(()),
        Err(Error::InvalidField { field, message }) => {
            prop_assert!(!field.is_empty() && !message.is_empty(), "{field}: {message}");
            Ok(())
        }
        Err(other) => Err(TestCaseError::fail(format!("unexpected error {other:?}"))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_csv_reader_reads_what_the_csv_crate_reads(fields in proptest::collection::vec(field(), 1..5), all in any::<bool>()) {
        let line = record(&fields, all);
        let ours: Vec<String> = split_csv(&line).unwrap().into_iter().map(|f| f.into_owned()).collect();
        prop_assert_eq!(&ours, &fields);
        prop_assert_eq!(ours, csv_crate(&line));
    }

    #[test]
    fn the_fast_reader_of_quoted_rows_reads_what_the_general_one_reads(
        cells in proptest::collection::vec(field(), 1..6),
        all in any::<bool>(),
        columns in 2usize..6,
        version in any::<bool>(),
    ) {
        use ManifestField::*;
        let mut fields = vec![Bucket, Key];
        if version {
            fields.push(VersionId);
        }
        fields.resize(columns.max(fields.len()), Ignore);
        let layout = RowLayout::new(&fields);
        let line = record(&cells, all);
        prop_assert_eq!(layout.read("inventory file f", 2, &line), layout.read_general("inventory file f", 2, &line));
    }

    #[test]
    fn any_bytes_make_a_row_or_a_failed_line_naming_it(raw in proptest::collection::vec(any::<u8>(), 0..40), n in 1u64..1000) {
        use ManifestField::*;
        match parse_line(&[Bucket, Key], n, &raw) {
            Ok(e) => prop_assert_eq!(e.line, n),
            Err(bad) => prop_assert!(bad.reason.starts_with(&format!("manifest line {n}: ")), "{}", bad.reason),
        }
    }

    #[test]
    fn a_line_reads_the_same_with_a_crlf_ending(bucket in "[a-z0-9]{3,12}", key in "\\PC{1,20}") {
        use ManifestField::*;
        let line = format!("{bucket},{}", encode_key(&key));
        let crlf = format!("{line}\r");
        prop_assert_eq!(parse_line(&[Bucket, Key], 3, line.as_bytes()), parse_line(&[Bucket, Key], 3, crlf.as_bytes()));
    }

    #[test]
    fn keys_round_trip_through_url_encoding(key in "\\PC{0,40}") {
        prop_assert_eq!(decode_key(&encode_key(&key)), Ok(key));
    }

    #[test]
    fn decoding_any_text_never_panics(encoded in "[%+a-f0-9A-F\\PC]{0,30}") {
        let _ = decode_key(&encoded);
    }

    #[test]
    fn inventory_rows_give_back_their_bucket_key_and_version(
        bucket in "[a-z0-9][a-z0-9.-]{2,20}",
        key in "\\PC{1,30}",
        version in proptest::option::of("[A-Za-z0-9._]{1,32}"),
        size in any::<u64>(),
    ) {
        let (schema, cells) = match &version {
            Some(v) => ("Bucket, Key, VersionId, Size", vec![bucket.clone(), encode_key(&key), v.clone(), size.to_string()]),
            None => ("Bucket, Key, Size", vec![bucket.clone(), encode_key(&key), size.to_string()]),
        };
        let fields = fields_from_schema(schema).unwrap();
        let line: String = cells.iter().map(|c| quoted(c)).collect::<Vec<_>>().join(",");
        let row = parse_row("inventory file data/1.csv.gz", &fields, 9, line.as_bytes()).unwrap();
        prop_assert_eq!(row.target.bucket, bucket);
        prop_assert_eq!(row.target.key, key);
        prop_assert_eq!(row.target.version_id, version);
    }

    #[test]
    fn any_json_body_is_validated_without_a_panic(v in json()) {
        check_spec(v.to_string().as_bytes())?;
    }

    #[test]
    fn a_valid_spec_with_one_member_replaced_names_that_member(name in member(), v in json()) {
        let mut spec = crate::spec::tests::copy_spec();
        spec[&name] = v;
        let body = spec.to_string();
        match crate::spec::parse(body.as_bytes()).and_then(|s| s.validate().map(|_| ())) {
            Ok(()) | Err(Error::InvalidBody { .. }) => {}
            Err(Error::InvalidField { field, message }) => {
                const TOP: [&str; 7] =
                    ["Priority", "RoleArn", "Operation", "Manifest", "Report", "ClientRequestToken", "MaxTasksPerSecond"];
                if TOP.contains(&name.as_str()) {
                    prop_assert!(field.starts_with(name.as_str()), "{field}: {message} (replaced {name})");
                } else {
                    prop_assert!(field.contains(name.as_str()) || message.contains(name.as_str()), "{field}: {message} (added {name})");
                }
            }
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }

    #[test]
    fn any_bytes_as_a_body_are_refused_cleanly(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
        check_spec(&raw)?;
    }
}
