//! The ports' contracts ([`batchops_core::contract`], one suite per port, which the in-memory
//! backends keep in batchops-core's unit tests) run against the AWS adapters on moto, so that
//! both behave the same; and what only the adapters do (a table made before an index, SQS
//! batches, visibility, dead letters).

use anyhow::Result;
use batchops_aws::DynamoJobStore;
use batchops_core::contract;
use batchops_core::job::{Job, JobId};
use batchops_core::ports::{JobFilter, JobRecords};
use batchops_core::spec::JobSpec;
use batchops_core::Error;
use jiff::Timestamp;

/// The store over a table of its own, serialized as the functions' stores are on an emulator
/// (moto's conditional writes are not atomic): a race the contract runs is decided there by
/// the order of the writes, each of which must still meet its condition.
async fn fresh_store(tag: &str) -> Result<DynamoJobStore> {
    let clients = batchops_e2e::clients().await;
    let table = batchops_e2e::unique(tag);
    batchops_aws::resources::ensure_table(&clients, &table).await?;
    Ok(DynamoJobStore::new(clients.dynamodb.clone(), table).serialized_on_emulators(true))
}

#[tokio::test]
async fn the_dynamodb_job_records_keep_the_contract() -> Result<()> {
    Ok(contract::job_records(&fresh_store("records").await?).await?)
}

#[tokio::test]
async fn the_dynamodb_chunk_ledger_keeps_the_contract() -> Result<()> {
    Ok(contract::chunk_ledger(&fresh_store("chunks").await?).await?)
}

#[tokio::test]
async fn the_dynamodb_report_ledger_keeps_the_contract() -> Result<()> {
    Ok(contract::report_ledger(&fresh_store("report").await?).await?)
}

#[tokio::test]
async fn the_dynamodb_backlog_keeps_the_contract() -> Result<()> {
    Ok(contract::backlog(&fresh_store("backlog").await?).await?)
}

#[tokio::test]
async fn the_s3_object_store_keeps_the_contract() -> Result<()> {
    let clients = batchops_e2e::clients().await;
    let bucket = batchops_e2e::unique("objects");
    clients.s3.create_bucket().bucket(&bucket).send().await?;
    Ok(contract::object_store(&batchops_aws::s3::S3ObjectStore::new(clients.s3.clone()), &bucket).await?)
}

fn job() -> Job {
    let spec = JobSpec { priority: Some(3), description: Some("contract".into()), ..JobSpec::default() };
    let id = JobId::new_random();
    Job::new(id.clone(), spec, format!("arn:aws:s3:us-east-1:000000000000:job/{id}"), Timestamp::now())
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
    let j = job();
    store.create(&j, "tok", "h").await?;
    let open = store.list(&JobFilter { open: true, ..JobFilter::default() }, 10, None).await?;
    assert_eq!(open.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>(), vec![j.id.clone()]);
    Ok(())
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
