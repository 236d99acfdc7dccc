//! The deterministic simulation of batchops (`make sim`): the real pipeline code, played
//! against models of Lambda (timeouts, crashes at any await, concurrency), SQS (leases,
//! receive counts, dead-letter queues, lost and duplicated messages, 256 KiB) and S3 (latency,
//! SlowDown, slow tasks), with limits read from `infra/template.yaml`, in virtual time (tokio's
//! paused clock; `batchops_core::clock::simulate` makes the pipeline's time and randomness
//! the run's). One seed decides everything, so a failing seed replays exactly:
//! `make sim SEED=n`. Anchors: FoundationDB's simulation testing, TigerBeetle's VOPR.

pub mod dynamo;
pub mod lambda;
pub mod limits;
pub mod rng;
pub mod scale;
pub mod sqs;
pub mod world;

use std::time::Duration;

pub use world::EPOCH;

/// Runs one seed on a fresh single-threaded runtime with a paused clock.
pub fn run_seed(seed: u64, limits: &limits::Limits) -> anyhow::Result<world::Report> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?;
    Ok(rt.block_on(world::run(seed, limits)))
}

/// The liveness bound the sweep promises with the deployed settings (for the summary).
pub fn liveness() -> Duration {
    batchops_core::pipeline::sweep::Bounds::for_settings(&batchops_core::pipeline::Settings::default()).liveness()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_seed_replays_exactly() {
        let limits = limits::Limits::from_template().unwrap();
        for seed in [1, 7] {
            let a = run_seed(seed, &limits).unwrap();
            let b = run_seed(seed, &limits).unwrap();
            assert_eq!((a.digest, a.trace.clone()), (b.digest, b.trace.clone()), "seed {seed}");
            assert!(a.violations.is_empty(), "seed {seed}: {:#?}", a);
        }
    }
}
