//! S3 Control's own protocol (REST-XML) on the API's routes, so boto3, the AWS CLI and the AWS
//! SDKs run their S3 Batch Operations code against batchops unchanged.
//!
//! A layer around the JSON router translates: an XML request body becomes the JSON body the
//! handlers read, and their JSON answer (or error) becomes the XML S3 Control answers with.
//! A request speaks XML when its `Content-Type` says XML, or when it names no JSON type (in
//! `Content-Type` or `Accept`) and carries `x-amz-account-id`, which every S3 Control request
//! does; anything else is the JSON API, as before. Every shape comes from the model
//! ([`model`]).
//!
//! One XML crate: `roxmltree` reads (it validates: one root, declared prefixes, the five
//! entities, no DTD, a node limit), and answers are written by hand ([`convert`]'s encoder,
//! with its own escaping of newlines, tabs and control characters, which `quick-xml`'s writer
//! does not do). `quick-xml` for both was weighed in issue 24: its reader checks none of the
//! above, and each would have to be written again in front of it.

pub mod convert;
pub mod model;

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use batchops_core::Error;
use serde_json::Value;

use crate::request::{ACCOUNT_HEADER, MAX_REQUEST_BYTES};
use model::Model;

/// Whether a request speaks S3 Control's XML rather than the JSON API.
pub fn speaks_xml(headers: &HeaderMap) -> bool {
    let has = |name: header::HeaderName, what: &str| {
        headers.get(name).and_then(|v| v.to_str().ok()).is_some_and(|v| v.to_ascii_lowercase().contains(what))
    };
    if has(header::CONTENT_TYPE, "xml") {
        return true;
    }
    if has(header::CONTENT_TYPE, "json") || has(header::ACCEPT, "json") {
        return false;
    }
    headers.contains_key(ACCOUNT_HEADER)
}

/// The layer: passes JSON requests through, translates XML ones both ways.
pub async fn protocol(req: Request, next: Next) -> Response {
    if !speaks_xml(req.headers()) {
        return next.run(req).await;
    }
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    if !req.headers().contains_key(ACCOUNT_HEADER) {
        // Every S3 Control operation requires it; the JSON API is the one that may omit it.
        let e = Error::field("AccountId", format!("{ACCOUNT_HEADER} is required"));
        return error_response(&e, &request_id);
    }
    let model = Model::get();
    let op = model.operation_for(req.method().as_str(), req.uri().path());
    let req = match op.and_then(|op| op.input.as_ref()).filter(|i| i.location_name.is_some()) {
        Some(input) => {
            let root = input.location_name.as_deref().unwrap_or_default();
            match json_request(model, root, &input.shape, req).await {
                Ok(req) => req,
                Err(e) => return error_response(&e, &request_id),
            }
        }
        None => req,
    };
    let resp = next.run(req).await;
    let output = op.and_then(|op| op.output.as_ref()).map(|o| o.shape.as_str());
    xml_response(model, output, resp, &request_id).await
}

/// The request with its XML body replaced by the JSON the handlers read.
async fn json_request(model: &Model, root: &str, shape: &str, req: Request) -> Result<Request, Error> {
    let (mut parts, body) = req.into_parts();
    let bytes = to_bytes(body, MAX_REQUEST_BYTES)
        .await
        .map_err(|_| Error::TooLarge { what: "the request body".into(), limit: MAX_REQUEST_BYTES })?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| Error::InvalidBody { message: format!("the request body is not UTF-8: {e}") })?;
    let json = convert::request_json(model, root, shape, text)?;
    let body = serde_json::to_vec(&json).map_err(|e| Error::caused("request JSON", e, false))?;
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Request::from_parts(parts, Body::from(body)))
}

/// The handlers' JSON answer as S3 Control's XML: the output shape's document, or the error
/// document for an error.
async fn xml_response(model: &Model, output: Option<&str>, resp: Response, request_id: &str) -> Response {
    let (parts, body) = resp.into_parts();
    // The handlers' own answers, already bounded by what they hold.
    let json: Value = match to_bytes(body, usize::MAX).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        Err(e) => return error_response(&Error::permanent("answer", e), request_id),
    };
    let xml = if parts.status.is_success() {
        convert::response_xml(model, output.unwrap_or("Result"), &json)
    } else {
        let field = |name: &str| json.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
        convert::error_xml(&field("Code"), &field("Message"), request_id)
    };
    xml_with(parts.status, xml, request_id)
}

pub(crate) fn error_response(e: &Error, request_id: &str) -> Response {
    let (code, status) = e.code_and_status();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    xml_with(status, convert::error_xml(code, &e.to_string(), request_id), request_id)
}

fn xml_with(status: StatusCode, xml: String, request_id: &str) -> Response {
    let mut resp = (status, xml).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amz-request-id", id);
    }
    resp
}

#[cfg(test)]
mod tests;
