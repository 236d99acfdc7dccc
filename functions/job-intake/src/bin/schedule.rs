//! Lambda entry point of job-intake's schedule target: one EventBridge Scheduler firing, one
//! job. An error goes back to the scheduler, whose retry policy (and dead-letter queue)
//! decides what happens next; the job's token makes a retried firing create no second job.

use job_intake::{intake_from_env, schedule::handle};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (intake, objects) = intake_from_env().await?;
    run(service_fn(|event: LambdaEvent<Value>| {
        let (intake, objects) = (&intake, &objects);
        async move {
            let input = serde_json::to_vec(&event.payload)?;
            let created = handle(intake, objects, &input).await;
            batchops_aws::health::flush_metrics("job-intake-schedule");
            match created {
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
