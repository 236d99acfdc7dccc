//! S3 Inventory reports as manifests (`S3InventoryReport_CSV_20161130`, and the generated
//! manifests of `S3InventoryReport_CSV_20211130`): a `manifest.json` names gzip CSV data
//! files, each with its MD5, and a `fileSchema` saying which column holds what.
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-inventory-location.html>

use serde::{Deserialize, Serialize};

use crate::spec::ManifestField;

/// One data file of an inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryFile {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    /// MD5 of the (compressed) file, hex.
    pub md5: String,
}

/// A read `manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventoryManifest {
    pub source_bucket: Option<String>,
    pub fields: Vec<ManifestField>,
    pub files: Vec<InventoryFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    source_bucket: Option<String>,
    destination_bucket: Option<String>,
    file_format: Option<String>,
    file_schema: Option<String>,
    files: Option<Vec<RawFile>>,
}

#[derive(Deserialize)]
struct RawFile {
    key: Option<String>,
    size: Option<u64>,
    #[serde(rename = "MD5checksum")]
    md5: Option<String>,
}

/// The most columns a `fileSchema` may have (S3 Inventory has about 30 fields).
pub const MAX_COLUMNS: usize = 64;
/// The most data files an inventory may list (a control message each, sent at once).
pub const MAX_FILES: usize = 100_000;

/// The columns of `fileSchema` as manifest fields: Bucket, Key and VersionId are used, every
/// other column is ignored. Bucket and Key must be there.
pub fn fields_from_schema(schema: &str) -> Result<Vec<ManifestField>, String> {
    // Every field travels in each chunk message of the inventory: their number is bounded.
    let columns = schema.split(',').count();
    if columns > MAX_COLUMNS {
        return Err(format!("the inventory's fileSchema has {columns} columns; at most {MAX_COLUMNS} are read"));
    }
    let fields: Vec<ManifestField> = schema
        .split(',')
        .map(|c| match c.trim() {
            "Bucket" => ManifestField::Bucket,
            "Key" => ManifestField::Key,
            "VersionId" => ManifestField::VersionId,
            _ => ManifestField::Ignore,
        })
        .collect();
    for needed in [ManifestField::Bucket, ManifestField::Key] {
        match fields.iter().filter(|f| **f == needed).count() {
            1 => {}
            0 => return Err(format!("the inventory's fileSchema '{schema}' has no {needed:?} column")),
            _ => return Err(format!("the inventory's fileSchema '{schema}' has more than one {needed:?} column")),
        }
    }
    Ok(fields)
}

/// Reads a `manifest.json`. `manifest_bucket` is where it was found: data files live in
/// `destinationBucket` (an ARN or a name), which is that bucket when not given.
pub fn parse_manifest(json: &[u8], manifest_bucket: &str) -> Result<InventoryManifest, String> {
    let raw: RawManifest =
        serde_json::from_slice(json).map_err(|e| format!("the inventory manifest.json is not valid: {e}"))?;
    match raw.file_format.as_deref() {
        Some(f) if f.eq_ignore_ascii_case("CSV") => {}
        Some(other) => {
            return Err(format!("the inventory's fileFormat is {other}; only CSV inventories can be manifests"))
        }
        None => return Err("the inventory manifest.json has no fileFormat".into()),
    }
    let schema = raw.file_schema.ok_or("the inventory manifest.json has no fileSchema")?;
    let fields = fields_from_schema(&schema)?;
    let bucket = match raw.destination_bucket.as_deref() {
        Some(arn) => arn.rsplit(':').next().unwrap_or(arn).to_string(),
        None => manifest_bucket.to_string(),
    };
    // Capitals and `_` too: us-east-1's legacy bucket names have them.
    let bucket_name =
        |b: &str| (3..=255).contains(&b.len()) && b.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c));
    if !bucket_name(&bucket) {
        return Err(format!("the inventory's destinationBucket '{bucket:.100}' is not a bucket name or ARN"));
    }
    let files = raw.files.ok_or("the inventory manifest.json has no files")?;
    if files.len() > MAX_FILES {
        return Err(format!("the inventory manifest.json lists {} files; at most {MAX_FILES} are read", files.len()));
    }
    let mut out = Vec::with_capacity(files.len());
    for (i, f) in files.into_iter().enumerate() {
        let key = f.key.filter(|k| !k.is_empty()).ok_or(format!("files[{i}] of the inventory manifest has no key"))?;
        let md5 = f.md5.ok_or(format!("files[{i}] ({key}) of the inventory manifest has no MD5checksum"))?;
        if md5.len() != 32 || !md5.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "files[{i}] ({key}) of the inventory manifest has an MD5checksum that is not 32 hex digits"
            ));
        }
        out.push(InventoryFile {
            bucket: bucket.clone(),
            key,
            size: f.size.unwrap_or(0),
            md5: md5.to_ascii_lowercase(),
        });
    }
    Ok(InventoryManifest { source_bucket: raw.source_bucket, fields, files: out })
}

