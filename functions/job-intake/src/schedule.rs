//! A schedule's firing: EventBridge Scheduler invokes job-intake's schedule function with the
//! schedule's input (`{"batchops": {"Spec" | "SpecLocation", "ScheduleArn", "ScheduledTime",
//! "ExecutionId"}}`); `batchops local` calls the same handler when a schedule comes due.

use batchops_core::job::JobId;
use batchops_core::pipeline::Intake;
use batchops_core::ports::ObjectStore;
use batchops_core::schedule::Firing;
use batchops_core::Result;

/// Creates the firing's job (the same job however often the firing is delivered).
pub async fn handle(intake: &Intake, objects: &dyn ObjectStore, input: &[u8]) -> Result<JobId> {
    let firing = Firing::parse(input)?;
    intake.create_scheduled(&firing, objects).await
}
