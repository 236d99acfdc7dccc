//! Lambda entry point of job-intake's S3 trigger (specs bucket notification -> SQS).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use batchops_aws::{init_tracing, lambda::sqs_batch, Clients, Config, S3ObjectStore};
use job_intake::{intake, s3_trigger::handle_message};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = Config::from_env()?;
    let clients = Clients::from_env().await;
    let intake = intake(&config, &clients);
    let objects = S3ObjectStore::new(clients.s3.clone());
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let (intake, objects) = (&intake, &objects);
        async move {
            Ok::<SqsBatchResponse, Error>(
                sqs_batch(
                    event.payload,
                    None,
                    |body, _attempt| async move { handle_message(intake, objects, &body).await },
                )
                .await,
            )
        }
    }))
    .await
}
