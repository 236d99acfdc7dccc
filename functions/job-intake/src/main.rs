//! Lambda entry point of job-intake's HTTP API (API Gateway, AWS_IAM auth).

use std::sync::Arc;

use batchops_aws::{init_tracing, Clients, Config};
use job_intake::{api::router, intake};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let config = Config::from_env()?;
    let intake = intake(&config, &Clients::from_env().await);
    // A request's metrics (status changes it made, events not delivered) go out with it.
    let app =
        router(Arc::new(intake)).layer(axum::middleware::map_response(|response: axum::response::Response| async {
            batchops_aws::health::flush_metrics("job-intake");
            response
        }));
    lambda_http::run(app).await
}
