//! Prices counted requests (`batchops_aws::metering`) at AWS list prices: dollars per million
//! tasks for orchestration and for the operation's own requests, next to S3 Batch Operations.

use std::collections::BTreeMap;
use std::fmt::Write;

use batchops_aws::metering::{Invocations, Tally, TallyKey};

/// When and where the prices below were read.
pub const PRICES_SOURCE: &str = "us-east-1 list prices from aws.amazon.com/{s3,sqs,dynamodb,lambda,eventbridge}/pricing \
     as published in 2025-11 (S3 Standard, SQS standard queues, DynamoDB on-demand, Lambda arm64, EventBridge custom events)";

/// Dollars per million, us-east-1.
pub mod usd_per_million {
    /// S3 PUT, COPY, POST, LIST (and the other writes: tagging, ACL, retention, restore...).
    pub const S3_WRITE: f64 = 5.00;
    /// S3 GET, HEAD and all other requests.
    pub const S3_READ: f64 = 0.40;
    /// SQS standard queue requests (each 64 KiB of payload is one request).
    pub const SQS: f64 = 0.40;
    /// DynamoDB on-demand write request units.
    pub const DYNAMODB_WRU: f64 = 0.625;
    /// DynamoDB on-demand read request units.
    pub const DYNAMODB_RRU: f64 = 0.125;
    /// Lambda requests.
    pub const LAMBDA_REQUEST: f64 = 0.20;
    /// Lambda arm64 compute, per million GB-seconds.
    pub const LAMBDA_GB_SECOND: f64 = 13.3334;
    /// EventBridge custom events (PutEvents entries).
    pub const EVENTS: f64 = 1.00;
    /// S3 Batch Operations, per million object operations (plus $0.25 per job).
    pub const BATCH_OPERATIONS_TASK: f64 = 1.00;
}

/// S3 Batch Operations' charge per job.
pub const BATCH_OPERATIONS_JOB: f64 = 0.25;

/// The latency of a request on AWS, as `make sim-scale` models it from AWS's published
/// figures (`batchops_sim::scale::aws`, each constant citing its source): the middle of each
/// range. An executor waits through these, not through the emulator's.
use batchops_sim::scale::aws::{mid_secs as modelled_secs, vcpu_share};

/// The Lambda function that handles each of `batchops local`'s queues, and its template
/// MemorySize in MB.
pub fn function_of(queue: &str) -> Option<(&'static str, u32)> {
    match queue {
        "control" => Some(("ManifestChunkerFunction", 512)),
        "chunks" => Some(("TaskExecutorFunction", 1024)),
        "finalize" => Some(("ReportFinalizerFunction", 512)),
        "specs" => Some(("SpecTriggerFunction", 512)),
        _ => None,
    }
}

/// The executor's billed seconds for the job on AWS: its tasks' requests at S3's modelled
/// latency, `task_concurrency` at a time, or the CPU they need at the executor's share of a
/// vCPU if that is longer (measured: all of `batchops local`'s CPU time, so more than the
/// executor's), plus every orchestration request counted at its service's modelled latency,
/// one after another (as if the executor made them all: it makes most).
pub fn executor_secs(model: &Model, tallies: &BTreeMap<TallyKey, Tally>, mb: u32) -> f64 {
    use batchops_sim::scale::aws::{DYNAMODB_ITEM_MS, S3_LATENCY_MS, SQS_MS};
    let io = model.tasks as f64 / model.task_concurrency.max(1) as f64 * modelled_secs(S3_LATENCY_MS);
    let cpu = model.cpu_secs / vcpu_share(f64::from(mb));
    let calls: f64 = tallies
        .iter()
        .filter(|((class, ..), _)| *class == "orchestration")
        .map(|((_, service, _), t)| {
            let each = match service.to_ascii_lowercase().as_str() {
                "dynamodb" => modelled_secs(DYNAMODB_ITEM_MS),
                "sqs" => modelled_secs(SQS_MS),
                "s3" => modelled_secs(S3_LATENCY_MS),
                _ => 0.0,
            };
            t.requests as f64 * each
        })
        .sum();
    io.max(cpu) + calls
}

/// How S3 bills one request: (price class, dollars per million).
pub fn s3_price(operation: &str) -> (&'static str, f64) {
    if operation.starts_with("Delete") || operation == "AbortMultipartUpload" {
        ("free", 0.0)
    } else if operation.starts_with("Get") || operation.starts_with("Head") {
        ("GET", usd_per_million::S3_READ)
    } else {
        ("PUT", usd_per_million::S3_WRITE)
    }
}

