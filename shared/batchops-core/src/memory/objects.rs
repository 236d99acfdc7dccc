//! Object storage in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use md5::{Digest, Md5};

use super::store::lock;
use crate::ops::replicate_object::ReplicationRule;
use crate::ports::{
    ByteStream, ListPage, ListRequest, ListedObject, ObjectHead, ObjectRef, ObjectStore, PutOptions, ReadOptions,
    StorageError,
};

/// An object: its body, when it was written, and its S3-style ETag (MD5 hex of the body,
/// computed once: a range read of a big manifest must not hash all of it again).
type Stored = (Bytes, jiff::Timestamp, String);

/// Objects by (bucket, key). Buckets are unversioned and have no replication configuration.
#[derive(Default)]
pub struct InMemoryObjectStore {
    objects: Mutex<HashMap<(String, String), Stored>>,
    /// Multipart uploads in progress: parts by upload ID.
    uploads: Mutex<HashMap<String, BTreeMap<i32, Bytes>>>,
    /// Bytes per piece when streaming, to exercise readers on small pieces.
    pub piece_size: Option<usize>,
}

impl InMemoryObjectStore {
    pub fn insert(&self, bucket: &str, key: &str, body: impl Into<Bytes>) -> String {
        let body = body.into();
        let etag = hex::encode(Md5::digest(&body));
        lock(&self.objects).insert((bucket.into(), key.into()), (body, crate::clock::now(), etag.clone()));
        etag
    }

    pub fn remove(&self, bucket: &str, key: &str) -> Option<Bytes> {
        lock(&self.objects).remove(&(bucket.to_string(), key.to_string())).map(|(b, _, _)| b)
    }

    pub fn get(&self, bucket: &str, key: &str) -> Option<Bytes> {
        lock(&self.objects).get(&(bucket.to_string(), key.to_string())).map(|(b, _, _)| b.clone())
    }

    /// The object's body and ETag.
    fn stored(&self, bucket: &str, key: &str) -> Result<(Bytes, String), StorageError> {
        let objects = lock(&self.objects);
        let (body, _, etag) =
            objects.get(&(bucket.to_string(), key.to_string())).ok_or_else(|| Self::not_found(key))?;
        Ok((body.clone(), etag.clone()))
    }

    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let mut v: Vec<String> =
            lock(&self.objects).keys().filter(|(b, _)| b == bucket).map(|(_, k)| k.clone()).collect();
        v.sort();
        v
    }

    fn not_found(key: &str) -> StorageError {
        StorageError { http_status: 404, code: "NoSuchKey".into(), message: format!("{key} does not exist") }
    }
}

#[async_trait]
impl ObjectStore for InMemoryObjectStore {
    async fn head(&self, bucket: &str, key: &str, _version_id: Option<&str>) -> Result<ObjectHead, StorageError> {
        let (body, etag) = self.stored(bucket, key)?;
        Ok(ObjectHead { etag, size: body.len() as u64, ..Default::default() })
    }

    async fn read(&self, object: &ObjectRef<'_>, options: ReadOptions<'_>) -> Result<ByteStream, StorageError> {
        let ReadOptions { start, end, if_match } = options;
        let (body, stored_etag) = self.stored(object.bucket, object.key)?;
        if let Some(etag) = if_match {
            if etag != stored_etag {
                return Err(StorageError {
                    http_status: 412,
                    code: "PreconditionFailed".into(),
                    message: "ETag".into(),
                });
            }
        }
        let end = end.unwrap_or(body.len() as u64).min(body.len() as u64) as usize;
        let slice = body.slice((start as usize).min(end)..end);
        let piece = self.piece_size.unwrap_or(64 * 1024).max(1);
        let pieces: Vec<std::result::Result<Bytes, StorageError>> =
            (0..slice.len()).step_by(piece).map(|i| Ok(slice.slice(i..(i + piece).min(slice.len())))).collect();
        Ok(Box::pin(futures::stream::iter(pieces)))
    }

