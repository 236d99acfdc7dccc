//! Counts the requests this process makes to AWS (every attempt, as AWS bills them), per
//! service, operation and class: `task` for the requests of a job's operation (the S3 and
//! Lambda clients that run tasks) and `orchestration` for everything else (manifest reads,
//! result files, reports, SQS, DynamoDB, EventBridge). `make cost` and `make bench-scale`
//! read the tallies; nothing is counted until [`enable`] is called, so the interceptor on
//! every client costs one atomic load per request otherwise.
//!
//! DynamoDB bills request units, not requests, so those are derived here from each request's
//! items with DynamoDB's item-size rules: a write costs one unit per KiB of the item (an
//! update is priced at the largest size the item was seen at), a strongly consistent read one
//! unit per 4 KiB, twice that inside a transaction; a Query costs the bytes it returned.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::Value;

static ON: AtomicBool = AtomicBool::new(false);

/// What one service operation of one class cost so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    pub requests: u64,
    /// DynamoDB write request units.
    pub write_units: f64,
    /// DynamoDB read request units.
    pub read_units: f64,
    /// DynamoDB items written (put, updated or deleted).
    pub items_written: u64,
    /// The requests' time from sending to the response read, added up.
    pub latency: Duration,
}

/// When a request was sent (kept with the request's configuration).
#[derive(Debug, Clone, Copy)]
struct Sent(std::time::Instant);

impl aws_smithy_types::config_bag::Storable for Sent {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// Time spent handling messages, per function (a Lambda invocation each).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Invocations {
    pub count: u64,
    pub wall: Duration,
}

/// (class, service, operation)
pub type TallyKey = (&'static str, String, String);

#[derive(Default)]
struct Meter {
    tallies: BTreeMap<TallyKey, Tally>,
    invocations: BTreeMap<String, Invocations>,
    items: Items,
}

/// What the meter knows of DynamoDB items.
#[derive(Default)]
struct Items {
    /// The largest size each item was written at, by table and key.
    sizes: HashMap<String, u64>,
    /// Writes by kind of item (`JOB#/JOB`: a job's item, `JOB#/CHUNK#`: chunk records...):
    /// how often each kind is written, to find the items a big job writes most.
    writes: BTreeMap<String, u64>,
}

fn meter() -> std::sync::MutexGuard<'static, Meter> {
    static METER: OnceLock<Mutex<Meter>> = OnceLock::new();
    METER.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts counting (from zero).
pub fn enable() {
    *meter() = Meter::default();
    ON.store(true, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The tallies so far, by class, service and operation.
pub fn tallies() -> BTreeMap<TallyKey, Tally> {
    meter().tallies.clone()
}

/// The invocations so far, by function.
pub fn invocations() -> BTreeMap<String, Invocations> {
    meter().invocations.clone()
}

/// The tallies and invocations so far as JSON (what `batchops local` writes to
/// `BATCHOPS_METER_FILE` when it stops).
pub fn to_json() -> Value {
    let m = meter();
    let requests: Vec<Value> = m
        .tallies
        .iter()
        .map(|((class, service, op), t)| {
            serde_json::json!({"class": class, "service": service, "operation": op, "requests": t.requests,
                               "write_units": t.write_units, "read_units": t.read_units,
                               "items_written": t.items_written})
        })
        .collect();
    let invocations: serde_json::Map<String, Value> = m
        .invocations
        .iter()
        .map(|(f, i)| (f.clone(), serde_json::json!({"count": i.count, "wall_ms": i.wall.as_millis() as u64})))
        .collect();
    serde_json::json!({"requests": requests, "invocations": invocations, "item_writes": m.items.writes})
}

/// Counts one message handled by `function` in `wall` (`batchops local` calls it where
/// Lambda would have been invoked).
pub fn invoked(function: &str, wall: Duration) {
    if enabled() {
        let mut m = meter();
        let i = m.invocations.entry(function.to_string()).or_default();
        i.count += 1;
        i.wall += wall;
    }
}

/// The interceptor every client of batchops is built with.
#[derive(Debug, Clone, Copy)]
pub struct CountRequests {
    class: &'static str,
}

impl CountRequests {
    /// Requests that carry out tasks.
    pub const TASK: CountRequests = CountRequests { class: "task" };
    /// Every other request.
    pub const ORCHESTRATION: CountRequests = CountRequests { class: "orchestration" };
}

fn operation(cfg: &ConfigBag) -> (String, String) {
    match cfg.load::<Metadata>() {
        Some(m) => (m.service().to_string(), m.name().to_string()),
        None => ("unknown".into(), "unknown".into()),
    }
}

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "CountRequests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !enabled() {
            return Ok(());
        }
        let (service, op) = operation(cfg);
        let mut m = meter();
        let body: Option<Value> = match service.eq_ignore_ascii_case("dynamodb") {
            true => context.request().body().bytes().and_then(|b| serde_json::from_slice(b).ok()),
            false => None,
        };
        let (write_units, read_units) = body.as_ref().map(|b| dynamo_units(&op, b, &mut m.items)).unwrap_or_default();
        let items = body.as_ref().map_or(0, |b| written_items(&op, b));
        let t = m.tallies.entry((self.class, service, op)).or_default();
        t.requests += 1;
        t.write_units += write_units;
        t.read_units += read_units;
        t.items_written += items;
        cfg.interceptor_state().store_put(Sent(std::time::Instant::now()));
        Ok(())
    }

    /// The request's latency; a Query or Scan is billed by the bytes it read, known from its
    /// response.
    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !enabled() {
            return Ok(());
        }
        let (service, op) = operation(cfg);
        let sent = cfg.load::<Sent>().map(|s| s.0.elapsed()).unwrap_or_default();
        let query = service.eq_ignore_ascii_case("dynamodb") && matches!(op.as_str(), "Query" | "Scan");
        let bytes = context.response().body().bytes().map_or(0, |b| b.len() as u64);
        let mut m = meter();
        let t = m.tallies.entry((self.class, service, op)).or_default();
        t.latency += sent;
        if query {
            t.read_units += (bytes.max(1)).div_ceil(4096) as f64;
        }
        Ok(())
    }
}

