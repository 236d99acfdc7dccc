//! S3 as the object store of manifests and reports.

use async_trait::async_trait;
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::ServerSideEncryption;
use batchops_core::ops::replicate_object::ReplicationRule;
use batchops_core::ports::{
    ByteStream, ListPage, ListRequest, ListedObject, ObjectHead, ObjectRef, ObjectStore, PutOptions, ReadOptions,
    StorageError,
};
use batchops_core::spec::OutputEncryption;
use bytes::Bytes;

use crate::errors::storage;

#[derive(Clone, Debug)]
pub struct S3ObjectStore {
    client: aws_sdk_s3::Client,
}

impl S3ObjectStore {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3ObjectStore { client }
    }
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn head(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<ObjectHead, StorageError> {
        let out = self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(String::from))
            .send()
            .await
            .map_err(|e| storage(&e))?;
        Ok(ObjectHead {
            etag: out.e_tag().unwrap_or_default().trim_matches('"').to_string(),
            size: out.content_length().unwrap_or(0).max(0) as u64,
            server_side_encryption: out.server_side_encryption().map(|s| s.as_str().to_string()),
            kms_key_id: out.ssekms_key_id().map(String::from),
            bucket_key_enabled: out.bucket_key_enabled().unwrap_or(false),
            sse_customer_algorithm: out.sse_customer_algorithm().map(String::from),
            replication_status: out.replication_status().map(|s| s.as_str().to_string()),
        })
    }

    async fn read(&self, object: &ObjectRef<'_>, options: ReadOptions<'_>) -> Result<ByteStream, StorageError> {
        let ReadOptions { start, end, if_match } = options;
        if end.is_some_and(|e| e <= start) {
            return Ok(Box::pin(futures::stream::empty()));
        }
        let range = match end {
            Some(e) => Some(format!("bytes={start}-{}", e - 1)),
            None if start > 0 => Some(format!("bytes={start}-")),
            None => None,
        };
        let result = self
            .client
            .get_object()
            .bucket(object.bucket)
            .key(object.key)
            .set_version_id(object.version_id.map(String::from))
            .set_range(range)
            .set_if_match(if_match.map(|e| format!("\"{e}\"")))
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            // Reading from the very end of an object: nothing is left.
            Err(e) if start > 0 && end.is_none() && storage(&e).http_status == 416 => {
                return Ok(Box::pin(futures::stream::empty()))
            }
            Err(e) => return Err(storage(&e)),
        };
        let body = out.body;
        let stream = futures::stream::unfold(Some(body), |state| async move {
            let mut body = state?;
            match body.try_next().await {
                Ok(Some(bytes)) => Some((Ok(bytes), Some(body))),
                Ok(None) => None,
                Err(e) => {
                    Some((Err(StorageError { http_status: 0, code: "ReadError".into(), message: e.to_string() }), None))
                }
            }
        });
        Ok(Box::pin(stream))
    }

    async fn put(&self, bucket: &str, key: &str, body: Bytes, content_type: &str) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(body.into())
            .send()
            .await
            .map_err(|e| storage(&e))?;
        Ok(())
    }

    async fn put_with(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
        options: &PutOptions<'_>,
    ) -> Result<String, StorageError> {
        let mut req = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .set_expected_bucket_owner(options.expected_owner.map(String::from))
            .body(body.into());
        req = match options.encryption {
            None => req,
            Some(OutputEncryption::S3) => req.server_side_encryption(ServerSideEncryption::Aes256),
            Some(OutputEncryption::Kms(k)) => req.server_side_encryption(ServerSideEncryption::AwsKms).ssekms_key_id(k),
        };
        let out = req.send().await.map_err(|e| storage(&e))?;
        Ok(out.e_tag().unwrap_or_default().trim_matches('"').to_string())
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        self.client.delete_object().bucket(bucket).key(key).send().await.map_err(|e| storage(&e))?;
        Ok(())
    }

    async fn start_upload(&self, bucket: &str, key: &str, content_type: &str) -> Result<String, StorageError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| storage(&e))?;
        out.upload_id().map(String::from).ok_or_else(|| StorageError {
            http_status: 500,
            code: "InternalError".into(),
            message: "CreateMultipartUpload gave no UploadId".into(),
        })
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
    ) -> Result<String, StorageError> {
        let out = self
            .client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(body.into())
            .send()
            .await
            .map_err(|e| storage(&e))?;
        Ok(out.e_tag().unwrap_or_default().to_string())
    }

    async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(i32, String)],
    ) -> Result<(), StorageError> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let parts =
            parts.iter().map(|(n, etag)| CompletedPart::builder().part_number(*n).e_tag(etag).build()).collect();
        self.client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| storage(&e))?;
        Ok(())
    }

    async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<(), StorageError> {
        self.client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| storage(&e))?;
        Ok(())
    }

    /// ListObjectsV2, or ListObjectVersions (the token is then `key-marker NUL version-id-marker`).
    async fn list(&self, req: &ListRequest<'_>) -> Result<ListPage, StorageError> {
        if req.versions {
            self.list_versions(req).await
        } else {
            self.list_objects(req).await
        }
    }

    async fn versioned(&self, bucket: &str) -> Result<bool, StorageError> {
        match self.client.get_bucket_versioning().bucket(bucket).send().await {
            Ok(out) => Ok(out.status().is_some()),
            // moto answers with a `GetBucketVersioningResponse` root element, which the SDK
            // does not read (S3 says `VersioningConfiguration`): read its Status from the body.
            Err(aws_sdk_s3::error::SdkError::ServiceError(se)) if se.raw().status().as_u16() == 200 => {
                let body = se.raw().body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
                Ok(body.contains("<Status>Enabled</Status>") || body.contains("<Status>Suspended</Status>"))
            }
            Err(e) => Err(storage(&e)),
        }
    }

    async fn replication_rules(&self, bucket: &str) -> Result<Vec<ReplicationRule>, StorageError> {
        match self.client.get_bucket_replication().bucket(bucket).send().await {
            Ok(out) => Ok(out
                .replication_configuration()
                .map(|c| c.rules().iter().map(crate::ops::replicate_object::convert).collect())
                .unwrap_or_default()),
            Err(e) => {
                let e = storage(&e);
                if e.code == "ReplicationConfigurationNotFoundError" {
                    Ok(Vec::new())
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Vec<(String, String)>, StorageError> {
        let out = self
            .client
            .get_object_tagging()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(String::from))
            .send()
            .await
            .map_err(|e| storage(&e))?;
        Ok(out.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect())
    }

    async fn presign_get(&self, bucket: &str, key: &str, expires: std::time::Duration) -> Result<String, StorageError> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires).map_err(|e| StorageError {
            http_status: 400,
            code: "InvalidArgument".into(),
            message: format!("presigned URL expiry: {e}"),
        })?;
        let request =
            self.client.get_object().bucket(bucket).key(key).presigned(config).await.map_err(|e| storage(&e))?;
        Ok(request.uri().to_string())
    }
}

