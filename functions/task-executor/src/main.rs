//! Lambda entry point of task-executor (SQS chunk queue, partial batch responses).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use batchops_aws::{init_tracing, lambda::sqs_batch, Clients, Config};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use task_executor::{executor, handle_message};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = Config::from_env()?;
    let clients = Clients::from_env().await;
    let executor = executor(&config, &clients);
    let visibility = &config.visibility(&clients, &config.chunk_queue_url);
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let executor = &executor;
        async move {
            Ok::<SqsBatchResponse, Error>(
                sqs_batch(event.payload, Some(visibility), |body, attempt| async move {
                    handle_message(executor, &body, attempt).await.map(|_| ())
                })
                .await,
            )
        }
    }))
    .await
}
