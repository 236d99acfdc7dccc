//! The web console: the S3 console's Batch Operations pages for batchops jobs, served at
//! `/console/` by `batchops local` (beside its API) and by `batchops console` for a deployed
//! stack (which forwards the page's API calls there, signed, so no credentials reach the
//! browser).
//!
//! The page is one hand-written ES module over the JSON API (`console/console.js`), its
//! stylesheet and HTML, compiled into the binary: nothing is built with Node and nothing is
//! fetched from the network at run time.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use std::sync::Arc;

use crate::client::ApiClient;
use crate::health::HealthSource;

const INDEX: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/console.js");
const STYLE: &str = include_str!("../console/console.css");

/// The example specs of `examples/specs/`, offered on the create page.
pub const EXAMPLES: &[(&str, &str)] = &[
    ("LambdaInvoke", include_str!("../../examples/specs/LambdaInvoke.json")),
    ("S3ComputeObjectChecksum", include_str!("../../examples/specs/S3ComputeObjectChecksum.json")),
    ("S3DeleteObject", include_str!("../../examples/specs/S3DeleteObject.json")),
    ("S3DeleteObject-generator", include_str!("../../examples/specs/S3DeleteObject-generator.json")),
    ("S3DeleteObjectTagging", include_str!("../../examples/specs/S3DeleteObjectTagging.json")),
    ("S3InitiateRestoreObject", include_str!("../../examples/specs/S3InitiateRestoreObject.json")),
    ("S3PutObjectAcl", include_str!("../../examples/specs/S3PutObjectAcl.json")),
    ("S3PutObjectCopy", include_str!("../../examples/specs/S3PutObjectCopy.json")),
    ("S3PutObjectLegalHold", include_str!("../../examples/specs/S3PutObjectLegalHold.json")),
    ("S3PutObjectRetention", include_str!("../../examples/specs/S3PutObjectRetention.json")),
    ("S3PutObjectTagging", include_str!("../../examples/specs/S3PutObjectTagging.json")),
    ("S3PutObjectTagging-MERGE", include_str!("../../examples/specs/S3PutObjectTagging-MERGE.json")),
    ("S3PutObjectTagging-inventory", include_str!("../../examples/specs/S3PutObjectTagging-inventory.json")),
    ("S3ReplicateObject", include_str!("../../examples/specs/S3ReplicateObject.json")),
    ("S3UpdateObjectEncryption", include_str!("../../examples/specs/S3UpdateObjectEncryption.json")),
];

fn asset(content_type: &'static str, body: &'static str) -> Response {
    // The assets change only with the binary: revalidating every load keeps a rebuilt one in view.
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

fn examples() -> Response {
    let list: Vec<serde_json::Value> =
        EXAMPLES.iter().map(|(name, text)| serde_json::json!({"Name": name, "Spec": text})).collect();
    axum::Json(serde_json::json!({ "Examples": list })).into_response()
}

/// The console's pages and assets under `/console/`, for any router that also answers the API.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(|| async { asset("text/html; charset=utf-8", INDEX) }))
        .route("/console/console.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/console/console.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
        .route("/console/examples.json", get(|| async { examples() }))
}

/// `batchops console`: the console on `listen` (loopback), its API calls forwarded to `api`
/// (the deployed stack's, signed with the caller's credentials). Runs until Ctrl-C.
/// With `health` (a stack's), the System page's view is read here, with the same credentials.
pub async fn serve(listen: SocketAddr, api: ApiClient, health: Option<Arc<HealthSource>>) -> Result<()> {
    anyhow::ensure!(listen.ip().is_loopback(), "the console serves loopback only (it acts with your credentials)");
    let mut app = routes().route("/v20180820/{*rest}", axum::routing::any(forward)).with_state(Arc::new(api));
    if let Some(health) = health {
        // Loopback names and the page's own origin, always, as `forward` checks: the view is
        // read with your credentials, so no other site's page (nor a rebound name) may read it.
        app = crate::health::routes(health).layer(axum::middleware::from_fn(console_guard)).merge(app);
    }
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    eprintln!("batchops console: http://{}/console/ (Ctrl-C stops it)", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// Whether a call comes from the console's own page: a page of another site must not drive
/// the API (or, through `batchops console`, the user's credentials). The browser names the
/// page's origin on every cross-site fetch and form post, which must then be this server; and
/// the host must be loopback by name, so a site whose name is made to resolve to 127.0.0.1
/// (DNS rebinding) is not taken for this one.
pub fn same_origin(headers: &HeaderMap) -> std::result::Result<(), &'static str> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    if !matches!(name, "127.0.0.1" | "localhost" | "[::1]") {
        return Err("the console answers on loopback names only");
    }
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        Some(origin) if origin != format!("http://{host}") => Err("cross-origin requests are refused"),
        _ => Ok(()),
    }
}

/// `batchops local`'s guard over its API and console: what a browser sends (it names an
/// `Origin`) must come from the console's own page; the CLI and SDKs send none and pass.
pub async fn browser_guard(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if request.headers().contains_key(header::ORIGIN) {
        if let Err(why) = same_origin(request.headers()) {
            return (StatusCode::FORBIDDEN, why).into_response();
        }
    }
    next.run(request).await
}

/// `batchops console`'s guard over what it answers itself with your credentials.
async fn console_guard(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match same_origin(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(why) => (StatusCode::FORBIDDEN, why).into_response(),
    }
}

/// One API call of the page, made again against the deployed API and answered as it answered.
async fn forward(
    State(api): State<std::sync::Arc<ApiClient>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(why) = same_origin(&headers) {
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    match api.forward(method.as_str(), path, body.to_vec()).await {
        Ok((status, body)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(e) => {
            let body = serde_json::json!({"Code": "BadGateway", "Message": format!("{e:#}")});
            (StatusCode::BAD_GATEWAY, axum::Json(body)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_the_consoles_own_page_on_a_loopback_name_may_call_through_it() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8090")])).is_ok());
        assert!(same_origin(&headers(&[("host", "localhost:8090"), ("origin", "http://localhost:8090")])).is_ok());
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8090"), ("origin", "http://evil.example")])).is_err());
        // DNS rebinding: the attacker's name resolved to 127.0.0.1, same origin as far as the browser knows.
        assert!(
            same_origin(&headers(&[("host", "evil.example:8090"), ("origin", "http://evil.example:8090")])).is_err()
        );
    }

    #[test]
    fn every_example_spec_is_offered_and_each_is_json() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/specs");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".json").map(String::from))
            .collect();
        on_disk.sort();
        let offered: Vec<String> = EXAMPLES.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(offered, on_disk, "console.rs embeds examples/specs/ (add new ones to EXAMPLES)");
        for (name, text) in EXAMPLES {
            serde_json::from_str::<serde_json::Value>(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
