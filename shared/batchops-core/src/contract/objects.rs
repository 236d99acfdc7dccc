//! The contract of [`ObjectStore`] as the pipeline uses it for manifests and reports: reads of
//! a byte range, on the condition that the object is still the one its ETag names; uploads
//! in parts; listings by prefix.

use bytes::Bytes;

use crate::ports::{read_all, ListRequest, ObjectRef, ObjectStore, ReadOptions};
use crate::Result;

/// Runs every case of the contract on `store`, in `bucket` (which exists and is empty).
pub async fn object_store(store: &dyn ObjectStore, bucket: &str) -> Result<()> {
    an_object_is_read_by_range_while_its_etag_matches(store, bucket).await?;
    an_object_is_uploaded_in_parts_or_not_at_all(store, bucket).await?;
    objects_are_listed_by_prefix_and_deleted(store, bucket).await
}

async fn read(store: &dyn ObjectStore, object: &ObjectRef<'_>, options: ReadOptions<'_>) -> Result<Vec<u8>> {
    Ok(read_all(store.read(object, options).await?).await?)
}

async fn an_object_is_read_by_range_while_its_etag_matches(store: &dyn ObjectStore, bucket: &str) -> Result<()> {
    let object = ObjectRef::new(bucket, "manifests/m.csv");
    store.put(bucket, object.key, Bytes::from_static(b"0123456789"), "text/csv").await?;
    let head = store.head(bucket, object.key, None).await?;
    assert_eq!(head.size, 10);
    assert_eq!(read(store, &object, ReadOptions::default()).await?, b"0123456789");
    assert_eq!(read(store, &object, ReadOptions { start: 3, ..ReadOptions::default() }).await?, b"3456789");
    assert_eq!(read(store, &object, ReadOptions { start: 2, end: Some(5), if_match: None }).await?, b"234");
    let matching = ReadOptions { end: Some(4), if_match: Some(&head.etag), ..ReadOptions::default() };
    assert_eq!(read(store, &object, matching).await?, b"0123");
    let changed = ReadOptions { if_match: Some("0123456789abcdef0123456789abcdef"), ..ReadOptions::default() };
    match store.read(&object, changed).await {
        Err(e) => assert_eq!(e.http_status, 412, "{e}"),
        Ok(_) => panic!("a read of another ETag fails"),
    }
    match store.read(&ObjectRef::new(bucket, "manifests/missing.csv"), ReadOptions::default()).await {
        Err(e) => assert_eq!(e.http_status, 404, "{e}"),
        Ok(_) => panic!("a missing object is not read"),
    }
    Ok(())
}

async fn an_object_is_uploaded_in_parts_or_not_at_all(store: &dyn ObjectStore, bucket: &str) -> Result<()> {
    let first = Bytes::from(vec![b'a'; 5 * 1024 * 1024]);
    let id = store.start_upload(bucket, "big.json", "application/json").await?;
    let e1 = store.upload_part(bucket, "big.json", &id, 1, first).await?;
    let e2 = store.upload_part(bucket, "big.json", &id, 2, Bytes::from_static(b"tail")).await?;
    store.complete_upload(bucket, "big.json", &id, &[(1, e1), (2, e2)]).await?;
    let head = store.head(bucket, "big.json", None).await?;
    assert_eq!(head.size, 5 * 1024 * 1024 + 4);
    let last = ReadOptions { start: head.size - 5, ..ReadOptions::default() };
    assert_eq!(read(store, &ObjectRef::new(bucket, "big.json"), last).await?, b"atail", "the parts in order");
    let id = store.start_upload(bucket, "aborted.json", "application/json").await?;
    store.upload_part(bucket, "aborted.json", &id, 1, Bytes::from_static(b"x")).await?;
    store.abort_upload(bucket, "aborted.json", &id).await?;
    assert!(store.head(bucket, "aborted.json", None).await.is_err(), "an aborted upload leaves nothing");
    Ok(())
}

async fn objects_are_listed_by_prefix_and_deleted(store: &dyn ObjectStore, bucket: &str) -> Result<()> {
    for key in ["listed/b", "listed/a", "listed/c", "other/a"] {
        store.put(bucket, key, Bytes::from(key.as_bytes().to_vec()), "text/plain").await?;
    }
    let request = ListRequest { bucket, prefix: "listed/", ..ListRequest::default() };
    let page = store.list(&request).await?;
    let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!((keys, page.next), (vec!["listed/a", "listed/b", "listed/c"], None));
    assert_eq!(page.objects[0].size, 8);
    store.delete(bucket, "listed/b").await?;
    let keys: Vec<String> = store.list(&request).await?.objects.into_iter().map(|o| o.key).collect();
    assert_eq!(keys, ["listed/a", "listed/c"]);
    assert!(store.head(bucket, "listed/b", None).await.is_err());
    Ok(())
}
