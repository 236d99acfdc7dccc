//! report-finalizer: writes the completion report and ends the job. The logic is
//! `batchops_core::pipeline::Finalizer`; this crate wires it to AWS and to the Lambda event.

use batchops_aws::driver::note_message;
use batchops_aws::{Clients, Config};
use batchops_core::chunk::FinalizeMessage;
use batchops_core::pipeline::Finalizer;
use batchops_core::{Error, Result};

pub fn finalizer(config: &Config, clients: &Clients) -> Finalizer {
    Finalizer { ports: config.stage_ports(clients) }
}

pub async fn handle_message(finalizer: &Finalizer, body: &str) -> Result<()> {
    let msg: FinalizeMessage =
        serde_json::from_str(body).map_err(|e| Error::field("finalize message", format!("unreadable: {e}")))?;
    note_message(Some(&msg.job_id), None);
    finalizer.handle(&msg).await.map(|_| ())
}
