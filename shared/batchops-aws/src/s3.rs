//! S3 as the object store of manifests and reports.

use async_trait::async_trait;
use batchops_core::ports::{ByteStream, ObjectHead, ObjectStore, StorageError};
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
        })
    }

    async fn read(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        start: u64,
        end: Option<u64>,
        if_match: Option<&str>,
    ) -> Result<ByteStream, StorageError> {
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
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(String::from))
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

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        self.client.delete_object().bucket(bucket).key(key).send().await.map_err(|e| storage(&e))?;
        Ok(())
    }
}
