//! Lambda entry point of report-finalizer (SQS finalize queue).

use batchops_aws::driver::serve;
use report_finalizer::{finalizer, handle_message};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve("report-finalizer", Some(|c| &c.finalize_queue_url), finalizer, |finalizer, m| async move {
        handle_message(finalizer, &m.body).await
    })
    .await
}