/// A listing's timestamp as the domain keeps it.
fn listed_time(t: Option<&DateTime>) -> Option<jiff::Timestamp> {
    t.and_then(|t| jiff::Timestamp::from_nanosecond(t.as_nanos()).ok())
}

/// A storage class as S3 names it; a listing leaves STANDARD out.
fn class_name(class: Option<&str>) -> String {
    class.unwrap_or("STANDARD").to_string()
}

impl S3ObjectStore {
    async fn list_objects(&self, req: &ListRequest<'_>) -> Result<ListPage, StorageError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(req.bucket)
            .prefix(req.prefix)
            .set_continuation_token(req.token.map(String::from))
            .set_expected_bucket_owner(req.expected_owner.map(String::from))
            .send()
            .await
            .map_err(|e| storage(&e))?;
        let objects = out
            .contents()
            .iter()
            .map(|o| ListedObject {
                key: o.key().unwrap_or_default().to_string(),
                version_id: None,
                is_latest: true,
                is_delete_marker: false,
                size: o.size().unwrap_or(0).max(0) as u64,
                last_modified: listed_time(o.last_modified()),
                etag: o.e_tag().unwrap_or_default().trim_matches('"').to_string(),
                storage_class: class_name(o.storage_class().map(|c| c.as_str())),
            })
            .collect();
        let next =
            if out.is_truncated().unwrap_or(false) { out.next_continuation_token().map(String::from) } else { None };
        Ok(ListPage { objects, next })
    }

    async fn list_versions(&self, req: &ListRequest<'_>) -> Result<ListPage, StorageError> {
        let (key_marker, version_marker) = match req.token.and_then(|t| t.split_once('\0')) {
            Some((k, v)) => (Some(k.to_string()), (!v.is_empty()).then(|| v.to_string())),
            None => (req.token.map(String::from), None),
        };
        let out = self
            .client
            .list_object_versions()
            .bucket(req.bucket)
            .prefix(req.prefix)
            .set_key_marker(key_marker)
            .set_version_id_marker(version_marker)
            .set_expected_bucket_owner(req.expected_owner.map(String::from))
            .send()
            .await
            .map_err(|e| storage(&e))?;
        let versions = out.versions().iter().map(|v| ListedObject {
            key: v.key().unwrap_or_default().to_string(),
            version_id: v.version_id().map(String::from),
            is_latest: v.is_latest().unwrap_or(false),
            is_delete_marker: false,
            size: v.size().unwrap_or(0).max(0) as u64,
            last_modified: listed_time(v.last_modified()),
            etag: v.e_tag().unwrap_or_default().trim_matches('"').to_string(),
            storage_class: class_name(v.storage_class().map(|c| c.as_str())),
        });
        let markers = out.delete_markers().iter().map(|d| ListedObject {
            key: d.key().unwrap_or_default().to_string(),
            version_id: d.version_id().map(String::from),
            is_latest: d.is_latest().unwrap_or(false),
            is_delete_marker: true,
            size: 0,
            last_modified: listed_time(d.last_modified()),
            etag: String::new(),
            storage_class: String::new(),
        });
        let mut objects: Vec<ListedObject> = versions.chain(markers).collect();
        // Versions and delete markers come in two lists; S3 orders them by key, newest first.
        objects.sort_by(|a, b| a.key.cmp(&b.key).then(b.last_modified.cmp(&a.last_modified)));
        let next = if out.is_truncated().unwrap_or(false) {
            let key = out.next_key_marker().unwrap_or_default();
            Some(format!("{key}\0{}", out.next_version_id_marker().unwrap_or_default()))
        } else {
            None
        };
        Ok(ListPage { objects, next })
    }
}
