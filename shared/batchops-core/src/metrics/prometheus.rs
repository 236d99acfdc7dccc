//! Prometheus' text exposition format (0.0.4) of the registry, for `batchops local`'s
//! `GET /metrics`: the names of [`super::Metric`] as they are, the job left out (summed over).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Histogram, Key, Kind, Metric, Value};

/// Histogram bucket bounds, in milliseconds: a fast tag to a multipart copy's minutes.
pub const BUCKETS_MS: [u64; 14] = [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000];

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric, with HELP and TYPE lines even before it has a value (a counter without
/// dimensions shows 0), so a scrape lists them all.
pub fn render(series: &BTreeMap<Key, Value>) -> String {
    let mut out = String::new();
    for metric in Metric::ALL {
        let d = metric.definition();
        let kind = match d.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {}\n# TYPE {} {kind}", d.name, d.help, d.name);
        let summed = by_dimensions(series, metric);
        if summed.is_empty() && d.dimensions.is_empty() && d.kind != Kind::Histogram {
            let _ = writeln!(out, "{} 0", d.name);
        }
        for (values, value) in summed {
            let labels = labels(d.dimensions, &values);
            match value {
                Value::Counter(n) | Value::Gauge(n) => {
                    let _ = writeln!(out, "{}{} {n}", d.name, braces(&labels));
                }
                Value::Histogram(h) => histogram(&mut out, d.name, &labels, &h),
            }
        }
    }
    out
}

/// The series of `metric` summed over jobs, by dimension values.
fn by_dimensions(series: &BTreeMap<Key, Value>, metric: Metric) -> BTreeMap<Vec<String>, Value> {
    let mut summed: BTreeMap<Vec<String>, Value> = BTreeMap::new();
    for (key, value) in series.iter().filter(|(k, _)| k.metric == metric) {
        match (summed.get_mut(&key.dimensions), value) {
            (None, v) => {
                summed.insert(key.dimensions.clone(), v.clone());
            }
            (Some(Value::Counter(a)), Value::Counter(b)) => *a += b,
            (Some(Value::Gauge(a)), Value::Gauge(b)) => *a = *b,
            (Some(Value::Histogram(a)), Value::Histogram(b)) => a.merge(b),
            _ => {}
        }
    }
    summed
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let sep = if labels.is_empty() { "" } else { "," };
    for bound in BUCKETS_MS {
        let below: u64 = h.counts.range(..=bound).map(|(_, n)| n).sum();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {below}");
    }
    let count: u64 = h.counts.values().sum();
    let sum = h.sum;
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
    let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
}

fn labels(names: &[&str], values: &[String]) -> String {
    let escape = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    names.iter().zip(values).map(|(n, v)| format!("{n}=\"{}\"", escape(v))).collect::<Vec<_>>().join(",")
}

fn braces(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobId;
    use crate::metrics::Registry;

    #[test]
    fn jobs_are_summed_and_histograms_bucketed() {
        let registry = Registry::default();
        let (a, b) = (JobId::parse("job-a").unwrap(), JobId::parse("job-b").unwrap());
        registry.count(Metric::TasksSucceeded, &["S3PutObjectTagging"], Some(&a), 3);
        registry.count(Metric::TasksSucceeded, &["S3PutObjectTagging"], Some(&b), 4);
        registry.count(Metric::JobTransitions, &["Complete"], Some(&a), 1);
        for ms in [3.0, 40.0, 40.0, 700.25] {
            registry.observe(Metric::TaskLatency, &["S3PutObjectTagging"], Some(&a), ms);
        }
        let text = render(&registry.snapshot());
        assert!(text.contains("tasks_succeeded{operation=\"S3PutObjectTagging\"} 7\n"), "{text}");
        assert!(text.contains("job_transitions{status=\"Complete\"} 1\n"));
        assert!(text.contains("task_latency_ms_bucket{operation=\"S3PutObjectTagging\",le=\"5\"} 1\n"));
        assert!(text.contains("task_latency_ms_bucket{operation=\"S3PutObjectTagging\",le=\"50\"} 3\n"));
        assert!(
            text.contains("task_latency_ms_bucket{operation=\"S3PutObjectTagging\",le=\"500\"} 3\n"),
            "700.25 is over 500"
        );
        assert!(text.contains("task_latency_ms_bucket{operation=\"S3PutObjectTagging\",le=\"+Inf\"} 4\n"));
        assert!(text.contains("task_latency_ms_count{operation=\"S3PutObjectTagging\"} 4\n"));
        assert!(text.contains("task_latency_ms_sum{operation=\"S3PutObjectTagging\"} 783.25\n"));
        assert!(text.contains("events_not_delivered 0\n"), "a counter without dimensions shows before it counts");
        assert!(!text.contains("job-a"), "no job id reaches Prometheus");
    }

    #[test]
    fn the_names_are_the_emf_names() {
        let registry = Registry::default();
        for metric in Metric::ALL {
            let d = metric.definition();
            let dims: Vec<&str> = d.dimensions.iter().map(|_| "x").collect();
            match d.kind {
                Kind::Counter => registry.count(metric, &dims, None, 1),
                Kind::Gauge => registry.gauge(metric, &dims, 1.0),
                Kind::Histogram => registry.observe(metric, &dims, None, 1.0),
            }
        }
        let text = render(&registry.snapshot());
        let exposed: std::collections::BTreeSet<String> = text
            .lines()
            .filter(|l| l.starts_with("# TYPE "))
            .map(|l| l.split(' ').nth(2).unwrap_or_default().to_string())
            .collect();
        let writer = super::super::emf::Writer { namespace: "batchops", function: "f", timestamp_ms: 1 };
        let lines = super::super::emf::lines(registry.take(), writer);
        let mut emitted = std::collections::BTreeSet::new();
        for line in &lines {
            let json: serde_json::Value = serde_json::from_str(line).unwrap();
            for m in json["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap() {
                emitted.insert(m["Name"].as_str().unwrap().to_string());
            }
        }
        assert_eq!(exposed, emitted);
        assert_eq!(exposed.len(), Metric::ALL.len());
    }
}
