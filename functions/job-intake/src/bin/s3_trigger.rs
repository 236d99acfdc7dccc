//! Lambda entry point of job-intake's S3 trigger (specs bucket notification -> SQS).

use batchops_aws::driver::serve;
use batchops_aws::S3ObjectStore;
use job_intake::{intake, s3_trigger::handle_message};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let build =
        |config: &_, clients: &batchops_aws::Clients| (intake(config, clients), S3ObjectStore::new(clients.s3.clone()));
    serve(
        "spec-trigger",
        None,
        build,
        |(intake, objects), m| async move { handle_message(intake, objects, &m.body).await },
    )
    .await
}
