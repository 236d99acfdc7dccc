//! One contract for the `JobStore` port, run against the in-memory store and against the
//! DynamoDB adapter on moto, so that both behave the same.

use anyhow::Result;
use batchops_aws::DynamoJobStore;
use batchops_core::job::{Job, JobId, JobStatus};
use batchops_core::memory::InMemoryJobStore;
use batchops_core::ports::{
    now_ms, Backlog, ChunkLease, ChunkRecord, CreateOutcome, JobFilter, JobStore, LeaseOutcome, ObjectStore,
    PartRecord, Pass, RecordOutcome, ResultFile, Sighting, Waiting, SPLIT_BASE,
};
use batchops_core::spec::JobSpec;
use batchops_core::Error;
use time::OffsetDateTime;

fn job(created_offset: i64) -> Job {
    let spec = JobSpec { priority: Some(3), description: Some("contract".into()), ..JobSpec::default() };
    let created = OffsetDateTime::now_utc() + time::Duration::seconds(created_offset);
    let id = JobId::new_random();
    Job::new(id.clone(), spec, format!("arn:aws:s3:us-east-1:000000000000:job/{id}"), created)
}

fn chunk(index: u64, ok: u64, ko: u64) -> ChunkRecord {
    ChunkRecord {
        index,
        succeeded: ok,
        failed: ko,
        files: vec![ResultFile {
            key: format!("r/{index}.csv"),
            status: "succeeded".into(),
            md5: "00".into(),
            rows: ok,
        }],
    }
}

fn lease(index: u64, owner: &str, secs: i64) -> ChunkLease {
    ChunkLease { index, owner: owner.into(), until_ms: (now_ms() as i64 + secs * 1000) as u64 }
}

/// Claims a chunk for `owner` and records it with its counts.
async fn run(store: &dyn JobStore, id: &JobId, c: ChunkRecord, owner: &str) -> Result<RecordOutcome> {
    store.start_chunk(id, &lease(c.index, owner, 60)).await?;
    Ok(store.record_chunk(id, &c, owner).await?)
}

