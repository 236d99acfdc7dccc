//! Lambda entry point of report-finalizer (SQS finalize queue).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use batchops_aws::{init_tracing, lambda::sqs_batch, Clients, Config};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use report_finalizer::{finalizer, handle_message};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = Config::from_env()?;
    let clients = Clients::from_env().await;
    let finalizer = finalizer(&config, &clients);
    let visibility = &config.visibility(&clients, &config.finalize_queue_url);
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let finalizer = &finalizer;
        async move {
            Ok::<SqsBatchResponse, Error>(
                sqs_batch(event.payload, Some(visibility), |body, _attempt| async move {
                    handle_message(finalizer, &body).await
                })
                .await,
            )
        }
    }))
    .await
}
