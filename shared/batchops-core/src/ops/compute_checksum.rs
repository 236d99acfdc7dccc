//! `S3ComputeObjectChecksum`: computes a checksum of each object at rest, as a full-object
//! checksum or as S3's composite checksum of the object's parts, and reports it in the
//! ResultMessage. The object is streamed in constant memory, whatever its size.
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-compute-checksums.html>
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html>

use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use crate::{Error, Result};

/// The algorithms of the model that S3 does not document yet; refused by name.
const NOT_YET: [&str; 4] = ["SHA512", "XXHASH64", "XXHASH3", "XXHASH128"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
    Md5,
}

impl Algorithm {
    pub const ALL: [Algorithm; 6] =
        [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme, Algorithm::Sha1, Algorithm::Sha256, Algorithm::Md5];

    /// The name S3 uses (`CRC32`, `CRC64NVME` ...).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Md5 => "MD5",
        }
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == s)
    }

    /// The SDK's implementation; `None` for MD5, which the SDK's crate maps to CRC32.
    fn smithy(self) -> Option<aws_smithy_checksums::ChecksumAlgorithm> {
        use aws_smithy_checksums::ChecksumAlgorithm as A;
        match self {
            Algorithm::Crc32 => Some(A::Crc32),
            Algorithm::Crc32c => Some(A::Crc32c),
            Algorithm::Crc64Nvme => Some(A::Crc64Nvme),
            Algorithm::Sha1 => Some(A::Sha1),
            Algorithm::Sha256 => Some(A::Sha256),
            Algorithm::Md5 => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChecksumType {
    FullObject,
    Composite,
}

impl ChecksumType {
    pub fn name(self) -> &'static str {
        match self {
            ChecksumType::FullObject => "FULL_OBJECT",
            ChecksumType::Composite => "COMPOSITE",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ComputeChecksum {
    pub algorithm: Algorithm,
    pub checksum_type: ChecksumType,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Params {
    checksum_algorithm: Option<String>,
    checksum_type: Option<String>,
}

impl ComputeChecksum {
    pub fn from_spec(field: &str, v: &Value) -> Result<Self> {
        let p: Params = crate::fields::params(field, v)?;
        let af = format!("{field}.ChecksumAlgorithm");
        let name = p.checksum_algorithm.ok_or_else(|| Error::field(&af, "is required"))?;
        let algorithm = match Algorithm::parse(&name) {
            Some(a) => a,
            None if NOT_YET.contains(&name.as_str()) => {
                return Err(Error::field(
                    &af,
                    format!("{name} is not supported by this version of batchops (supported: CRC32, CRC32C, CRC64NVME, SHA1, SHA256, MD5)"),
                ))
            }
            None => {
                return Err(Error::field(&af, format!("'{name}' is not one of CRC32, CRC32C, CRC64NVME, SHA1, SHA256, MD5")))
            }
        };
        let tf = format!("{field}.ChecksumType");
        let checksum_type = match p.checksum_type.as_deref() {
            None | Some("FULL_OBJECT") => ChecksumType::FullObject,
            Some("COMPOSITE") if algorithm == Algorithm::Crc64Nvme => {
                return Err(Error::field(&tf, "CRC64NVME supports FULL_OBJECT checksums only, as in S3"))
            }
            Some("COMPOSITE") => ChecksumType::Composite,
            Some(other) => return Err(Error::field(&tf, format!("'{other}' is not one of FULL_OBJECT, COMPOSITE"))),
        };
        Ok(ComputeChecksum { algorithm, checksum_type })
    }
}

/// A running checksum over streamed bytes.
pub enum Hasher {
    Sdk(Box<dyn aws_smithy_checksums::http::HttpChecksum>),
    Md5(md5::Md5),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm.smithy() {
            Some(a) => Hasher::Sdk(a.into_impl()),
            None => Hasher::Md5(md5::Md5::default()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sdk(h) => h.update(bytes),
            Hasher::Md5(h) => md5::Digest::update(h, bytes),
        }
    }

    /// The raw digest (4 bytes for CRC32, 32 for SHA256 ...).
    pub fn finalize(self) -> Bytes {
        match self {
            Hasher::Sdk(h) => h.finalize(),
            Hasher::Md5(h) => Bytes::copy_from_slice(&md5::Digest::finalize(h)),
        }
    }
}

/// The digest of `data` in one go.
pub fn digest(algorithm: Algorithm, data: &[u8]) -> Bytes {
    let mut h = Hasher::new(algorithm);
    h.update(data);
    h.finalize()
}

pub fn base64(digest: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// S3's composite checksum: the checksum of the concatenated part digests, base64, with
/// `-<number of parts>`. An object stored in one part has no parts to combine: its composite
/// checksum is its full-object checksum, without suffix, as S3 reports for single-part uploads.
pub fn composite(algorithm: Algorithm, part_digests: &[Bytes]) -> String {
    if let [only] = part_digests {
        return base64(only);
    }
    let mut h = Hasher::new(algorithm);
    for d in part_digests {
        h.update(d);
    }
    format!("{}-{}", base64(&h.finalize()), part_digests.len())
}

/// The report's ResultMessage of a computed checksum.
pub fn result_message(op: &ComputeChecksum, checksum: &str, etag: &str) -> String {
    let raw = checksum.split('-').next().unwrap_or_default();
    let hex = base64::engine::general_purpose::STANDARD.decode(raw).map(hex::encode).unwrap_or_default();
    serde_json::json!({
        "checksum_base64": checksum,
        "checksum_hex": hex,
        "checksumAlgorithm": op.algorithm.name(),
        "checksumType": op.checksum_type.name(),
        "etag": etag,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const F: &str = "Operation.S3ComputeObjectChecksum";

    /// The published check values of each algorithm for the ASCII string "123456789".
    #[test]
    fn check_values_of_every_algorithm() {
        let expected = [
            (Algorithm::Crc32, "cbf43926"),
            (Algorithm::Crc32c, "e3069283"),
            (Algorithm::Crc64Nvme, "ae8b14860a799888"),
            (Algorithm::Sha1, "f7c3bc1d808e04732adf679965ccc34ca7ae3441"),
            (Algorithm::Sha256, "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225"),
            (Algorithm::Md5, "25f9e794323b453885f5181f1b624d0b"),
        ];
        for (alg, hex_value) in expected {
            assert_eq!(hex::encode(digest(alg, b"123456789")), hex_value, "{}", alg.name());
        }
    }

    #[test]
    fn streaming_in_pieces_equals_one_go() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for alg in Algorithm::ALL {
            let mut h = Hasher::new(alg);
            for piece in data.chunks(4093) {
                h.update(piece);
            }
            assert_eq!(h.finalize(), digest(alg, &data), "{}", alg.name());
        }
    }

    #[test]
    fn composite_checksums_combine_part_digests() {
        let parts = [digest(Algorithm::Crc32, b"abc"), digest(Algorithm::Crc32, b"def")];
        let mut joined = parts[0].to_vec();
        joined.extend_from_slice(&parts[1]);
        assert_eq!(composite(Algorithm::Crc32, &parts), format!("{}-2", base64(&digest(Algorithm::Crc32, &joined))));
        assert_eq!(composite(Algorithm::Crc32, &parts[..1]), base64(&parts[0]));
    }

    #[test]
    fn spec_validation() {
        let op = ComputeChecksum::from_spec(F, &json!({"ChecksumAlgorithm": "SHA256", "ChecksumType": "COMPOSITE"}));
        assert_eq!(
            op.unwrap(),
            ComputeChecksum { algorithm: Algorithm::Sha256, checksum_type: ChecksumType::Composite }
        );
        for (spec, prefix) in [
            (json!({}), "Operation.S3ComputeObjectChecksum.ChecksumAlgorithm:"),
            (json!({"ChecksumAlgorithm": "XXHASH3"}), "Operation.S3ComputeObjectChecksum.ChecksumAlgorithm:"),
            (json!({"ChecksumAlgorithm": "ADLER"}), "Operation.S3ComputeObjectChecksum.ChecksumAlgorithm:"),
            (
                json!({"ChecksumAlgorithm": "CRC64NVME", "ChecksumType": "COMPOSITE"}),
                "Operation.S3ComputeObjectChecksum.ChecksumType:",
            ),
            (
                json!({"ChecksumAlgorithm": "CRC32", "ChecksumType": "PARTIAL"}),
                "Operation.S3ComputeObjectChecksum.ChecksumType:",
            ),
        ] {
            let err = ComputeChecksum::from_spec(F, &spec).unwrap_err().to_string();
            assert!(err.starts_with(prefix), "{spec}: {err}");
        }
    }

    #[test]
    fn the_result_message_has_base64_and_hex() {
        let op = ComputeChecksum { algorithm: Algorithm::Crc32, checksum_type: ChecksumType::FullObject };
        let msg: Value = serde_json::from_str(&result_message(&op, "y/Q5Jg==", "abc")).unwrap();
        assert_eq!(msg["checksum_hex"], "cbf43926");
        assert_eq!(msg["checksumType"], "FULL_OBJECT");
    }
}