async fn contract<S: JobStore + Backlog>(store: &S) -> Result<()> {
    // create is idempotent on the token
    let a = job(0);
    assert_eq!(store.create(&a, "tok-a", "h1").await?, CreateOutcome::Created);
    assert_eq!(store.create(&job(0), "tok-a", "h1").await?, CreateOutcome::Existing(a.id.clone()));
    assert_eq!(store.create(&job(0), "tok-a", "h2").await?, CreateOutcome::Conflict);
    assert!(matches!(store.get(&JobId::new_random()).await, Err(Error::JobNotFound { .. })));

    // writes are conditional on the version
    let mut got = store.get(&a.id).await?;
    assert_eq!((got.status, got.priority, got.version), (JobStatus::New, 3, 0));
    got.status = JobStatus::Preparing;
    let stored = store.put(&got).await?;
    assert_eq!(stored.version, 1);
    assert!(matches!(store.put(&got).await, Err(Error::Conflict { .. })), "a stale version loses");
    let mut active = stored.clone();
    active.status = JobStatus::Active;
    let active = store.put(&active).await?;

    // chunks are recorded once, and their counts added to the job
    assert_eq!(run(store, &a.id, chunk(0, 7, 3), "w1").await?, RecordOutcome::Recorded);
    assert_eq!(run(store, &a.id, chunk(0, 7, 3), "w2").await?, RecordOutcome::AlreadyRecorded);
    // ... and a record tried again by its owner (its first answer lost) is its own, counted once
    assert_eq!(store.record_chunk(&a.id, &chunk(0, 7, 3), "w1").await?, RecordOutcome::Recorded);
    store.release_chunk(&a.id, 0, "w2").await?;
    assert_eq!(run(store, &a.id, chunk(1, 5, 0), "w1").await?, RecordOutcome::Recorded);
    assert!(store.chunk_recorded(&a.id, 1).await? && !store.chunk_recorded(&a.id, 2).await?);
    let counted = store.get(&a.id).await?;
    assert_eq!((counted.progress.succeeded, counted.progress.failed, counted.progress.chunks_done), (12, 3, 2));
    assert_eq!(store.chunks(&a.id).await?, vec![chunk(0, 7, 3), chunk(1, 5, 0)]);
    // ... and read back a page at a time, in index order (indexes of inventory parts are large)
    let big = (3 << 32) | 5;
    assert_eq!(run(store, &a.id, chunk(big, 1, 0), "w1").await?, RecordOutcome::Recorded);
    assert!(store.chunk_leases(&a.id).await?.is_empty(), "recording ends the claim");

    // a chunk is claimed by one delivery at a time; a lapsed claim can be taken over
    assert_eq!(store.start_chunk(&a.id, &lease(7, "w1", 60)).await?, LeaseOutcome::Started);
    match store.start_chunk(&a.id, &lease(7, "w2", 60)).await? {
        LeaseOutcome::Held { until_ms } => assert!(until_ms > now_ms() + 50_000, "held until {until_ms}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.record_chunk(&a.id, &chunk(7, 1, 0), "w2").await?, RecordOutcome::LeaseLost);
    assert!(store.renew_chunk(&a.id, &lease(7, "w1", 120)).await?);
    assert!(!store.renew_chunk(&a.id, &lease(7, "w2", 120)).await?);
    store.release_chunk(&a.id, 7, "w2").await?;
    assert_eq!(store.chunk_leases(&a.id).await?.len(), 1, "only its owner releases a claim");
    store.release_chunk(&a.id, 7, "w1").await?;
    assert!(store.chunk_leases(&a.id).await?.is_empty());
    let lapsed = lease(8, "w1", -1);
    assert_eq!(store.start_chunk(&a.id, &lapsed).await?, LeaseOutcome::Started);
    assert_eq!(store.start_chunk(&a.id, &lease(8, "w2", 60)).await?, LeaseOutcome::Started, "taken over");
    assert_eq!(store.record_chunk(&a.id, &chunk(8, 1, 0), "w1").await?, RecordOutcome::LeaseLost);
    // ... and a lapsed claim reaped (the finalizer's) can no longer be recorded
    let stale = lease(8, "w2", -1);
    assert!(store.renew_chunk(&a.id, &stale).await?);
    // a claim renewed since it was read is not reaped, and says so
    assert!(!store.reap_chunk(&a.id, &lease(8, "w2", -5)).await?);
    assert!(store.reap_chunk(&a.id, &stale).await?);
    assert!(store.chunk_leases(&a.id).await?.is_empty());
    assert_eq!(store.record_chunk(&a.id, &chunk(8, 1, 0), "w2").await?, RecordOutcome::LeaseLost);
    assert!(!store.chunk_recorded(&a.id, 8).await?);
    // a chunk claimed before the job was cancelled records what ran
    assert_eq!(store.start_chunk(&a.id, &lease(2, "w1", 60)).await?, LeaseOutcome::Started);
    assert_eq!(store.chunks_after(&a.id, None, 2).await?, vec![chunk(0, 7, 3), chunk(1, 5, 0)]);
    assert_eq!(store.chunks_after(&a.id, Some(0), 5).await?, vec![chunk(1, 5, 0), chunk(big, 1, 0)]);
    assert!(store.chunks_after(&a.id, Some(big), 5).await?.is_empty());

    // inventory files are recorded once per pass, their counts added to that pass's counters
    let part = |pass, part| PartRecord { pass, part, tasks: 10 + part, chunks: 1 };
    assert_eq!(store.record_part(&a.id, &part(Pass::Cut, 0)).await?, RecordOutcome::Recorded);
    assert_eq!(store.record_part(&a.id, &part(Pass::Cut, 0)).await?, RecordOutcome::AlreadyRecorded);
    assert_eq!(store.record_part(&a.id, &part(Pass::Cut, 1)).await?, RecordOutcome::Recorded);
    assert_eq!(store.record_part(&a.id, &part(Pass::Count, 0)).await?, RecordOutcome::Recorded);
    let parts = store.get(&a.id).await?.progress;
    assert_eq!((parts.cut.parts, parts.cut.tasks, parts.cut.chunks), (2, 21, 2));
    assert_eq!((parts.counted.parts, parts.counted.tasks), (1, 10));
    let counted = store.get(&a.id).await?;
    assert_eq!(counted.progress.succeeded, 13);

    // a put never overwrites the counters
    let mut stale_counts = counted.clone();
    stale_counts.progress.succeeded = 0;
    stale_counts.status = JobStatus::Cancelling;
    let cancelling = store.put(&stale_counts).await?;
    assert_eq!(cancelling.progress.succeeded, 13);
    assert_eq!(cancelling.progress.cut.parts, 2, "nor the parts' counters");
    assert!(cancelling.version > active.version);

    // a cancelling job starts no chunk, but records the chunk that was running
    assert_eq!(store.start_chunk(&a.id, &lease(3, "w1", 60)).await?, LeaseOutcome::JobClosed(JobStatus::Cancelling));
    assert_eq!(store.chunk_leases(&a.id).await?.iter().map(|l| l.index).collect::<Vec<_>>(), vec![2]);
    assert_eq!(store.record_chunk(&a.id, &chunk(2, 1, 0), "w1").await?, RecordOutcome::Recorded);
    assert_eq!(store.get(&a.id).await?.progress.succeeded, 14);

    // list: newest first, filtered, paged
    let mut b = job(10);
    b.arn = b.arn.replace(":000000000000:", ":111122223333:");
    let c = job(20);
    store.create(&b, "tok-b", "h").await?;
    store.create(&c, "tok-c", "h").await?;
    let all = JobFilter::default();
    let page = store.list(&all, 2, None).await?;
    let ids: Vec<JobId> = page.jobs.iter().map(|j| j.id.clone()).collect();
    assert_eq!(ids, vec![c.id.clone(), b.id.clone()]);
    let rest = store.list(&all, 2, page.next_token.as_deref()).await?;
    assert_eq!(rest.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>(), vec![a.id.clone()]);
    // ... and by account: full pages of that account's jobs, the others skipped
    let ids_of = |page: &batchops_core::ports::JobPage| page.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>();
    let mine = JobFilter { statuses: &[], account: Some("000000000000"), open: false };
    let first = store.list(&mine, 1, None).await?;
    assert_eq!(ids_of(&first), vec![c.id.clone()]);
    let second = store.list(&mine, 1, first.next_token.as_deref()).await?;
    assert_eq!(ids_of(&second), vec![a.id.clone()], "b, of another account, is skipped");
    let theirs = store.list(&JobFilter { statuses: &[], account: Some("111122223333"), open: false }, 5, None).await?;
    assert_eq!((ids_of(&theirs), theirs.next_token), (vec![b.id.clone()], None));
    let cancelling =
        store.list(&JobFilter { statuses: &[JobStatus::Cancelling], account: None, open: false }, 10, None).await?;
    assert_eq!(cancelling.jobs.len(), 1);
    assert_eq!(cancelling.jobs[0].progress.succeeded, 14);
    assert_eq!(store.record_part(&a.id, &part(Pass::Cut, 2)).await?, RecordOutcome::JobClosed(JobStatus::Cancelling));
    // an ended job records nothing
    let mut ended = store.get(&a.id).await?;
    ended.status = JobStatus::Cancelled;
    store.put(&ended).await?;
    assert_eq!(store.record_chunk(&a.id, &chunk(9, 1, 0), "w1").await?, RecordOutcome::JobClosed(JobStatus::Cancelled));
    assert!(!store.chunk_recorded(&a.id, 9).await?);
    assert_eq!(store.record_part(&a.id, &part(Pass::Cut, 3)).await?, RecordOutcome::JobClosed(JobStatus::Cancelled));
    // the open jobs: those that have not ended, newest first (DynamoDB: the sparse index the
    // sweep reads, which a job leaves when it ends)
    let open = JobFilter { open: true, ..JobFilter::default() };
    assert_eq!(ids_of(&store.list(&open, 10, None).await?), vec![c.id.clone(), b.id.clone()], "a ended");
    let mut c_ended = store.get(&c.id).await?;
    c_ended.status = JobStatus::Failed;
    store.put(&c_ended).await?;
    assert_eq!(ids_of(&store.list(&open, 10, None).await?), vec![b.id.clone()]);
    // a confirmed job's cut goes on while a job of higher priority has it paused
    let p = job(0);
    assert_eq!(store.create(&p, "tok-p", "hp").await?, CreateOutcome::Created);
    for (index, status) in [(0, JobStatus::Pausing), (1, JobStatus::Paused)] {
        let mut paused = store.get(&p.id).await?;
        paused.status = status;
        store.put(&paused).await?;
        assert_eq!(store.record_part(&p.id, &part(Pass::Cut, index)).await?, RecordOutcome::Recorded, "{status}");
    }
    // a chunk that ran part of its tasks hands the rest on, atomically: into the backlog,
    // marked runnable, counted as a chunk to run; fresh indexes are never given twice
    let h = job(0);
    assert_eq!(store.create(&h, "tok-h", "hh").await?, CreateOutcome::Created);
    let mut active = store.get(&h.id).await?;
    active.status = JobStatus::Active;
    store.put(&active).await?;
    let first = store.allocate_chunks(&h.id, 1).await?;
    let second = store.allocate_chunks(&h.id, 2).await?;
    assert!(first >= SPLIT_BASE && second == first + 1, "{first} {second}");
    assert_eq!(store.start_chunk(&h.id, &lease(0, "w1", 60)).await?, LeaseOutcome::Started);
    let rest =
        vec![Waiting { index: second, body: "rest-a".into() }, Waiting { index: second + 1, body: "rest-b".into() }];
    assert_eq!(store.record_handing_on(&h.id, &chunk(0, 5, 0), "w1", &rest).await?, RecordOutcome::Recorded);
    let mut counted = store.get(&h.id).await?;
    assert_eq!((counted.progress.chunks_done, counted.progress.chunks_split, counted.progress.succeeded), (1, 2, 5));
    counted.progress.total_chunks = Some(1);
    assert!(!counted.progress.all_chunks_done(), "the chunks handed on are still to run");
    let backlog: &dyn Backlog = store;
    assert_eq!(backlog.peek(&h.id, 10).await?, rest);
    assert!(backlog.runnable().await?.iter().any(|(j, _)| *j == h.id));
    // tried again (its answer lost): recorded once, handed on once
    assert_eq!(store.record_handing_on(&h.id, &chunk(0, 5, 0), "w1", &rest).await?, RecordOutcome::Recorded);
    assert_eq!(store.get(&h.id).await?.progress.chunks_split, 2);
    // the sweep's sighting of a job: none at first, then what was last put, job by job
    assert_eq!(store.sighting(&p.id).await?, None);
    let seen = Sighting { fingerprint: u64::MAX >> 1, since_ms: now_ms(), nudges: 0 };
    store.put_sighting(&p.id, &seen).await?;
    let nudged = Sighting { nudges: 1, ..seen.clone() };
    store.put_sighting(&p.id, &nudged).await?;
    assert_eq!(store.sighting(&p.id).await?, Some(nudged));
    assert_eq!(store.sighting(&a.id).await?, None);
    assert_eq!(store.get(&p.id).await?.status, JobStatus::Paused, "the job itself is untouched");
    Ok(())
}

#[tokio::test]
async fn the_in_memory_store_keeps_the_contract() -> Result<()> {
    contract(&InMemoryJobStore::default()).await
}

#[tokio::test]
async fn the_dynamodb_store_keeps_the_contract() -> Result<()> {
    let clients = batchops_e2e::clients().await;
    let table = batchops_e2e::unique("contract");
    batchops_aws::resources::ensure_table(&clients, &table).await?;
    contract(&DynamoJobStore::new(clients.dynamodb.clone(), table)).await
}

#[tokio::test]
async fn a_table_made_before_the_open_jobs_index_gets_it_and_its_open_jobs_are_listed() -> Result<()> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
        ScalarAttributeType,
    };
    let clients = batchops_e2e::clients().await;
    let table = batchops_e2e::unique("older");
    // GIVEN the table as batchops made it before: the by-created index alone
    let key = |n: &str, k: KeyType| KeySchemaElement::builder().attribute_name(n).key_type(k).build().unwrap();
    let attr = |n: &str| {
        AttributeDefinition::builder().attribute_name(n).attribute_type(ScalarAttributeType::S).build().unwrap()
    };
    let by_created = GlobalSecondaryIndex::builder()
        .index_name("by-created")
        .key_schema(key("gsi1pk", KeyType::Hash))
        .key_schema(key("gsi1sk", KeyType::Range))
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()?;
    let ddb = &clients.dynamodb;
    let mut create = ddb.create_table().table_name(&table).billing_mode(BillingMode::PayPerRequest);
    create = create.key_schema(key("pk", KeyType::Hash)).key_schema(key("sk", KeyType::Range));
    for a in ["pk", "sk", "gsi1pk", "gsi1sk"] {
        create = create.attribute_definitions(attr(a));
    }
    create.global_secondary_indexes(by_created).send().await?;
    // WHEN batchops starts on it
    batchops_aws::resources::ensure_table(&clients, &table).await?;
    // THEN it has the open-jobs index, and the jobs written from now on are listed there
    let described = ddb.describe_table().table_name(&table).send().await?;
    let names: Vec<String> = described
        .table()
        .map(|t| t.global_secondary_indexes().iter().filter_map(|i| i.index_name().map(String::from)).collect())
        .unwrap_or_default();
    assert!(names.contains(&"open-jobs".to_string()), "{names:?}");
    let store = DynamoJobStore::new(clients.dynamodb.clone(), table);
    let j = job(0);
    store.create(&j, "tok", "h").await?;
    let open = store.list(&JobFilter { open: true, ..JobFilter::default() }, 10, None).await?;
    assert_eq!(open.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>(), vec![j.id.clone()]);
    Ok(())
}

