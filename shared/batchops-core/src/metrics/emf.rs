//! CloudWatch Embedded Metric Format: the metrics of one Lambda invocation as JSON log lines
//! CloudWatch Logs turns into metrics of namespace `batchops`, with no API call.
//!
//! One line per group of series that share their dimension values and job: the dimension
//! values and `job_id` (a property, not a dimension) are members of the line. A histogram's
//! values go as an array (CloudWatch computes percentiles from them), at most
//! [`MAX_VALUES`] per line as the specification allows; more make more lines.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value as Json};

use super::{Key, Metric, Value};

/// The namespace unless the deployment names its own (`MetricsNamespace` of the template).
pub const NAMESPACE: &str = "batchops";
/// Values of one metric in one line, at most (the specification's limit).
pub const MAX_VALUES: usize = 100;

/// What one line gathers: the series of one dimension set and job.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Group {
    dimensions: Vec<(&'static str, String)>,
    job: Option<String>,
}

/// Who writes the lines: the namespace, the function, and when.
#[derive(Clone, Copy, Debug)]
pub struct Writer<'a> {
    pub namespace: &'a str,
    pub function: &'a str,
    pub timestamp_ms: u64,
}

/// The EMF lines of `series`.
pub fn lines(series: BTreeMap<Key, Value>, writer: Writer<'_>) -> Vec<String> {
    let mut groups: BTreeMap<Group, Vec<(Metric, Value)>> = BTreeMap::new();
    for (key, value) in series {
        let names = key.metric.definition().dimensions;
        let dimensions = names.iter().copied().zip(key.dimensions).collect();
        groups.entry(Group { dimensions, job: key.job }).or_default().push((key.metric, value));
    }
    groups.into_iter().flat_map(|(group, metrics)| group_lines(&group, metrics, writer)).collect()
}

/// The lines of one group: the first carries every counter and gauge and the first values of
/// each histogram, the others the rest of the histograms' values.
fn group_lines(group: &Group, metrics: Vec<(Metric, Value)>, writer: Writer<'_>) -> Vec<String> {
    let mut pages: Vec<Vec<(Metric, Json)>> = vec![Vec::new()];
    for (metric, value) in metrics {
        match value {
            Value::Counter(n) | Value::Gauge(n) => pages[0].push((metric, json!(n))),
            Value::Histogram(h) => {
                let values: Vec<u64> =
                    h.counts.into_iter().flat_map(|(v, n)| std::iter::repeat_n(v, n as usize)).collect();
                for (i, page) in values.chunks(MAX_VALUES).enumerate() {
                    if pages.len() <= i {
                        pages.push(Vec::new());
                    }
                    pages[i].push((metric, json!(page)));
                }
            }
        }
    }
    pages.into_iter().filter(|p| !p.is_empty()).map(|page| line(group, page, writer)).collect()
}

fn line(group: &Group, metrics: Vec<(Metric, Json)>, writer: Writer<'_>) -> String {
    let names: Vec<&str> = group.dimensions.iter().map(|(name, _)| *name).collect();
    let definitions: Vec<Json> = metrics
        .iter()
        .map(|(m, _)| {
            let d = m.definition();
            json!({"Name": d.name, "Unit": d.unit})
        })
        .collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": writer.timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": writer.namespace, "Dimensions": [names], "Metrics": definitions}],
        }),
    );
    for (name, value) in &group.dimensions {
        root.insert((*name).into(), json!(value));
    }
    root.insert("function".into(), json!(writer.function));
    if let Some(job) = &group.job {
        root.insert("job_id".into(), json!(job));
    }
    for (metric, value) in metrics {
        root.insert(metric.definition().name.into(), value);
    }
    Json::Object(root).to_string()
}

/// What the process's registry recorded since the last call, as EMF lines in `namespace`: a
/// Lambda main prints them after every invocation.
pub fn drain(namespace: &str, function: &str) -> Vec<String> {
    let timestamp_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    lines(super::global().take(), Writer { namespace, function, timestamp_ms })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobId;
    use crate::metrics::{Kind, Registry};

    /// A registry with every metric recorded, a histogram past one line's values, two jobs.
    fn everything() -> Registry {
        let registry = Registry::default();
        let (a, b) = (JobId::parse("job-a").unwrap(), JobId::parse("job-b").unwrap());
        for metric in Metric::ALL {
            let d = metric.definition();
            let dims: Vec<&str> = d.dimensions.iter().map(|_| "S3PutObjectTagging").collect();
            match d.kind {
                Kind::Counter => registry.count(metric, &dims, Some(&a), 2),
                Kind::Gauge => registry.gauge(metric, &dims, 7.0),
                Kind::Histogram => (0..250).for_each(|i| registry.observe(metric, &dims, Some(&a), i as f64)),
            }
        }
        registry.count(Metric::TasksSucceeded, &["S3PutObjectTagging"], Some(&b), 5);
        registry.count(Metric::TasksFailed, &["S3PutObjectCopy"], None, 1);
        registry
    }

    fn parsed(lines: &[String]) -> Vec<Json> {
        lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn every_line_validates_against_the_specification() {
        let schema: Json = serde_json::from_str(include_str!("emf.schema.json")).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let writer = Writer { namespace: "batchops/prod", function: "task-executor", timestamp_ms: 1_765_000_000_000 };
        let lines = lines(everything().take(), writer);
        assert!(lines.len() >= 4, "{lines:?}");
        for (line, json) in lines.iter().zip(parsed(&lines)) {
            let errors: Vec<String> =
                validator.iter_errors(&json).map(|e| format!("{} at {}", e, e.instance_path())).collect();
            assert!(errors.is_empty(), "{line}: {errors:?}");
            // What a schema cannot say: every dimension and every metric is a member of the line.
            let directive = &json["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(directive["Namespace"], "batchops/prod");
            for set in directive["Dimensions"].as_array().unwrap() {
                for name in set.as_array().unwrap() {
                    assert!(json[name.as_str().unwrap()].is_string(), "{line}");
                }
            }
            for metric in directive["Metrics"].as_array().unwrap() {
                let value = &json[metric["Name"].as_str().unwrap()];
                assert!(value.is_number() || value.as_array().is_some_and(|v| v.len() <= MAX_VALUES), "{line}");
            }
        }
    }

    #[test]
    fn counts_add_up_by_job_and_histograms_keep_every_value() {
        let writer = Writer { namespace: NAMESPACE, function: "task-executor", timestamp_ms: 1 };
        let lines = parsed(&lines(everything().take(), writer));
        let sum = |name: &str, job: &str| -> f64 {
            lines.iter().filter(|l| l["job_id"] == job).filter_map(|l| l[name].as_f64()).sum()
        };
        assert_eq!(sum("tasks_succeeded", "job-a"), 2.0);
        assert_eq!(sum("tasks_succeeded", "job-b"), 5.0);
        let latencies: usize =
            lines.iter().filter_map(|l| l["task_latency_ms"].as_array()).map(|values| values.len()).sum();
        assert_eq!(latencies, 250, "every observed value is sent, across lines");
        let copy = lines.iter().find(|l| l["operation"] == "S3PutObjectCopy").unwrap();
        assert_eq!(copy["tasks_failed"], 1.0);
        assert!(copy.get("job_id").is_none());
        assert!(lines.iter().all(|l| l["function"] == "task-executor"));
    }
}
