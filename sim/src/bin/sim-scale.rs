//! `make sim-scale`: one copy job of many tasks through the real pipeline against AWS as
//! modelled from published figures, in virtual time (see `batchops_sim::scale`).

use std::time::Duration;

use batchops_sim::limits::Limits;
use batchops_sim::scale::{self, Options};
use clap::Parser;

#[derive(Parser)]
#[command(about = "One big copy job through the real pipeline against modelled AWS, in virtual time")]
struct Args {
    #[arg(long, default_value_t = 100_000_000)]
    tasks: u64,
    /// Distinct key prefixes (the keys are listed sorted, as S3 Inventory lists them).
    #[arg(long, default_value_t = 10_000)]
    prefixes: u64,
    /// ExecutorMaxConcurrency (default: the template's).
    #[arg(long)]
    executors: Option<usize>,
    /// TaskConcurrency (default: the template's).
    #[arg(long)]
    task_concurrency: Option<usize>,
    /// ChunkSize (default: the template's).
    #[arg(long)]
    chunk_size: Option<u64>,
    /// The executor's CPU time per task on one core, in microseconds: all of `batchops
    /// local`'s CPU per copy in `make bench` (0.262 CPU s per 1,000, docs/src/benchmarks.md;
    /// x86 over plain HTTP: an arm64 Lambda over TLS may need more).
    #[arg(long, default_value_t = 262)]
    cpu_us_per_task: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 60)]
    sample_secs: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Ok(filter) = std::env::var("RUST_LOG") {
        tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).init();
    }
    let limits = Limits::from_template()?;
    let opts = Options {
        tasks: args.tasks,
        prefixes: args.prefixes,
        executors: args.executors.unwrap_or(limits.executor_concurrency),
        task_concurrency: args.task_concurrency.unwrap_or(limits.task_concurrency),
        chunk_size: args.chunk_size.unwrap_or(limits.chunk_size),
        cpu_per_task: Duration::from_micros(args.cpu_us_per_task),
        executor_mb: limits.executor_mb,
        seed: args.seed,
        sample: Duration::from_secs(args.sample_secs.max(1)),
    };
    let summary = scale::run(&opts, &limits)?;
    print!("{}", summary.render());
    anyhow::ensure!(summary.checked.problems.is_empty(), "the report is not exact: {:?}", summary.checked.problems);
    Ok(())
}
