//! Lambda entry point of report-finalizer (SQS finalize queue).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use batchops_aws::{init_tracing, lambda::sqs_batch, Clients, Config};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use report_finalizer::{finalizer, handle_message};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = Config::from_env()?;
    let finalizer = finalizer(&config, &Clients::from_env().await);
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let finalizer = &finalizer;
        async move {
            Ok::<SqsBatchResponse, Error>(
                sqs_batch(event.payload, |body, _attempt| async move { handle_message(finalizer, &body).await }).await,
            )
        }
    }))
    .await
}