/// Writes a `manifest.json` in the inventory layout.
pub fn manifest_json(
    source_bucket: &str,
    destination_bucket: &str,
    schema: &str,
    files: &[InventoryFile],
    created: jiff::Timestamp,
    version: &str,
) -> String {
    let files: Vec<serde_json::Value> =
        files.iter().map(|f| serde_json::json!({"key": f.key, "size": f.size, "MD5checksum": f.md5})).collect();
    serde_json::json!({
        "sourceBucket": source_bucket,
        "destinationBucket": format!("arn:aws:s3:::{destination_bucket}"),
        "version": version,
        "creationTimestamp": created.as_millisecond().to_string(),
        "fileFormat": "CSV",
        "fileSchema": schema,
        "files": files,
    })
    .to_string()
}

/// `bytes` gzipped at the fast level, as the tests and the simulation write inventory data files
/// (a generated manifest's are written as they are listed, by `pipeline/chunker/listing.rs`).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let written = gz.write_all(bytes).and_then(|()| gz.finish());
    match written {
        Ok(out) => out,
        Err(e) => unreachable!("gzip into memory has no I/O to fail: {e}"),
    }
}

/// Quotes a value the way S3 Inventory writes CSV fields.
pub fn quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ManifestField::*;

    const EXAMPLE: &str = r#"{
      "sourceBucket": "example-source-bucket",
      "destinationBucket": "arn:aws:s3:::example-inventory-destination-bucket",
      "version": "2016-11-30",
      "creationTimestamp": "1514944800000",
      "fileFormat": "CSV",
      "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, ReplicationStatus, EncryptionStatus, ObjectLockRetainUntilDate, ObjectLockMode, ObjectLockLegalHoldStatus, IntelligentTieringAccessTier, BucketKeyStatus, ChecksumAlgorithm",
      "files": [
        { "key": "Inventory/example-source-bucket/2016-11-06T21-32Z/files/939c6d46-85a9-4ba8-87bd-9db705a579ce.csv.gz",
          "size": 2147483647, "MD5checksum": "f11166069f1990abeb9c97ace9cdfabc" }
      ]
    }"#;

    #[test]
    fn the_user_guide_example_reads() {
        let m = parse_manifest(EXAMPLE.as_bytes(), "ignored").unwrap();
        assert_eq!(m.source_bucket.as_deref(), Some("example-source-bucket"));
        assert_eq!(&m.fields[..4], &[Bucket, Key, VersionId, Ignore]);
        assert_eq!(m.fields.len(), 18);
        assert_eq!(m.files.len(), 1);
        assert_eq!(m.files[0].bucket, "example-inventory-destination-bucket");
        assert_eq!(m.files[0].size, 2147483647);
        assert_eq!(m.files[0].md5, "f11166069f1990abeb9c97ace9cdfabc");
    }

    #[test]
    fn schemas_without_key_or_bucket_and_other_formats_are_refused() {
        assert!(fields_from_schema("Bucket, Size").unwrap_err().contains("no Key column"));
        assert!(fields_from_schema("Key, Size").unwrap_err().contains("no Bucket column"));
        assert_eq!(fields_from_schema("Bucket,Key").unwrap(), vec![Bucket, Key]);
        let orc = EXAMPLE.replace("\"CSV\"", "\"ORC\"");
        assert!(parse_manifest(orc.as_bytes(), "b").unwrap_err().contains("only CSV"));
        let bad_md5 = EXAMPLE.replace("f11166069f1990abeb9c97ace9cdfabc", "xyz");
        assert!(parse_manifest(bad_md5.as_bytes(), "b").unwrap_err().contains("32 hex digits"));
        assert!(parse_manifest(b"{", "b").unwrap_err().contains("not valid"));
    }

    #[test]
    fn written_manifests_read_back() {
        let files =
            vec![InventoryFile { bucket: "out".into(), key: "p/data/0.csv.gz".into(), size: 10, md5: "a".repeat(32) }];
        let json = manifest_json("src", "out", "Bucket, Key", &files, jiff::Timestamp::UNIX_EPOCH, "2021-11-30");
        let m = parse_manifest(json.as_bytes(), "elsewhere").unwrap();
        assert_eq!(m.files, files);
        assert_eq!(m.source_bucket.as_deref(), Some("src"));
        assert_eq!(quoted("a\"b"), "\"a\"\"b\"");
    }
}
