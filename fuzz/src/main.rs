//! `make fuzz SECONDS=n [TARGET=name]`: every target in turn, in rounds of fresh seeds, until
//! the time is spent; the kept regression cases first. A failure is shrunk, kept in
//! `fuzz/regressions/<target>/` and ends the run (exit 1). A run that died (a stack overflow
//! aborts the process) leaves its case in `.local/fuzz/in-flight-<pid>`, kept at the next start.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use batchops_fuzz::{fuzz, keep, quiet_panics, replay, targets, InFlight};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Fuzzes every parser of outside input for a time budget")]
struct Args {
    /// How long to run.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Only this target (see --list).
    #[arg(long)]
    target: Option<String>,
    /// Cases per target and round.
    #[arg(long, default_value_t = 200)]
    cases: u32,
    /// The first round's seed (later rounds count up from it); default: from the clock.
    #[arg(long)]
    seed: Option<u64>,
    /// Lists the targets and exits.
    #[arg(long)]
    list: bool,
    /// Runs this one input through --target (a kept case, to debug it) and exits.
    #[arg(long, requires = "target")]
    input: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let all: Vec<_> =
        targets::all().into_iter().filter(|t| args.target.as_deref().is_none_or(|n| n == t.name)).collect();
    if args.list || all.is_empty() {
        for t in targets::all() {
            println!("{:16} {}", t.name, t.about);
        }
        return Ok(());
    }
    if let Some(path) = &args.input {
        let input = std::fs::read(path)?;
        let start = Instant::now();
        let outcome = batchops_fuzz::run_case(&all[0], &input);
        println!("{}: {} bytes, {:.2} s: {outcome:?}", all[0].name, input.len(), start.elapsed().as_secs_f64());
        return Ok(());
    }
    quiet_panics();
    let dir = std::path::Path::new(".local/fuzz");
    std::fs::create_dir_all(dir)?;
    for left in InFlight::left_by_dead_runs(dir) {
        if let Some((target, input)) = left.take() {
            let path = keep(&target, &input)?;
            println!("a run died on a case of {target} ({} bytes): kept as {}", input.len(), path.display());
        }
    }
    let in_flight = InFlight::new(dir);
    let (failures, ran) = replay(&all);
    println!("regression cases: {ran} replayed, {} failed", failures.len());
    if let Some(f) = failures.first() {
        anyhow::bail!("{}: {}", f.target, f.why);
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs())
    });
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    // Each target gets an equal share of the time, not of the cases: a case of the API takes
    // microseconds, one of a whole job a second.
    let slice =
        Duration::from_secs(args.seconds / all.len() as u64).clamp(Duration::from_secs(1), Duration::from_secs(30));
    let mut ran: BTreeMap<&str, (u64, Duration)> = BTreeMap::new();
    let mut batch = 0u64;
    'rounds: while Instant::now() < deadline {
        for t in &all {
            let end = (Instant::now() + slice).min(deadline);
            let cases = if t.short_cases < 100 { args.cases / 5 } else { args.cases }.max(1);
            while Instant::now() < end {
                let start = Instant::now();
                let result = fuzz(t, cases, seed + batch, Some(&in_flight));
                let entry = ran.entry(t.name).or_default();
                entry.0 += u64::from(cases);
                entry.1 += start.elapsed();
                if let Err(f) = result {
                    in_flight.clear();
                    let path = keep(f.target, &f.input)?;
                    anyhow::bail!("{} (seed {}): {}\nkept as {}", f.target, seed + batch, f.why, path.display());
                }
                batch += 1;
            }
            if Instant::now() >= deadline {
                break 'rounds;
            }
        }
    }
    in_flight.clear();
    println!("{:16} {:>10} {:>9}", "target", "cases", "seconds");
    for (name, (cases, spent)) in &ran {
        println!("{name:16} {cases:>10} {:>9.1}", spent.as_secs_f64());
    }
    println!("{batch} batches from seed {seed}, no failure");
    Ok(())
}