    async fn put(&self, bucket: &str, key: &str, body: Bytes, _content_type: &str) -> Result<(), StorageError> {
        self.insert(bucket, key, body);
        Ok(())
    }

    async fn put_with(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        _content_type: &str,
        _options: &PutOptions<'_>,
    ) -> Result<String, StorageError> {
        Ok(self.insert(bucket, key, body))
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        lock(&self.objects).remove(&(bucket.to_string(), key.to_string()));
        Ok(())
    }

    async fn start_upload(&self, _: &str, _: &str, _: &str) -> Result<String, StorageError> {
        let id = crate::clock::uuid().to_string();
        lock(&self.uploads).insert(id.clone(), BTreeMap::new());
        Ok(id)
    }

    async fn upload_part(
        &self,
        _: &str,
        _: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
    ) -> Result<String, StorageError> {
        let etag = hex::encode(Md5::digest(&body));
        let mut uploads = lock(&self.uploads);
        let parts = uploads.get_mut(upload_id).ok_or_else(|| Self::not_found(upload_id))?;
        parts.insert(number, body);
        Ok(etag)
    }

    async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(i32, String)],
    ) -> Result<(), StorageError> {
        let stored = lock(&self.uploads).remove(upload_id).ok_or_else(|| Self::not_found(upload_id))?;
        let last = parts.len().saturating_sub(1);
        let mut body = Vec::new();
        for (i, (n, etag)) in parts.iter().enumerate() {
            let part = stored.get(n).ok_or_else(|| Self::not_found(&format!("part {n}")))?;
            if *etag != hex::encode(Md5::digest(part)) || (i < last && part.len() < 5 * 1024 * 1024) {
                return Err(StorageError {
                    http_status: 400,
                    code: "InvalidPart".into(),
                    message: format!("part {n}"),
                });
            }
            body.extend_from_slice(part);
        }
        self.insert(bucket, key, body);
        Ok(())
    }

    async fn abort_upload(&self, _: &str, _: &str, upload_id: &str) -> Result<(), StorageError> {
        lock(&self.uploads).remove(upload_id);
        Ok(())
    }

    /// Pages of 1,000 keys in key order; the token is the last key of the previous page.
    async fn list(&self, req: &ListRequest<'_>) -> Result<ListPage, StorageError> {
        let objects = lock(&self.objects);
        let mut keys: Vec<(&String, &Stored)> = objects
            .iter()
            .filter(|((b, k), _)| {
                b == req.bucket && k.starts_with(req.prefix) && req.token.is_none_or(|t| k.as_str() > t)
            })
            .map(|((_, k), v)| (k, v))
            .collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        let more = keys.len() > 1000;
        keys.truncate(1000);
        let listed: Vec<ListedObject> = keys
            .into_iter()
            .map(|(k, (body, modified, etag))| ListedObject {
                key: k.clone(),
                version_id: req.versions.then(|| "null".to_string()),
                is_latest: true,
                is_delete_marker: false,
                size: body.len() as u64,
                last_modified: Some(*modified),
                etag: etag.clone(),
                storage_class: "STANDARD".into(),
            })
            .collect();
        let next = if more { listed.last().map(|o| o.key.clone()) } else { None };
        Ok(ListPage { objects: listed, next })
    }

    async fn versioned(&self, _bucket: &str) -> Result<bool, StorageError> {
        Ok(false)
    }

    async fn replication_rules(&self, _bucket: &str) -> Result<Vec<ReplicationRule>, StorageError> {
        Ok(Vec::new())
    }

    async fn tags(&self, _: &str, _: &str, _: Option<&str>) -> Result<Vec<(String, String)>, StorageError> {
        Ok(Vec::new())
    }

    async fn presign_get(&self, bucket: &str, key: &str, _: std::time::Duration) -> Result<String, StorageError> {
        Ok(format!("memory://{bucket}/{key}"))
    }
}