/// One priced line of a bill.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// `orchestration` or `task`.
    pub class: &'static str,
    pub service: String,
    /// The operation, with how it is priced.
    pub item: String,
    /// Units per 1,000 tasks (requests, request units or GB-seconds).
    pub per_1000: f64,
    pub usd_per_million_tasks: f64,
}

/// What a job's tasks and the machinery around them cost.
#[derive(Clone, Debug, Default)]
pub struct Bill {
    pub tasks: u64,
    pub lines: Vec<Line>,
}

/// Inputs of a bill besides the counts.
pub struct Model {
    pub tasks: u64,
    /// Tasks of one chunk run at a time (the executor's `BATCHOPS_TASK_CONCURRENCY`).
    pub task_concurrency: usize,
    /// CPU seconds `batchops local` spent on the job (all of its stages: more than the
    /// executor's own).
    pub cpu_secs: f64,
}

impl Bill {
    pub fn new(
        model: &Model,
        tallies: &BTreeMap<TallyKey, Tally>,
        invocations: &BTreeMap<String, Invocations>,
    ) -> Bill {
        let mut bill = Bill { tasks: model.tasks.max(1), lines: Vec::new() };
        for ((class, service, op), t) in tallies {
            bill.add_requests(class, service, op, t);
        }
        bill.add_lambda(model, invocations, tallies);
        bill
    }

    fn line(&mut self, class: &'static str, service: &str, item: String, units: f64, usd_per_million_units: f64) {
        let per_task = units / self.tasks as f64;
        self.lines.push(Line {
            class,
            service: service.to_string(),
            item,
            per_1000: per_task * 1000.0,
            usd_per_million_tasks: per_task * usd_per_million_units,
        });
    }

    fn add_requests(&mut self, class: &'static str, service: &str, op: &str, t: &Tally) {
        let requests = t.requests as f64;
        match service.to_ascii_lowercase().as_str() {
            "s3" => {
                let (kind, price) = s3_price(op);
                self.line(class, service, format!("{op} ({kind})"), requests, price);
            }
            "sqs" if op == "ReceiveMessage" => {
                // Lambda's pollers receive for the functions on AWS (one receive per
                // invocation, counted with the functions); batchops local's own receives
                // include its idle long polls, so they are shown and not priced.
                self.line(class, service, format!("{op} (batchops local's pollers; not priced)"), requests, 0.0);
            }
            "sqs" => self.line(class, service, op.to_string(), requests, usd_per_million::SQS),
            "dynamodb" => {
                self.line(class, service, format!("{op} (requests)"), requests, 0.0);
                if t.write_units > 0.0 {
                    self.line(
                        class,
                        service,
                        format!("{op} (write units)"),
                        t.write_units,
                        usd_per_million::DYNAMODB_WRU,
                    );
                }
                if t.read_units > 0.0 {
                    self.line(
                        class,
                        service,
                        format!("{op} (read units)"),
                        t.read_units,
                        usd_per_million::DYNAMODB_RRU,
                    );
                }
            }
            "eventbridge" => self.line(class, service, op.to_string(), requests, usd_per_million::EVENTS),
            "lambda" => self.line(class, service, op.to_string(), requests, usd_per_million::LAMBDA_REQUEST),
            // STS and the rest are free.
            _ => self.line(class, service, op.to_string(), requests, 0.0),
        }
    }

    /// Each message handled is one invocation (batch size 1 for chunks, as deployed; the
    /// others see little traffic) billed for its measured wall time at the function's memory.
    /// The executor's wall time against the emulator is the emulator's latency, not AWS's: it
    /// is billed instead as [`executor_secs`] models it. Each invocation adds one SQS
    /// receive by Lambda's poller (its delete is counted already: batchops local makes it too).
    fn add_lambda(
        &mut self,
        model: &Model,
        invocations: &BTreeMap<String, Invocations>,
        tallies: &BTreeMap<TallyKey, Tally>,
    ) {
        for (queue, inv) in invocations {
            let Some((function, mb)) = function_of(queue) else { continue };
            let mut wall = inv.wall.as_secs_f64();
            if queue == "chunks" {
                wall = executor_secs(model, tallies, mb);
            }
            let n = inv.count as f64;
            self.line("orchestration", "Lambda", format!("{function} requests"), n, usd_per_million::LAMBDA_REQUEST);
            self.line(
                "orchestration",
                "Lambda",
                format!("{function} GB-s ({:.0} ms per invocation at {mb} MB)", wall * 1000.0 / n.max(1.0)),
                wall * f64::from(mb) / 1024.0,
                usd_per_million::LAMBDA_GB_SECOND,
            );
            self.line(
                "orchestration",
                "SQS",
                format!("ReceiveMessage by Lambda for {function}"),
                n,
                usd_per_million::SQS,
            );
        }
    }