/// (write units, read units) of one DynamoDB request body.
fn dynamo_units(op: &str, body: &Value, sizes: &mut Items) -> (f64, f64) {
    let table = body["TableName"].as_str().unwrap_or_default();
    match op {
        "PutItem" => (put(table, &body["Item"], sizes), 0.0),
        "UpdateItem" => (update(table, body, sizes), 0.0),
        "DeleteItem" => {
            sizes.wrote(&body["Key"]);
            (known_units(table, &body["Key"], sizes, 1024), 0.0)
        }
        "GetItem" => (0.0, known_units(table, &body["Key"], sizes, 4096)),
        "TransactWriteItems" => {
            let units: f64 = items(&body["TransactItems"])
                .map(|t| {
                    if let Some(p) = t.get("Put") {
                        put(p["TableName"].as_str().unwrap_or_default(), &p["Item"], sizes)
                    } else if let Some(u) = t.get("Update") {
                        update(u["TableName"].as_str().unwrap_or_default(), u, sizes)
                    } else {
                        if let Some(d) = t.get("Delete") {
                            sizes.wrote(&d["Key"]);
                        }
                        let x = t.get("Delete").or_else(|| t.get("ConditionCheck")).unwrap_or(&Value::Null);
                        known_units(x["TableName"].as_str().unwrap_or_default(), &x["Key"], sizes, 1024)
                    }
                })
                .sum();
            (2.0 * units, 0.0)
        }
        "TransactGetItems" => {
            let units: f64 = items(&body["TransactItems"])
                .map(|t| known_units(t["Get"]["TableName"].as_str().unwrap_or_default(), &t["Get"]["Key"], sizes, 4096))
                .sum();
            (0.0, 2.0 * units)
        }
        "BatchWriteItem" => {
            let mut units = 0.0;
            for (table, requests) in body["RequestItems"].as_object().into_iter().flatten() {
                for r in items(requests) {
                    units += match r.get("PutRequest") {
                        Some(p) => put(table, &p["Item"], sizes),
                        None => {
                            sizes.wrote(&r["DeleteRequest"]["Key"]);
                            known_units(table, &r["DeleteRequest"]["Key"], sizes, 1024)
                        }
                    };
                }
            }
            (units, 0.0)
        }
        _ => (0.0, 0.0),
    }
}

/// Items a DynamoDB write request puts, updates or deletes (condition checks write none).
fn written_items(op: &str, body: &Value) -> u64 {
    match op {
        "PutItem" | "UpdateItem" | "DeleteItem" => 1,
        "TransactWriteItems" => {
            items(&body["TransactItems"]).filter(|t| t.get("ConditionCheck").is_none()).count() as u64
        }
        "BatchWriteItem" => {
            body["RequestItems"].as_object().into_iter().flatten().map(|(_, r)| items(r).count() as u64).sum()
        }
        _ => 0,
    }
}

impl Items {
    /// Counts a write of the item with this key by its kind: each key's text up to its `#`
    /// (`JOB#`, `CHUNK#`), or the whole text when it is a fixed name (`JOB`, `LOCK`).
    fn wrote(&mut self, key: &Value) {
        let kind = |v: &Value| {
            let s = v["S"].as_str().unwrap_or_default();
            match s.find('#') {
                Some(i) => s[..=i].to_string(),
                None if s.len() <= 12 && s.bytes().all(|b| b.is_ascii_uppercase()) => s.to_string(),
                None => "*".to_string(),
            }
        };
        *self.writes.entry(format!("{}/{}", kind(&key["pk"]), kind(&key["sk"]))).or_default() += 1;
    }
}

/// DynamoDB writes by kind of item (see [`Items::wrote`]).
pub fn item_writes() -> BTreeMap<String, u64> {
    meter().items.writes.clone()
}

fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// The key of an item: its table and its `pk` and `sk`.
fn item_key(table: &str, item: &Value) -> String {
    format!("{table}|{}|{}", item["pk"], item["sk"])
}

fn put(table: &str, item: &Value, sizes: &mut Items) -> f64 {
    let size = attributes_size(item);
    sizes.wrote(item);
    sizes.sizes.insert(item_key(table, item), size);
    units(size, 1024)
}

/// An update is billed at the larger of the item before and after it; the item after is at
/// least its key and the values the update sets.
fn update(table: &str, body: &Value, sizes: &mut Items) -> f64 {
    let key = item_key(table, &body["Key"]);
    let set = attributes_size(&body["Key"]) + attributes_size(&body["ExpressionAttributeValues"]);
    sizes.wrote(&body["Key"]);
    let size = sizes.sizes.entry(key).or_insert(0);
    *size = (*size).max(set);
    units(*size, 1024)
}

fn known_units(table: &str, key: &Value, sizes: &Items, per: u64) -> f64 {
    let size = sizes.sizes.get(&item_key(table, key)).copied().unwrap_or_else(|| attributes_size(key));
    units(size, per)
}

fn units(size: u64, per: u64) -> f64 {
    size.max(1).div_ceil(per) as f64
}

/// The size DynamoDB counts for a map of attributes in DynamoDB JSON (names plus values).
fn attributes_size(attrs: &Value) -> u64 {
    attrs.as_object().map_or(0, |m| m.iter().map(|(name, v)| name.len() as u64 + value_size(v)).sum())
}

/// DynamoDB's size of one typed value: strings and binaries by their bytes, numbers about
/// one byte per two digits plus one, maps and lists 3 bytes plus one per element.
fn value_size(v: &Value) -> u64 {
    let Some((kind, x)) = v.as_object().and_then(|m| m.iter().next()) else {
        return 0;
    };
    match kind.as_str() {
        "S" | "B" => x.as_str().map_or(0, |s| s.len() as u64),
        "N" => x.as_str().map_or(1, |s| (s.len() as u64).div_ceil(2) + 1),
        "BOOL" | "NULL" => 1,
        "SS" | "BS" => items(x).map(|s| s.as_str().map_or(0, |s| s.len() as u64)).sum(),
        "NS" => items(x).map(|s| s.as_str().map_or(1, |s| (s.len() as u64).div_ceil(2) + 1)).sum(),
        "L" => 3 + items(x).map(|e| 1 + value_size(e)).sum::<u64>(),
        "M" => 3 + x.as_object().map_or(0, |m| m.iter().map(|(k, e)| 1 + k.len() as u64 + value_size(e)).sum()),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_cost_a_unit_per_kib_and_twice_that_in_a_transaction() {
        let mut sizes = Items::default();
        let big = "x".repeat(3000);
        let put = json!({"TableName": "t", "Item": {"pk": {"S": "JOB#1"}, "sk": {"S": "JOB"}, "spec": {"S": big}}});
        assert_eq!(dynamo_units("PutItem", &put, &mut sizes), (3.0, 0.0));
        // An update of the same item is priced at the item's size, not the update's.
        let update = json!({"TableName": "t", "Key": {"pk": {"S": "JOB#1"}, "sk": {"S": "JOB"}},
                            "ExpressionAttributeValues": {":n": {"N": "1"}}});
        assert_eq!(dynamo_units("UpdateItem", &update, &mut sizes), (3.0, 0.0));
        let tx = json!({"TransactItems": [
            {"Update": {"TableName": "t", "Key": {"pk": {"S": "JOB#1"}, "sk": {"S": "JOB"}},
                        "ExpressionAttributeValues": {":n": {"N": "1"}}}},
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "JOB#1"}, "sk": {"S": "C#1"}}}}]});
        assert_eq!(dynamo_units("TransactWriteItems", &tx, &mut sizes), (2.0 * (3.0 + 1.0), 0.0));
        assert_eq!(written_items("TransactWriteItems", &tx), 2);
        let get = json!({"TableName": "t", "Key": {"pk": {"S": "JOB#1"}, "sk": {"S": "JOB"}}});
        assert_eq!(dynamo_units("GetItem", &get, &mut sizes), (0.0, 1.0));
        assert_eq!(sizes.writes.get("JOB#/JOB"), Some(&3), "put, update, and the update in the transaction");
        assert_eq!(sizes.writes.get("JOB#/C#"), Some(&1));
    }

    #[test]
    fn sizes_follow_dynamodbs_rules() {
        assert_eq!(value_size(&json!({"S": "héllo"})), 6);
        assert_eq!(value_size(&json!({"N": "12345"})), 4);
        assert_eq!(value_size(&json!({"L": [{"BOOL": true}, {"S": "ab"}]})), 3 + 2 + 3);
        assert_eq!(attributes_size(&json!({"pk": {"S": "abc"}, "n": {"N": "1"}})), 2 + 3 + 1 + 2);
    }
}
