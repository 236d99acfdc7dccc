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

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
    Md5,
    Sha512,
    XxHash64,
    XxHash3,
    XxHash128,
}

impl Algorithm {
    pub const ALL: [Algorithm; 10] = [
        Algorithm::Crc32,
        Algorithm::Crc32c,
        Algorithm::Crc64Nvme,
        Algorithm::Sha1,
        Algorithm::Sha256,
        Algorithm::Md5,
        Algorithm::Sha512,
        Algorithm::XxHash64,
        Algorithm::XxHash3,
        Algorithm::XxHash128,
    ];

    /// The name S3 uses (`CRC32`, `CRC64NVME` ...).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Md5 => "MD5",
            Algorithm::Sha512 => "SHA512",
            Algorithm::XxHash64 => "XXHASH64",
            Algorithm::XxHash3 => "XXHASH3",
            Algorithm::XxHash128 => "XXHASH128",
        }
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == s)
    }

    /// Every name, for error messages.
    fn names() -> String {
        Algorithm::ALL.map(Algorithm::name).join(", ")
    }

    /// The SDK's implementation, for the algorithms its checksum crate has (MD5 it maps to
    /// CRC32, so MD5 is not among them).
    fn smithy(self) -> Option<aws_smithy_checksums::ChecksumAlgorithm> {
        use aws_smithy_checksums::ChecksumAlgorithm as A;
        match self {
            Algorithm::Crc32 => Some(A::Crc32),
            Algorithm::Crc32c => Some(A::Crc32c),
            Algorithm::Crc64Nvme => Some(A::Crc64Nvme),
            Algorithm::Sha1 => Some(A::Sha1),
            Algorithm::Sha256 => Some(A::Sha256),
            _ => None,
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
        let algorithm = Algorithm::parse(&name)
            .ok_or_else(|| Error::field(&af, format!("'{name}' is not one of {}", Algorithm::names())))?;
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
    Sha512(Box<sha2::Sha512>),
    XxHash64(Box<xxhash_rust::xxh64::Xxh64>),
    /// XXHASH3 (64-bit digest) and XXHASH128 share xxh3's streaming state.
    XxHash3(Box<xxhash_rust::xxh3::Xxh3>, Width),
}

/// Which digest an xxh3 state gives.
#[derive(Clone, Copy)]
pub enum Width {
    Bits64,
    Bits128,
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        if let Some(a) = algorithm.smithy() {
            return Hasher::Sdk(a.into_impl());
        }
        match algorithm {
            Algorithm::Sha512 => Hasher::Sha512(Box::default()),
            // Seed 0, as S3 and the reference implementation's defaults.
            Algorithm::XxHash64 => Hasher::XxHash64(Box::new(xxhash_rust::xxh64::Xxh64::new(0))),
            Algorithm::XxHash3 => Hasher::XxHash3(Box::default(), Width::Bits64),
            Algorithm::XxHash128 => Hasher::XxHash3(Box::default(), Width::Bits128),
            _ => Hasher::Md5(md5::Md5::default()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sdk(h) => h.update(bytes),
            Hasher::Md5(h) => md5::Digest::update(h, bytes),
            Hasher::Sha512(h) => sha2::Digest::update(h.as_mut(), bytes),
            Hasher::XxHash64(h) => h.update(bytes),
            Hasher::XxHash3(h, _) => h.update(bytes),
        }
    }

    /// The raw digest (4 bytes for CRC32, 32 for SHA256 ...). The xxHash digests are the
    /// reference implementation's canonical form (big-endian), as the CRCs are.
    pub fn finalize(self) -> Bytes {
        match self {
            Hasher::Sdk(h) => h.finalize(),
            Hasher::Md5(h) => Bytes::copy_from_slice(&md5::Digest::finalize(h)),
            Hasher::Sha512(h) => Bytes::copy_from_slice(&sha2::Digest::finalize(*h)),
            Hasher::XxHash64(h) => Bytes::copy_from_slice(&h.digest().to_be_bytes()),
            Hasher::XxHash3(h, Width::Bits64) => Bytes::copy_from_slice(&h.digest().to_be_bytes()),
            Hasher::XxHash3(h, Width::Bits128) => Bytes::copy_from_slice(&h.digest128().to_be_bytes()),
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
            (
                Algorithm::Sha512,
                "d9e6762dd1c8eaf6d61b3c6192fc408d4d6d5f1176d0c29169bc24e71c3f274ad27fcd5811b313d681f7e55ec02d73d499c95455b6b5bb503acf574fba8ffe85",
            ),
            // As the reference C library (libxxhash 0.8.4, through python's `xxhash`) gives them,
            // seed 0, canonical (big-endian) form.
            (Algorithm::XxHash64, "8cb841db40e6ae83"),
            (Algorithm::XxHash3, "72dcb18b67a17dff"),
            (Algorithm::XxHash128, "33119477ede5dcd5e9716427681d5860"),
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
