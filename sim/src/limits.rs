//! The limits the simulation enforces, read from `infra/template.yaml` (the stack as deployed):
//! each function's timeout, each queue's `maxReceiveCount`, the executors' concurrency.

use std::time::Duration;

const TEMPLATE: &str = include_str!("../../infra/template.yaml");

#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub chunker_timeout: Duration,
    pub executor_timeout: Duration,
    pub finalizer_timeout: Duration,
    pub control_receives: u32,
    pub chunk_receives: u32,
    pub finalize_receives: u32,
    /// `ExecutorMaxConcurrency`'s default.
    pub executor_concurrency: usize,
    /// The executor's `BATCHOPS_TIME_BUDGET_SECS`.
    pub executor_budget: Duration,
    /// `TaskConcurrency`'s and `ChunkSize`'s defaults.
    pub task_concurrency: usize,
    pub chunk_size: u64,
    /// The executor's `MemorySize`, in MB.
    pub executor_mb: f64,
}

impl Limits {
    pub fn from_template() -> anyhow::Result<Limits> {
        let number = |block: &str, key: &str| -> anyhow::Result<u64> {
            let v = value_in(block, key).ok_or_else(|| anyhow::anyhow!("{block}: no {key} in infra/template.yaml"))?;
            Ok(v.trim_matches('"').parse()?)
        };
        Ok(Limits {
            chunker_timeout: Duration::from_secs(number("ManifestChunkerFunction", "Timeout")?),
            executor_timeout: Duration::from_secs(number("TaskExecutorFunction", "Timeout")?),
            finalizer_timeout: Duration::from_secs(number("ReportFinalizerFunction", "Timeout")?),
            control_receives: number("ControlQueue", "maxReceiveCount")? as u32,
            chunk_receives: number("ChunkQueue", "maxReceiveCount")? as u32,
            finalize_receives: number("FinalizeQueue", "maxReceiveCount")? as u32,
            executor_concurrency: number("ExecutorMaxConcurrency", "Default")? as usize,
            executor_budget: Duration::from_secs(number("TaskExecutorFunction", "BATCHOPS_TIME_BUDGET_SECS")?),
            task_concurrency: number("TaskConcurrency", "Default")? as usize,
            chunk_size: number("ChunkSize", "Default")?,
            executor_mb: number("TaskExecutorFunction", "MemorySize")? as f64,
        })
    }
}

/// The value of the first `key:` within the block of the two-space-indented entry `name:`
/// (a resource or parameter), up to the next entry at that indent.
fn value_in(name: &str, key: &str) -> Option<String> {
    let header = format!("  {name}:");
    let mut lines = TEMPLATE.lines().skip_while(|l| l.trim_end() != header).skip(1);
    lines.by_ref().take_while(|l| l.is_empty() || l.starts_with("   ") || l.trim_start().starts_with('#')).find_map(
        |l| {
            let at = l.find(&format!("{key}:"))?;
            let rest = &l[at + key.len() + 1..];
            Some(rest.split([',', '}']).next()?.trim().to_string())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_gives_every_limit() {
        let l = Limits::from_template().unwrap();
        assert_eq!(l.executor_timeout, Duration::from_secs(300));
        assert_eq!(l.chunker_timeout, Duration::from_secs(900));
        assert_eq!(l.chunk_receives, 5);
        assert!(l.executor_budget < l.executor_timeout);
        assert!(l.executor_concurrency >= 2);
        assert_eq!((l.task_concurrency, l.chunk_size), (128, 10_000));
        assert!(l.executor_mb >= 512.0);
    }
}
