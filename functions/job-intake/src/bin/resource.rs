//! Lambda entry point of job-intake's custom resource function (`Custom::BatchopsJob`):
//! CloudFormation's requests, and the checks of requests waiting for their job.

use std::time::{Duration, SystemTime};

use batchops_aws::{Clients, Config};
use job_intake::resource::{ResourceConfig, ResourceFunction, FUNCTION};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    batchops_aws::init_tracing();
    let config = Config::from_env()?;
    let clients = Clients::from_env().await;
    let function = ResourceFunction::new(&config, &clients, ResourceConfig::from_env()?)?;
    run(service_fn(|event: LambdaEvent<Value>| {
        let function = &function;
        async move {
            let left = event.context.deadline().duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
            let answered = function.invoke(event.payload, tokio::time::Instant::now() + left).await;
            batchops_aws::health::flush_metrics(FUNCTION);
            answered.map_err(|e| {
                tracing::error!(error = %e, transient = e.is_transient(), "request not answered");
                Error::from(e)
            })
        }
    }))
    .await
}