/// The backlog the dispatcher releases chunks from: `peek` answers as many waiting chunks as
/// asked for while that many wait, even when their bodies are far more than one 1 MB query
/// page (inventory chunks are 80-160 KB each); a short answer means nothing more waits.
async fn backlog_contract(backlog: &dyn Backlog) -> Result<()> {
    let id = JobId::new_random();
    let body = |i: u64| format!("{i:03}{}", "x".repeat(120 * 1024));
    backlog.push(&id, (0..24).map(|index| Waiting { index, body: body(index) }).collect()).await?;
    assert!(backlog.runnable().await?.contains(&(id.clone(), 1)));
    let all = backlog.peek(&id, 24).await?;
    assert_eq!(all.iter().map(|w| w.index).collect::<Vec<_>>(), (0..24).collect::<Vec<_>>(), "3 MB of bodies");
    assert!(all.iter().all(|w| w.body == body(w.index)));
    assert_eq!(backlog.peek(&id, 100).await?.len(), 24, "all that wait, no more");
    assert_eq!(backlog.peek(&id, 5).await?.iter().map(|w| w.index).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    backlog.remove(&id, &(0..20).collect::<Vec<_>>()).await?;
    assert_eq!(backlog.peek(&id, 24).await?.iter().map(|w| w.index).collect::<Vec<_>>(), [20, 21, 22, 23]);
    // A push after the count was read keeps the mark; clearing with the current count removes it.
    backlog.push(&id, vec![Waiting { index: 30, body: body(30) }]).await?;
    backlog.unmark(&id, 1).await?;
    assert!(backlog.runnable().await?.contains(&(id.clone(), 2)));
    backlog.unmark(&id, 2).await?;
    assert!(!backlog.runnable().await?.iter().any(|(j, _)| *j == id));
    Ok(())
}

#[tokio::test]
async fn the_backlogs_answer_every_waiting_chunk_asked_for() -> Result<()> {
    backlog_contract(&InMemoryJobStore::default()).await?;
    let clients = batchops_e2e::clients().await;
    let table = batchops_e2e::unique("backlog");
    batchops_aws::resources::ensure_table(&clients, &table).await?;
    backlog_contract(&DynamoJobStore::new(clients.dynamodb.clone(), table)).await
}

/// Chunk messages of inventory jobs are 80-160 KB: ten of them are more than the 1 MiB that
/// one SendMessageBatch may carry (moto refuses it as SQS does), so the queue sends them in
/// as many batches as their bytes need, each message once.
#[tokio::test]
async fn the_sqs_queue_sends_messages_of_any_size_in_batches_sqs_takes() -> Result<()> {
    use batchops_core::ports::Queue;
    let clients = batchops_e2e::clients().await;
    let url = clients.sqs.create_queue().queue_name(batchops_e2e::unique("big")).send().await?;
    let url = url.queue_url().unwrap_or_default().to_string();
    let queue = batchops_aws::SqsQueue::new(clients.sqs.clone(), &url);
    let bodies: Vec<String> = (0..12).map(|i| format!("{i:02}{}", "m".repeat(160 * 1024))).collect();
    queue.send(bodies.clone()).await?;
    let mut got = Vec::new();
    for _ in 0..20 {
        let out = clients.sqs.receive_message().queue_url(&url).max_number_of_messages(10).send().await?;
        got.extend(out.messages().iter().filter_map(|m| m.body().map(String::from)));
        if got.len() >= bodies.len() {
            break;
        }
    }
    got.sort();
    assert_eq!(got, bodies, "each message once");
    Ok(())
}

/// The object store's multipart upload, on moto and in memory alike: parts in order, an
/// abort leaves nothing.
async fn upload_contract(objects: &dyn ObjectStore, bucket: &str) -> Result<()> {
    let first = bytes::Bytes::from(vec![b'a'; 5 * 1024 * 1024]);
    let id = objects.start_upload(bucket, "big.json", "application/json").await?;
    let e1 = objects.upload_part(bucket, "big.json", &id, 1, first).await?;
    let e2 = objects.upload_part(bucket, "big.json", &id, 2, bytes::Bytes::from_static(b"tail")).await?;
    objects.complete_upload(bucket, "big.json", &id, &[(1, e1), (2, e2)]).await?;
    let head = objects.head(bucket, "big.json", None).await?;
    assert_eq!(head.size, 5 * 1024 * 1024 + 4);
    let body = batchops_core::ports::read_all(objects.read(bucket, "big.json", None, head.size - 5, None, None).await?)
        .await?;
    assert_eq!(body, b"atail");
    let id = objects.start_upload(bucket, "aborted.json", "application/json").await?;
    objects.upload_part(bucket, "aborted.json", &id, 1, bytes::Bytes::from_static(b"x")).await?;
    objects.abort_upload(bucket, "aborted.json", &id).await?;
    assert!(objects.head(bucket, "aborted.json", None).await.is_err());
    Ok(())
}

#[tokio::test]
async fn the_object_stores_upload_in_parts() -> Result<()> {
    upload_contract(&batchops_core::memory::InMemoryObjectStore::default(), "mem").await?;
    let clients = batchops_e2e::clients().await;
    let bucket = batchops_e2e::unique("upload");
    clients.s3.create_bucket().bucket(&bucket).send().await?;
    upload_contract(&batchops_aws::s3::S3ObjectStore::new(clients.s3.clone()), &bucket).await
}

/// Receives one message of `url`: its body, receipt and receive count.
async fn receive_one(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<(String, String, u32)> {
    use aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount;
    for _ in 0..30 {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .wait_time_seconds(1)
            .message_system_attribute_names(ApproximateReceiveCount)
            .send()
            .await?;
        if let Some(m) = out.messages().first() {
            let count = m.attributes().and_then(|a| a.get(&ApproximateReceiveCount)).and_then(|n| n.parse().ok());
            return Ok((
                m.body().unwrap_or_default().into(),
                m.receipt_handle().unwrap_or_default().into(),
                count.unwrap_or(0),
            ));
        }
    }
    anyhow::bail!("no message in {url}")
}

#[tokio::test]
async fn a_message_handed_back_to_wait_comes_back_without_using_up_a_receive() -> Result<()> {
    let clients = batchops_e2e::clients().await;
    let url = clients.sqs.create_queue().queue_name(batchops_e2e::unique("wait")).send().await?;
    let url = url.queue_url().unwrap_or_default().to_string();
    clients.sqs.send_message().queue_url(&url).message_body("finalize me").send().await?;
    let visibility = batchops_aws::Visibility::new(
        clients.sqs.clone(),
        &url,
        std::time::Duration::from_secs(30),
        std::time::Duration::from_secs(1),
    );
    let wait = Error::NotYet { message: "chunks in flight".into(), retry_after: std::time::Duration::ZERO };
    for _ in 0..6 {
        // A wait, more often than the queue's maxReceiveCount: requeued, the original done with.
        let (body, receipt, receives) = receive_one(&clients.sqs, &url).await?;
        assert_eq!((body.as_str(), receives), ("finalize me", 1), "a wait uses no receive");
        assert!(visibility.hand_back(&receipt, &body, &wait, receives).await);
        clients.sqs.delete_message().queue_url(&url).receipt_handle(&receipt).send().await?;
    }
    // A failure is handed back as it was, and counts.
    let (body, receipt, receives) = receive_one(&clients.sqs, &url).await?;
    assert!(!visibility.hand_back(&receipt, &body, &Error::transient("test", "throttled"), receives).await);
    let (_, _, receives) = receive_one(&clients.sqs, &url).await?;
    assert_eq!(receives, 2);
    Ok(())
}

/// The sweep's reader of a dead-letter queue on SQS: letters received, ten at most at a time
/// and without waiting; a deleted letter is gone, one not deleted comes back.
#[tokio::test]
async fn the_sqs_dead_letters_are_received_and_deleted() -> Result<()> {
    use aws_sdk_sqs::types::QueueAttributeName;
    use batchops_core::ports::{DeadLetters, Queue};
    let clients = batchops_e2e::clients().await;
    let out = clients
        .sqs
        .create_queue()
        .queue_name(batchops_e2e::unique("dlq"))
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .send()
        .await?;
    let url = out.queue_url().unwrap_or_default().to_string();
    let bodies: Vec<String> = (0..12).map(|i| format!("letter {i:02}")).collect();
    batchops_aws::SqsQueue::new(clients.sqs.clone(), &url).send(bodies.clone()).await?;
    let dead = batchops_aws::SqsDeadLetters::new(clients.sqs.clone(), &url);
    let mut got = Vec::new();
    for _ in 0..10 {
        let letters = dead.receive(100).await?;
        assert!(letters.len() <= 10, "ten at most: {}", letters.len());
        got.extend(letters);
        if got.len() >= bodies.len() {
            break;
        }
    }
    let mut seen: Vec<String> = got.iter().map(|l| l.body.clone()).collect();
    seen.sort();
    assert_eq!(seen, bodies, "each letter once");
    let kept = got.iter().find(|l| l.body == "letter 07").map(|l| l.receipt.clone()).unwrap_or_default();
    for letter in got.iter().filter(|l| l.receipt != kept) {
        dead.delete(&letter.receipt).await?;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let again: Vec<String> = dead.receive(10).await?.into_iter().map(|l| l.body).collect();
    assert_eq!(again, ["letter 07"], "the one not deleted comes back after the visibility timeout");
    Ok(())
}

/// `batchops local`'s queues have the template's dead-letter queues: a control, chunk or
/// finalize message received five times goes to `<queue>-dlq`, where the sweep reads it. (moto
/// honours RedrivePolicy: it moves the message on the receive after the fifth.)
#[tokio::test]
async fn a_local_queue_moves_a_message_to_its_dead_letter_queue_after_five_receives() -> Result<()> {
    use aws_sdk_sqs::types::QueueAttributeName;
    use batchops_aws::resources::{ensure_all, Names, MAX_RECEIVES};
    use batchops_core::ports::DeadLetters;
    let clients = batchops_e2e::clients().await;
    let names = Names::with_prefix(&batchops_e2e::unique("dl"));
    ensure_all(&clients, &names, 30).await?;
    // Again, on queues that exist: the redrive policy is set on them as well.
    let created = ensure_all(&clients, &names, 30).await?;
    for (queue, dlq) in [
        (&created.control_queue_url, &created.control_dlq_url),
        (&created.chunk_queue_url, &created.chunk_dlq_url),
        (&created.finalize_queue_url, &created.finalize_dlq_url),
    ] {
        assert!(dlq.ends_with("-dlq"), "{dlq}");
        let attrs = clients
            .sqs
            .get_queue_attributes()
            .queue_url(queue)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await?;
        let policy = attrs.attributes().and_then(|a| a.get(&QueueAttributeName::RedrivePolicy)).cloned();
        let policy: serde_json::Value = serde_json::from_str(&policy.unwrap_or_default())?;
        assert_eq!(policy["maxReceiveCount"].to_string().trim_matches('"'), MAX_RECEIVES.to_string(), "{queue}");
        let dlq_arn = batchops_aws::resources::queue_arn(&clients, dlq).await?;
        assert_eq!(policy["deadLetterTargetArn"], dlq_arn.as_str(), "{queue}");
    }
    let url = &created.chunk_queue_url;
    clients.sqs.send_message().queue_url(url).message_body("a chunk that always fails").send().await?;
    for n in 1..=MAX_RECEIVES {
        let out =
            clients.sqs.receive_message().queue_url(url).visibility_timeout(0).wait_time_seconds(1).send().await?;
        assert_eq!(out.messages().len(), 1, "receive {n}");
    }
    let out = clients.sqs.receive_message().queue_url(url).wait_time_seconds(1).send().await?;
    assert!(out.messages().is_empty(), "moved after {MAX_RECEIVES} receives");
    let dead = batchops_aws::SqsDeadLetters::new(clients.sqs.clone(), &created.chunk_dlq_url);
    let letters = dead.receive(10).await?;
    assert_eq!(letters.iter().map(|l| l.body.as_str()).collect::<Vec<_>>(), ["a chunk that always fails"]);
    dead.delete(&letters[0].receipt).await?;
    Ok(())
}
