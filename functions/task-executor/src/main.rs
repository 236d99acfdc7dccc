//! Lambda entry point of task-executor (SQS chunk queue, partial batch responses).

use batchops_aws::driver::serve;
use task_executor::{executor, handle_message};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve("task-executor", Some(|c| &c.chunk_queue_url), executor, |executor, m| async move {
        handle_message(executor, &m.body, m.attempt).await.map(|_| ())
    })
    .await
}
