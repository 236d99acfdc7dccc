//! Creates the table, queues and buckets that `infra/template.yaml` declares, when they are
//! missing. `batchops local` and the tests use it; on AWS, SAM creates them.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType,
};
use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;
use batchops_core::{Error, Result};

use crate::clients::Clients;
use crate::dynamo::OPEN_INDEX;
use crate::errors::backend;

/// Names of the resources of one batchops installation.
#[derive(Clone, Debug)]
pub struct Names {
    pub table: String,
    pub control_queue: String,
    pub chunk_queue: String,
    pub finalize_queue: String,
    pub specs_queue: String,
    pub specs_bucket: String,
}

impl Names {
    /// Names with a common prefix (`batchops` for the default local installation).
    pub fn with_prefix(prefix: &str) -> Names {
        Names {
            table: format!("{prefix}-jobs"),
            control_queue: format!("{prefix}-control"),
            chunk_queue: format!("{prefix}-chunks"),
            finalize_queue: format!("{prefix}-finalize"),
            specs_queue: format!("{prefix}-specs"),
            specs_bucket: format!("{prefix}-specs"),
        }
    }
}

/// Queue URLs once created.
#[derive(Clone, Debug)]
pub struct Created {
    pub control_queue_url: String,
    pub chunk_queue_url: String,
    pub finalize_queue_url: String,
    pub specs_queue_url: String,
    /// The dead-letter queues (`<queue>-dlq`) of the control, chunk and finalize queues.
    pub control_dlq_url: String,
    pub chunk_dlq_url: String,
    pub finalize_dlq_url: String,
}

/// Receives of a message before SQS moves it to its dead-letter queue, as in the template.
pub const MAX_RECEIVES: u32 = 5;

pub async fn ensure_table(clients: &Clients, table: &str) -> Result<()> {
    let ddb = &clients.dynamodb;
    if let Ok(out) = ddb.describe_table().table_name(table).send().await {
        let indexes = out.table().map(|t| t.global_secondary_indexes()).unwrap_or_default();
        if indexes.iter().any(|i| i.index_name() == Some(OPEN_INDEX)) {
            return Ok(());
        }
        // A table made by an older batchops: the sweep needs the open-jobs index.
        return add_open_index(clients, table).await;
    }
    let b = |e: aws_sdk_dynamodb::error::BuildError| Error::caused("CreateTable", e, false);
    let by_created = GlobalSecondaryIndex::builder()
        .index_name("by-created")
        .key_schema(key("gsi1pk", KeyType::Hash).map_err(b)?)
        .key_schema(key("gsi1sk", KeyType::Range).map_err(b)?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .map_err(b)?;
    let result = ddb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash).map_err(b)?)
        .key_schema(key("sk", KeyType::Range).map_err(b)?)
        .attribute_definitions(attr("pk").map_err(b)?)
        .attribute_definitions(attr("sk").map_err(b)?)
        .attribute_definitions(attr("gsi1pk").map_err(b)?)
        .attribute_definitions(attr("gsi1sk").map_err(b)?)
        .attribute_definitions(attr("open").map_err(b)?)
        .global_secondary_indexes(by_created)
        .global_secondary_indexes(open_index().map_err(b)?)
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_in_use_exception()) => Ok(()),
        Err(e) => Err(backend("CreateTable", e)),
    }
}

fn key(name: &str, kind: KeyType) -> std::result::Result<KeySchemaElement, aws_sdk_dynamodb::error::BuildError> {
    KeySchemaElement::builder().attribute_name(name).key_type(kind).build()
}

fn attr(name: &str) -> std::result::Result<AttributeDefinition, aws_sdk_dynamodb::error::BuildError> {
    AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
}

/// The sparse index of jobs that have not ended ([`OPEN_INDEX`]).
fn open_index() -> std::result::Result<GlobalSecondaryIndex, aws_sdk_dynamodb::error::BuildError> {
    GlobalSecondaryIndex::builder()
        .index_name(OPEN_INDEX)
        .key_schema(key("open", KeyType::Hash)?)
        .key_schema(key("gsi1sk", KeyType::Range)?)
        .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
        .build()
}

async fn add_open_index(clients: &Clients, table: &str) -> Result<()> {
    let b = |e: aws_sdk_dynamodb::error::BuildError| Error::caused("UpdateTable", e, false);
    let create = aws_sdk_dynamodb::types::CreateGlobalSecondaryIndexAction::builder()
        .index_name(OPEN_INDEX)
        .key_schema(key("open", KeyType::Hash).map_err(b)?)
        .key_schema(key("gsi1sk", KeyType::Range).map_err(b)?)
        .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
        .build()
        .map_err(b)?;
    clients
        .dynamodb
        .update_table()
        .table_name(table)
        .attribute_definitions(attr("open").map_err(b)?)
        .attribute_definitions(attr("gsi1sk").map_err(b)?)
        .global_secondary_index_updates(
            aws_sdk_dynamodb::types::GlobalSecondaryIndexUpdate::builder().create(create).build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| backend("UpdateTable", e))
}

