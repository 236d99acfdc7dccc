//! Lambda entry point of job-intake's HTTP API (API Gateway, AWS_IAM auth).

use std::sync::Arc;

use batchops_aws::{init_tracing, Clients, Config};
use job_intake::{api::router, intake};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let config = Config::from_env()?;
    let intake = intake(&config, &Clients::from_env().await);
    lambda_http::run(router(Arc::new(intake))).await
}
