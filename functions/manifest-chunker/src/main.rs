//! Lambda entry point of manifest-chunker (SQS control queue).

use batchops_aws::driver::serve;
use manifest_chunker::{chunker, handle_message, DEADLINE_MARGIN};
use tokio::time::Instant;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve("manifest-chunker", Some(|c| &c.control_queue_url), chunker, |chunker, m| async move {
        // The Lambda deadline less the margin to hand the work on.
        let deadline = m.deadline.checked_sub(DEADLINE_MARGIN).unwrap_or_else(Instant::now).max(Instant::now());
        handle_message(chunker, &m.body, deadline).await
    })
    .await
}