pub async fn ensure_queue(clients: &Clients, name: &str, visibility_secs: u32) -> Result<String> {
    let out = clients
        .sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::VisibilityTimeout, visibility_secs.to_string())
        .send()
        .await
        .map_err(|e| backend("CreateQueue", e))?;
    out.queue_url().map(String::from).ok_or_else(|| Error::permanent("CreateQueue", "no queue URL"))
}

/// The ARN of the queue at `url`.
pub async fn queue_arn(clients: &Clients, url: &str) -> Result<String> {
    clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| backend("GetQueueAttributes", e))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| Error::permanent("GetQueueAttributes", "no QueueArn"))
}

/// A queue and its dead-letter queue `<name>-dlq`, where SQS moves a message received
/// [`MAX_RECEIVES`] times (the redrive policy is set apart from the creation, so a queue
/// created before without one gets it too); returns both URLs.
pub async fn ensure_queue_with_dlq(clients: &Clients, name: &str, visibility_secs: u32) -> Result<(String, String)> {
    let url = ensure_queue(clients, name, visibility_secs).await?;
    let dlq = clients
        .sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .map_err(|e| backend("CreateQueue", e))?
        .queue_url()
        .map(String::from)
        .ok_or_else(|| Error::permanent("CreateQueue", "no queue URL"))?;
    let policy =
        serde_json::json!({ "deadLetterTargetArn": queue_arn(clients, &dlq).await?, "maxReceiveCount": MAX_RECEIVES });
    clients
        .sqs
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
        .send()
        .await
        .map_err(|e| backend("SetQueueAttributes", e))?;
    Ok((url, dlq))
}

pub async fn ensure_bucket(clients: &Clients, bucket: &str) -> Result<()> {
    if clients.s3.head_bucket().bucket(bucket).send().await.is_ok() {
        return Ok(());
    }
    match clients.s3.create_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_bucket_already_owned_by_you() || se.is_bucket_already_exists()) =>
        {
            Ok(())
        }
        Err(e) => Err(backend("CreateBucket", e)),
    }
}

/// Everything one installation needs. `visibility_secs` is the chunk queue's visibility
/// timeout: how long a chunk whose handler failed waits before it is delivered again.
pub async fn ensure_all(clients: &Clients, names: &Names, visibility_secs: u32) -> Result<Created> {
    ensure_table(clients, &names.table).await?;
    let (control_queue_url, control_dlq_url) =
        ensure_queue_with_dlq(clients, &names.control_queue, visibility_secs).await?;
    let (chunk_queue_url, chunk_dlq_url) = ensure_queue_with_dlq(clients, &names.chunk_queue, visibility_secs).await?;
    let (finalize_queue_url, finalize_dlq_url) =
        ensure_queue_with_dlq(clients, &names.finalize_queue, visibility_secs).await?;
    let created = Created {
        control_queue_url,
        chunk_queue_url,
        finalize_queue_url,
        specs_queue_url: ensure_queue(clients, &names.specs_queue, visibility_secs).await?,
        control_dlq_url,
        chunk_dlq_url,
        finalize_dlq_url,
    };
    ensure_bucket(clients, &names.specs_bucket).await?;
    let queue_arn = queue_arn(clients, &created.specs_queue_url).await?;
    let rule = QueueConfiguration::builder()
        .queue_arn(queue_arn)
        .events(Event::from("s3:ObjectCreated:*"))
        .filter(
            aws_sdk_s3::types::NotificationConfigurationFilter::builder()
                .key(
                    aws_sdk_s3::types::S3KeyFilter::builder()
                        .filter_rules(
                            aws_sdk_s3::types::FilterRule::builder()
                                .name(aws_sdk_s3::types::FilterRuleName::Prefix)
                                .value("jobs/")
                                .build(),
                        )
                        .filter_rules(
                            aws_sdk_s3::types::FilterRule::builder()
                                .name(aws_sdk_s3::types::FilterRuleName::Suffix)
                                .value(".json")
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .build()
        .map_err(|e| Error::caused("QueueConfiguration", e, false))?;
    let notified = clients
        .s3
        .put_bucket_notification_configuration()
        .bucket(&names.specs_bucket)
        .notification_configuration(NotificationConfiguration::builder().queue_configurations(rule).build())
        .send()
        .await;
    if let Err(e) = notified {
        // Some S3-compatible stores have no notifications: everything but spec uploads works.
        tracing::warn!(
            bucket = %names.specs_bucket,
            error = %aws_sdk_s3::error::DisplayErrorContext(&e),
            "no upload notifications: specs uploaded under jobs/ will not start jobs"
        );
    }
    Ok(created)
}
