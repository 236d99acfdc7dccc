//! `batchops-sim`: runs seeds of the deterministic simulation and checks each (see the lib).

use std::time::{Duration, Instant};

use anyhow::Result;
use batchops_sim::{limits::Limits, run_seed};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Deterministic simulation of batchops: the real pipeline against models of Lambda, SQS and S3")]
struct Args {
    /// Replay one seed, printing its trace.
    #[arg(long)]
    seed: Option<u64>,
    /// How many seeds to run.
    #[arg(long, default_value_t = 200)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Log the pipeline (tracing, info) while replaying one seed.
    #[arg(long)]
    trace: bool,
}

/// Log lines stamped with the simulation's time (seconds since the run began).
struct Virtual;

impl tracing_subscriber::fmt::time::FormatTime for Virtual {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let at = batchops_core::clock::now().duration_since(jiff::Timestamp::UNIX_EPOCH);
        write!(w, "{:>9.3}s", at.as_secs_f64() - batchops_sim::EPOCH.as_secs_f64())
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let limits = Limits::from_template()?;
    if let Some(seed) = args.seed {
        if args.trace {
            tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter("info").with_timer(Virtual).init();
        }
        let r = run_seed(seed, &limits)?;
        for line in &r.trace {
            println!("{line}");
        }
        println!("{r:#?}");
        anyhow::ensure!(r.violations.is_empty(), "seed {seed}: {} violations", r.violations.len());
        return Ok(());
    }
    let started = Instant::now();
    let (mut failed, mut jobs, mut tasks, mut longest, mut split, mut dead, mut killed) =
        (Vec::new(), 0, 0, (Duration::ZERO, 0), 0, 0, 0);
    let mut ended = std::collections::BTreeMap::<String, usize>::new();
    let mut failures = std::collections::BTreeMap::<String, usize>::new();
    for seed in args.from..args.from + args.seeds {
        let r = run_seed(seed, &limits)?;
        jobs += r.jobs;
        tasks += r.tasks;
        split += r.chunks_split;
        dead += r.dead_letters;
        killed += r.crashes + r.timeouts;
        if r.longest > longest.0 {
            longest = (r.longest, seed);
        }
        for (k, n) in &r.ended {
            *ended.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &r.failures {
            *failures.entry(k.clone()).or_default() += n;
        }
        if !r.violations.is_empty() {
            eprintln!("seed {seed}: {} violations (replay: make sim SEED={seed})", r.violations.len());
            for v in r.violations.iter().take(10) {
                eprintln!("  {v}");
            }
            for line in &r.trace {
                eprintln!("  | {line}");
            }
            failed.push(seed);
        }
    }
    println!(
        "sim: {} seeds from {} in {:.0} s: {} jobs, {} tasks; ended {:?}; failure codes {:?}; \
         {} invocations killed, {} chunks handed on, {} dead letters; longest job {} s (seed {}); \
         liveness bound {} min; {} seeds with violations {:?}",
        args.seeds,
        args.from,
        started.elapsed().as_secs_f64(),
        jobs,
        tasks,
        ended,
        failures,
        killed,
        split,
        dead,
        longest.0.as_secs(),
        longest.1,
        batchops_sim::liveness().as_secs() / 60,
        failed.len(),
        failed
    );
    anyhow::ensure!(failed.is_empty(), "{} seeds violated the invariants", failed.len());
    Ok(())
}