    /// Dollars per million tasks of one class.
    pub fn total(&self, class: &str) -> f64 {
        self.lines.iter().filter(|l| l.class == class).map(|l| l.usd_per_million_tasks).sum()
    }

    /// S3 requests per task of one class.
    pub fn s3_requests_per_task(&self, class: &str) -> f64 {
        self.lines
            .iter()
            .filter(|l| l.class == class && l.service.eq_ignore_ascii_case("s3"))
            .map(|l| l.per_1000 / 1000.0)
            .sum()
    }

    /// The bill as a Markdown table, with totals and S3 Batch Operations' price for the same job.
    pub fn render(&self, title: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "\n{title}: {} tasks; {PRICES_SOURCE}\n", self.tasks);
        let _ = writeln!(out, "| class | service | request | per 1,000 tasks | $ per million tasks |");
        let _ = writeln!(out, "|---|---|---|---:|---:|");
        for l in &self.lines {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.3} | {:.5} |",
                l.class, l.service, l.item, l.per_1000, l.usd_per_million_tasks
            );
        }
        let (orch, task) = (self.total("orchestration"), self.total("task"));
        let bops_job = BATCH_OPERATIONS_JOB * 1e6 / self.tasks as f64;
        let _ =
            writeln!(out, "\norchestration: ${orch:.4} per million tasks; the operation's own requests: ${task:.4}");
        let _ = writeln!(
            out,
            "S3 Batch Operations: ${:.2} per million tasks + $0.25 per job (${:.2} per million at this job's size) + the same operation requests (${task:.4})",
            usd_per_million::BATCH_OPERATIONS_TASK,
            usd_per_million::BATCH_OPERATIONS_TASK + bops_job
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn tally(requests: u64, write_units: f64, read_units: f64) -> Tally {
        Tally { requests, write_units, read_units, ..Tally::default() }
    }

    #[test]
    fn requests_are_priced_by_service_and_class() {
        let mut tallies = BTreeMap::new();
        tallies.insert(("task", "S3".to_string(), "CopyObject".to_string()), tally(1000, 0.0, 0.0));
        tallies.insert(("orchestration", "S3".to_string(), "GetObject".to_string()), tally(1, 0.0, 0.0));
        tallies.insert(("orchestration", "S3".to_string(), "DeleteObjects".to_string()), tally(7, 0.0, 0.0));
        tallies.insert(("orchestration", "DynamoDB".to_string(), "TransactWriteItems".to_string()), tally(2, 8.0, 0.0));
        tallies.insert(("orchestration", "SQS".to_string(), "SendMessage".to_string()), tally(3, 0.0, 0.0));
        let mut inv = BTreeMap::new();
        inv.insert("chunks".to_string(), Invocations { count: 1, wall: Duration::from_millis(500) });
        let bill = Bill::new(&Model { tasks: 1000, task_concurrency: 100, cpu_secs: 0.1 }, &tallies, &inv);
        // 1,000 copies at $5 per million requests: $5 per million tasks.
        assert!((bill.total("task") - 5.0).abs() < 1e-9);
        assert_eq!(bill.s3_requests_per_task("task"), 1.0);
        assert!((bill.s3_requests_per_task("orchestration") - 0.008).abs() < 1e-9);
        // Orchestration: one GET (0.0004), 8 WRU (0.005), 3 sends (0.0012), one executor
        // invocation (0.0002 + one receive 0.0004) billed for its tasks, 1,000/100 x 150 ms
        // (longer than 0.1 CPU s at 1,024/1,769 of a vCPU), and its calls at their services'
        // latencies: 8 S3 requests x 150 ms, 2 DynamoDB x 6 ms, 3 SQS x 25 ms; at 1 GB.
        let gbs = (1.5 + 8.0 * 0.150 + 2.0 * 0.006 + 3.0 * 0.025) * 13.3334;
        let expected = (0.4 + 8.0 * 0.625 + 3.0 * 0.4 + 0.2 + 0.4 + gbs) / 1000.0;
        assert!((bill.total("orchestration") - expected).abs() < 1e-9, "{}", bill.render("t"));
        assert!(bill.render("t").contains("| task | S3 | CopyObject (PUT) | 1000.000 | 5.00000 |"));
    }

    #[test]
    fn deletes_are_free_and_reads_cheap() {
        assert_eq!(s3_price("DeleteObjects").1, 0.0);
        assert_eq!(s3_price("HeadObject").1, 0.40);
        assert_eq!(s3_price("PutObjectTagging").1, 5.0);
        assert_eq!(s3_price("RestoreObject").1, 5.0);
    }
}
