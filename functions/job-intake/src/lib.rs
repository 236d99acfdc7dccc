//! job-intake: the S3 Control job routes (an axum router that runs under `lambda_http` on
//! Lambda and under `axum::serve` in `batchops local`), and the S3 upload trigger that turns a
//! spec uploaded under `jobs/` into a job.

pub mod api;
pub mod s3_trigger;
pub mod schedule;

use std::sync::Arc;

use batchops_aws::{Clients, Config, DynamoJobStore, IamPassRole, SqsQueue};
use batchops_core::pipeline::Intake;

pub fn intake(config: &Config, clients: &Clients) -> Intake {
    Intake {
        store: Arc::new(DynamoJobStore::from_clients(clients, &config.table)),
        events: config.events(clients),
        control: Arc::new(SqsQueue::new(clients.sqs.clone(), &config.control_queue_url)),
        finalize: Arc::new(SqsQueue::new(clients.sqs.clone(), &config.finalize_queue_url)),
        roles: config.roles(clients),
        pass_role: config
            .check_pass_role
            .then(|| Arc::new(IamPassRole::new(&clients.sdk)) as Arc<dyn batchops_core::ports::PassRoleCheck>),
        settings: config.settings.clone(),
    }
}
