//! Fuzzing of every parser of outside input, on stable Rust (cargo-fuzz needs nightly):
//! proptest's runner and shrinking over arbitrary and structure-aware inputs, one [`Target`]
//! per parser ([`targets::all`]). Each case asserts that the parser does not panic, answers
//! with an error that names the field or line, and allocates at its peak no more than its
//! target's bound ([`run_case`]); an abort (a stack overflow) ends the process, and `make fuzz`
//! keeps the input that caused it ([`InFlight`]).
//!
//! Inputs that ever failed live in `fuzz/regressions/<target>/` and are replayed before any
//! new case ([`replay`]); `make test` runs them and a short, seeded run of every target
//! (`tests/short.rs`), `make fuzz SECONDS=n` a long one with fresh seeds.

// A test harness, not a shipped path: a case that cannot be set up is a failed run.
#![allow(clippy::expect_used)]

pub mod gen;
pub mod targets;
pub mod world;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use proptest::strategy::BoxedStrategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

/// Counts every allocation of the process: the peak of each case is read against its bound.
#[global_allocator]
static ALLOC: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc;

/// One parser of outside input and how to feed it.
#[derive(Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    /// What is fed to what.
    pub about: &'static str,
    /// Arbitrary and structure-aware inputs.
    pub inputs: fn() -> BoxedStrategy<Vec<u8>>,
    /// The parser on one input: `Err` says which property broke.
    pub check: fn(&[u8]) -> Result<(), String>,
    /// The most bytes a case of this input may allocate at its peak.
    pub memory: fn(&[u8]) -> usize,
    /// Cases in the short run of `make test` (the pipeline targets are slower).
    pub short_cases: u32,
}

/// A case that broke a property: the (shrunk) input and why.
#[derive(Debug)]
pub struct Failure {
    pub target: &'static str,
    pub input: Vec<u8>,
    pub why: String,
}

static PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Keeps panics quiet (proptest shrinks through many), their message and place for the report.
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        *PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some(info.to_string());
    }));
}

/// One case: `target`'s check of `input`, without a panic, within its memory bound.
pub fn run_case(target: &Target, input: &[u8]) -> Result<(), String> {
    let base = ALLOC.current_usage();
    ALLOC.reset_peak_usage();
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| (target.check)(input)));
    let peak = ALLOC.peak_usage().saturating_sub(base);
    match outcome {
        Err(_) => {
            let what = PANIC.lock().unwrap_or_else(|e| e.into_inner()).take();
            Err(format!("panicked: {}", what.unwrap_or_else(|| "(no message)".into())))
        }
        Ok(Err(why)) => Err(why),
        Ok(Ok(())) => {
            let bound = (target.memory)(input);
            if peak > bound {
                return Err(format!("allocated {peak} bytes at its peak, over its bound of {bound}"));
            }
            Ok(())
        }
    }
}

/// `cases` cases of `target` from `seed`; the first failure, shrunk.
pub fn fuzz(target: &Target, cases: u32, seed: u64, in_flight: Option<&InFlight>) -> Result<(), Failure> {
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 512, ..Config::default() };
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let result = runner.run(&(target.inputs)(), |input| {
        if let Some(f) = in_flight {
            f.set(target.name, &input);
        }
        run_case(target, &input).map_err(TestCaseError::fail)
    });
    match result {
        Ok(()) => Ok(()),
        Err(TestError::Fail(why, input)) => Err(Failure { target: target.name, input, why: why.to_string() }),
        Err(TestError::Abort(why)) => Err(Failure { target: target.name, input: Vec::new(), why: why.to_string() }),
    }
}

/// Where the inputs that ever failed are kept, one folder per target.
pub fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions")
}

/// Keeps `input` as a regression case of `target`; returns its path.
pub fn keep(target: &str, input: &[u8]) -> std::io::Result<PathBuf> {
    use md5::{Digest, Md5};
    let dir = regressions_dir().join(target);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}.bin", &hex::encode(Md5::digest(input))[..16]));
    std::fs::write(&path, input)?;
    Ok(path)
}

/// Every kept input run through its target again: the failures, and how many ran.
pub fn replay(targets: &[Target]) -> (Vec<Failure>, usize) {
    let mut failures = Vec::new();
    let mut ran = 0;
    for t in targets {
        let Ok(entries) = std::fs::read_dir(regressions_dir().join(t.name)) else { continue };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let Ok(input) = std::fs::read(&path) else { continue };
            ran += 1;
            if let Err(why) = run_case(t, &input) {
                failures.push(Failure { target: t.name, input, why: format!("{}: {why}", path.display()) });
            }
        }
    }
    (failures, ran)
}

/// The case being run, written before it runs (`in-flight-<pid>` in its folder): an abort (a
/// stack overflow) leaves it behind, and the next run keeps it as a regression case.
pub struct InFlight {
    path: PathBuf,
}

impl InFlight {
    /// This process's file in `dir`.
    pub fn new(dir: &Path) -> InFlight {
        InFlight { path: dir.join(format!("in-flight-{}", std::process::id())) }
    }

    /// The files runs that are no longer running left in `dir` (a run still going keeps its own).
    pub fn left_by_dead_runs(dir: &Path) -> Vec<InFlight> {
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let pid = p.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix("in-flight-"));
                pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists())
            })
            .map(|path| InFlight { path })
            .collect()
    }

    fn set(&self, target: &str, input: &[u8]) {
        let mut body = Vec::with_capacity(target.len() + 1 + input.len());
        body.extend_from_slice(target.as_bytes());
        body.push(b'\n');
        body.extend_from_slice(input);
        let _ = std::fs::write(&self.path, body);
    }

    /// The target and input a run that died left, taken (the file removed).
    pub fn take(&self) -> Option<(String, Vec<u8>)> {
        let body = std::fs::read(&self.path).ok()?;
        let _ = std::fs::remove_file(&self.path);
        let nl = body.iter().position(|b| *b == b'\n')?;
        Some((String::from_utf8_lossy(&body[..nl]).into_owned(), body[nl + 1..].to_vec()))
    }

    pub fn clear(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_left_by_a_dead_run_is_found_and_one_still_running_is_not() {
        let dir = std::env::temp_dir().join(format!("batchops-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        InFlight::new(&dir).set("schedule", b"rate(1 minute)");
        // No process has pid 4194305 (above Linux's pid_max).
        InFlight { path: dir.join("in-flight-4194305") }.set("api", b"GET /");
        let left = InFlight::left_by_dead_runs(&dir);
        assert_eq!(left.len(), 1, "this run's own file is not taken");
        assert_eq!(left[0].take(), Some(("api".to_string(), b"GET /".to_vec())));
        assert!(InFlight::left_by_dead_runs(&dir).is_empty(), "taken once");
        InFlight::new(&dir).clear();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
