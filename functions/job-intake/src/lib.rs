//! job-intake: the S3 Control job routes (an axum router that runs under `lambda_http` on
//! Lambda and under `axum::serve` in `batchops local`), and the S3 upload trigger that turns a
//! spec uploaded under `jobs/` into a job, the schedules' target, and the custom resource
//! `Custom::BatchopsJob` of CloudFormation stacks.

pub mod api;
pub mod request;
pub mod resource;
pub mod s3_trigger;
pub mod schedule;
pub mod xml;

use std::sync::Arc;

use batchops_aws::{Clients, Config, IamPassRole, S3ObjectStore, SqsQueue};
use batchops_core::pipeline::Intake;

/// What the trigger and schedule binaries run with: intake from the environment, and the
/// functions' own S3 access (for specs in the specs bucket).
pub async fn intake_from_env() -> Result<(Intake, S3ObjectStore), batchops_aws::config::ConfigError> {
    batchops_aws::init_tracing();
    let config = Config::from_env()?;
    let clients = Clients::from_env().await;
    Ok((intake(&config, &clients), S3ObjectStore::new(clients.s3.clone())))
}

pub fn intake(config: &Config, clients: &Clients) -> Intake {
    Intake {
        ports: config.stage_ports(clients),
        control: Arc::new(SqsQueue::new(clients.sqs.clone(), &config.control_queue_url)),
        pass_role: config
            .check_pass_role
            .then(|| Arc::new(IamPassRole::new(&clients.sdk)) as Arc<dyn batchops_core::ports::PassRoleCheck>),
    }
}
