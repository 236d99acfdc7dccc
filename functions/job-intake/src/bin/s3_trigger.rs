//! Lambda entry point of job-intake's S3 trigger (specs bucket notification -> SQS).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use batchops_aws::lambda::sqs_batch;
use job_intake::{intake_from_env, s3_trigger::handle_message};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (intake, objects) = intake_from_env().await?;
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
