//! The short run in `make test`: every kept regression case, then every target's short run
//! from a fixed seed (FUZZ_SEED for another). One test, so that cases run one at a time and
//! each one's peak of memory is its own.

use batchops_fuzz::{fuzz, quiet_panics, replay, targets};

#[test]
fn every_parser_holds_on_its_regression_cases_and_a_short_run() {
    quiet_panics();
    let all = targets::all();
    let (failures, ran) = replay(&all);
    assert!(ran >= 5, "the regression cases are missing ({ran})");
    assert!(failures.is_empty(), "{failures:#?}");
    let seed = std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(23);
    for t in &all {
        let start = std::time::Instant::now();
        if let Err(f) = fuzz(t, t.short_cases, seed, None) {
            let path = batchops_fuzz::keep(f.target, &f.input);
            panic!("{}: {} (input of {} bytes kept as {path:?})", f.target, f.why, f.input.len());
        }
        println!("{:16} {:>5} cases {:>6.1} s", t.name, t.short_cases, start.elapsed().as_secs_f64());
    }
}
