//! Lambda entry point of job-intake's schedule target: one EventBridge Scheduler firing, one
//! job. An error goes back to the scheduler, whose retry policy (and dead-letter queue)
//! decides what happens next; the job's token makes a retried firing create no second job.

use batchops_aws::{init_tracing, Clients, Config, S3ObjectStore};
use job_intake::{intake, schedule::handle};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = Config::from_env()?;
    let clients = Clients::from_env().await;
    let intake = intake(&config, &clients);
    let objects = S3ObjectStore::new(clients.s3.clone());
    run(service_fn(|event: LambdaEvent<Value>| {
        let (intake, objects) = (&intake, &objects);
        async move {
            let input = serde_json::to_vec(&event.payload)?;
            match handle(intake, objects, &input).await {
                Ok(id) => Ok::<Value, Error>(json!({ "JobId": id })),
                Err(e) => {
                    tracing::error!(error = %e, transient = e.is_transient(), "scheduled job not created");
                    Err(e.into())
                }
            }
        }
    }))
    .await
}
