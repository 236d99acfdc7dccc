//! The S3 Control service model of the job operations (`model/s3control-jobs.json`, written
//! from botocore's by `scripts/s3control_model.py`) with batchops' own members and routes
//! merged in (`model/batchops.json`, in the same format). Loaded once; the XML protocol reads
//! every element name, list and map layout and member type from it.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

const S3CONTROL: &str = include_str!("../../model/s3control-jobs.json");
const BATCHOPS: &str = include_str!("../../model/batchops.json");

/// The namespace of S3 Control's XML documents.
pub const NAMESPACE: &str = "http://awss3control.amazonaws.com/doc/2018-08-20/";

#[derive(Debug, Deserialize)]
pub struct Model {
    pub operations: BTreeMap<String, Operation>,
    pub shapes: HashMap<String, Shape>,
}

#[derive(Debug, Deserialize)]
pub struct Operation {
    pub name: String,
    pub http: Http,
    pub input: Option<ShapeRef>,
    pub output: Option<ShapeRef>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Http {
    pub method: String,
    pub request_uri: String,
}

/// A member, a list's member, or a map's key or value: its shape and where it goes.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShapeRef {
    pub shape: String,
    /// `header`, `uri` or `querystring`; none for the body.
    pub location: Option<String>,
    /// The element name, when it is not the member's.
    pub location_name: Option<String>,
    #[serde(default)]
    pub flattened: bool,
}

impl ShapeRef {
    /// Whether the member travels in the XML body (not a header, the path or the query).
    pub fn in_body(&self) -> bool {
        self.location.is_none()
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ShapeType {
    Structure,
    List,
    Map,
    String,
    Boolean,
    Integer,
    Long,
    Float,
    Double,
    Timestamp,
    Blob,
}

#[derive(Debug, Deserialize)]
pub struct Shape {
    #[serde(rename = "type")]
    pub kind: ShapeType,
    #[serde(default)]
    pub members: BTreeMap<String, ShapeRef>,
    pub member: Option<ShapeRef>,
    pub key: Option<ShapeRef>,
    pub value: Option<ShapeRef>,
    #[serde(rename = "enum", default)]
    pub enum_values: Vec<String>,
    #[serde(default)]
    pub required: Vec<String>,
    #[serde(default)]
    pub flattened: bool,
}

impl Shape {
    /// The member written as element `name`, with its member name.
    pub fn member_by_element(&self, name: &str) -> Option<(&str, &ShapeRef)> {
        self.members
            .iter()
            .find(|(m, r)| r.in_body() && r.location_name.as_deref().unwrap_or(m) == name)
            .map(|(m, r)| (m.as_str(), r))
    }
}

/// The element a member is written as.
pub fn element_name<'a>(member: &'a str, r: &'a ShapeRef) -> &'a str {
    r.location_name.as_deref().unwrap_or(member)
}

/// The element name of a list's items (`member` unless the model names another).
pub fn item_name(list: &Shape) -> &str {
    list.member.as_ref().and_then(|m| m.location_name.as_deref()).unwrap_or("member")
}

impl Model {
    /// The merged model, parsed on first use.
    pub fn get() -> &'static Model {
        static MODEL: OnceLock<Model> = OnceLock::new();
        MODEL.get_or_init(|| {
            // Both files ship inside the binary and a unit test loads them: they parse.
            match Model::merge(S3CONTROL, BATCHOPS) {
                Ok(model) => model,
                Err(e) => unreachable!("the embedded S3 Control model parses (a unit test loads it): {e}"),
            }
        })
    }

    /// `base` with the operations, shapes and members of `extra` added (members of a shape
    /// both hold are added to the base's).
    pub fn merge(base: &str, extra: &str) -> Result<Model, serde_json::Error> {
        let mut base: Value = serde_json::from_str(base)?;
        let extra: Value = serde_json::from_str(extra)?;
        for part in ["operations", "shapes"] {
            let Some(items) = extra.get(part).and_then(Value::as_object) else { continue };
            for (name, item) in items {
                let slot = &mut base[part][name];
                match (slot.get_mut("members").and_then(Value::as_object_mut), item.get("members")) {
                    (Some(members), Some(Value::Object(more))) => {
                        members.extend(more.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                    _ => *slot = item.clone(),
                }
            }
        }
        serde_json::from_value(base)
    }

    pub fn shape(&self, name: &str) -> Option<&Shape> {
        self.shapes.get(name)
    }

    /// The operation a request is for, by its method and path: literal segments win over
    /// `{labels}` (`POST /v20180820/jobs/validate` is not a job named `validate`).
    pub fn operation_for(&self, method: &str, path: &str) -> Option<&Operation> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        self.operations
            .values()
            .filter(|op| op.http.method.eq_ignore_ascii_case(method))
            .filter_map(|op| {
                let pattern: Vec<&str> = op.http.request_uri.split('?').next()?.split('/').collect();
                if pattern.len() != segments.len() {
                    return None;
                }
                let mut literal = 0;
                for (p, s) in pattern.iter().zip(&segments) {
                    if p.starts_with('{') {
                        continue;
                    }
                    if p != s {
                        return None;
                    }
                    literal += 1;
                }
                Some((literal, op))
            })
            .max_by_key(|(literal, _)| *literal)
            .map(|(_, op)| op)
    }
}
