//! Lambda entry point of manifest-chunker (SQS control queue).

use std::time::{Duration, SystemTime};
use tokio::time::Instant;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use batchops_aws::{init_tracing, lambda::sqs_batch, Clients, Config};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use manifest_chunker::{chunker, handle_message, DEADLINE_MARGIN};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = Config::from_env()?;
    let clients = Clients::from_env().await;
    let chunker = chunker(&config, &clients);
    let visibility = &config.visibility(&clients, &config.control_queue_url);
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let chunker = &chunker;
        async move {
            // The Lambda deadline, as an Instant, less the margin to hand the work on.
            let left = event.context.deadline().duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
            let deadline = Instant::now() + left.saturating_sub(DEADLINE_MARGIN);
            Ok::<SqsBatchResponse, Error>(
                sqs_batch(event.payload, Some(visibility), |body, _attempt| async move {
                    handle_message(chunker, &body, deadline).await
                })
                .await,
            )
        }
    }))
    .await
}
