//! The HTTP API: S3 Control's job routes with JSON bodies.
//!
//! | Route | Answer |
//! |---|---|
//! | `POST /v20180820/jobs` | `{"JobId"}` |
//! | `POST /v20180820/jobs/validate` (batchops) | `{"Problems": [{"Code","Member","Message"}]}`: every member CreateJob would refuse |
//! | `GET /v20180820/jobs/{id}` | `{"Job": JobDescriptor}` |
//! | `GET /v20180820/jobs?jobStatuses=..&maxResults=..&nextToken=..` | `{"Jobs": [...], "NextToken"}` |
//! | `POST /v20180820/jobs/{id}/status?requestedJobStatus=..&statusUpdateReason=..` | `{"JobId","Status","StatusUpdateReason"}` |
//! | `POST /v20180820/jobs/{id}/priority?priority=..` | `{"JobId","Priority"}` |
//! | `POST /v20180820/jobs/{id}/rate?maxTasksPerSecond=..` (batchops) | `{"JobId","MaxTasksPerSecond"}` |
//! | `GET /v20180820/jobs/{id}/tagging` | `{"Tags": [{"Key","Value"}]}` |
//! | `PUT /v20180820/jobs/{id}/tagging` with `{"Tags": [...]}` | `{}` |
//! | `DELETE /v20180820/jobs/{id}/tagging` | `{}` |
//! | `POST /v20180820/jobs/{id}/retry-failed` (batchops) | `{"JobId"}` of the new job |
//! | `GET /v20180820/jobs/{id}/report-files` (batchops) | the report's files with presigned download URLs ([`ReportLinks`](batchops_core::pipeline::report_links::ReportLinks)) |
//! | `GET /v20180820/jobs/{id}/failures?limit=..` (batchops) | failed rows per ErrorCode and HTTP status ([`Failures`](batchops_core::pipeline::failures::Failures)) |
//!
//! Errors are `{"Code": "<S3 Control exception>", "Message": "<field>: <what is wrong>"}`.
//!
//! The same routes speak S3 Control's REST-XML ([`crate::xml`]). A request that names its
//! account in `x-amz-account-id` (every S3 Control request does) sees and changes only that
//! account's jobs, and creates jobs for it; one without sees every account's jobs.

pub use crate::request::{ACCOUNT_HEADER, MAX_REQUEST_BYTES};
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use batchops_core::job::JobStatus;
use batchops_core::pipeline::describe;
use batchops_core::pipeline::failures::Failures;
use batchops_core::pipeline::intake::{Caller, Scope};
use batchops_core::pipeline::report_links::ReportLinks;
use batchops_core::pipeline::Intake;
use batchops_core::ports::JobFilter;
use batchops_core::Error;
use jiff::Timestamp;
use lambda_http::request::RequestContext;
use serde_json::{json, Value};

/// An API error: the S3 Control exception name, its HTTP status and a message.
pub struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, status) = self.0.code_and_status();
        if status >= 500 {
            tracing::error!(error = %self.0, "request failed");
        }
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(json!({"Code": code, "Message": self.0.to_string()}))).into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// Query parameters, with repeated names kept (`jobStatuses` may repeat).
fn query_params(raw: Option<String>) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        out.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    out
}

fn one(q: &HashMap<String, Vec<String>>, name: &str) -> Option<String> {
    q.get(name).and_then(|v| v.first()).cloned()
}

pub fn router(intake: Arc<Intake>) -> Router {
    Router::new()
        .route("/v20180820/jobs", post(create_job).get(list_jobs))
        .route("/v20180820/jobs/validate", post(validate_job))
        .route("/v20180820/jobs/{id}", get(describe_job))
        .route("/v20180820/jobs/{id}/status", post(update_status))
        .route("/v20180820/jobs/{id}/priority", post(update_priority))
        .route("/v20180820/jobs/{id}/rate", post(update_rate))
        .route("/v20180820/jobs/{id}/retry-failed", post(retry_failed))
        .route("/v20180820/jobs/{id}/failures", get(failures))
        .route("/v20180820/jobs/{id}/report-files", get(report_files))
        .route("/v20180820/jobs/{id}/tagging", get(get_tagging).put(put_tagging).delete(delete_tagging))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .fallback(|| async {
            (StatusCode::NOT_FOUND, Json(json!({"Code": "NotFoundException", "Message": "no such route"})))
        })
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            let message = format!("the route does not take {method}");
            (StatusCode::METHOD_NOT_ALLOWED, Json(json!({"Code": "MethodNotAllowed", "Message": message})))
        })
        .layer(axum::middleware::from_fn(crate::xml::protocol))
        .layer(axum::middleware::from_fn(whole_body))
        .with_state(intake)
}

/// The account the request names in `x-amz-account-id` (12 digits), if it names one.
struct Account(Option<String>);

impl Account {
    fn from_headers(headers: &HeaderMap) -> Result<Account, Error> {
        let Some(value) = headers.get(ACCOUNT_HEADER) else { return Ok(Account(None)) };
        if headers.get_all(ACCOUNT_HEADER).iter().nth(1).is_some() {
            return Err(Error::field("AccountId", format!("{ACCOUNT_HEADER} is given more than once")));
        }
        match value.to_str() {
            Ok(a) if a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()) => Ok(Account(Some(a.to_string()))),
            _ => Err(Error::field("AccountId", format!("{ACCOUNT_HEADER} must be 12 digits"))),
        }
    }

    /// Whose jobs the request sees: its account's, or every account's when it names none.
    fn scope(&self) -> Scope<'_> {
        self.0.as_deref().map_or(Scope::All, Scope::Account)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Account {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Account::from_headers(&parts.headers)?)
    }
}

/// The route's `{id}` as sent; one that is not UTF-8 once decoded (`%FF`) is refused in the
/// API's error shape, not axum's plain text.
struct JobPath(String);

impl<S: Send + Sync> FromRequestParts<S> for JobPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) =
            Path::<String>::from_request_parts(parts, state).await.map_err(|e| Error::field("JobId", e.body_text()))?;
        Ok(JobPath(id))
    }
}

/// The route's `{id}`, a job of the account the request names (any job when it names none):
/// another account's job is not found, as in S3.
struct OwnedJob(String);

impl FromRequestParts<Arc<Intake>> for OwnedJob {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, intake: &Arc<Intake>) -> Result<Self, ApiError> {
        let JobPath(id) = JobPath::from_request_parts(parts, intake).await?;
        let account = Account::from_headers(&parts.headers)?;
        if account.0.is_some() {
            intake.job_in(&id, account.scope()).await?;
        }
        Ok(OwnedJob(id))
    }
}

/// The caller `batchops local` names for its API's requests (it has no API Gateway in front).
#[derive(Clone, Debug)]
pub struct LocalCaller(pub String);

/// The IAM identity that signed the request, as API Gateway's AWS_IAM authorization found it
/// (REST API: `requestContext.identity.userArn`; HTTP API: `requestContext.authorizer.iam`).
fn caller(ext: &Extensions) -> Option<&str> {
    match ext.get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.identity.user_arn.as_deref(),
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.authorizer.as_ref()?.iam.as_ref()?.user_arn.as_deref(),
        _ => ext.get::<LocalCaller>().map(|c| c.0.as_str()),
    }
}

/// How long a request's body may take to arrive once its head has (a slow client holds a
/// connection and a task as long as it takes; API Gateway buffers bodies before Lambda sees them).
pub const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// The layer outside every other: reads the request's whole body, at most
/// [`MAX_REQUEST_BYTES`] within [`BODY_DEADLINE`], before anything parses it, answering 413 or
/// 408 in the request's protocol otherwise.
async fn whole_body(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(BODY_DEADLINE, axum::body::to_bytes(body, MAX_REQUEST_BYTES)).await;
    let error = match read {
        Ok(Ok(bytes)) => return next.run(axum::extract::Request::from_parts(parts, bytes.into())).await,
        Ok(Err(_)) => Error::TooLarge { what: "the request body".into(), limit: MAX_REQUEST_BYTES },
        Err(_) => Error::TooSlow { what: "the request body".into(), seconds: BODY_DEADLINE.as_secs() },
    };
    if crate::xml::speaks_xml(&parts.headers) {
        crate::xml::error_response(&error, &uuid::Uuid::new_v4().simple().to_string())
    } else {
        ApiError(error).into_response()
    }
}

async fn create_job(
    State(intake): State<Arc<Intake>>,
    ext: Extensions,
    account: Account,
    body: BodyResult,
) -> ApiResult {
    let body = read_body(body)?;
    let who = caller(&ext).map_or(Caller::Unknown, Caller::Principal);
    let id = intake.create_job_in(&body, who, account.scope()).await?;
    Ok(Json(json!({ "JobId": id })))
}

async fn validate_job(State(intake): State<Arc<Intake>>, body: BodyResult) -> ApiResult {
    let problems: Vec<Value> = match read_body(body) {
        Ok(body) => intake.problems(&body),
        Err(e) => vec![e],
    }
    .into_iter()
    .map(|e| {
        let member = match &e {
            Error::InvalidField { field, .. } => Some(field.clone()),
            _ => None,
        };
        json!({"Code": e.code_and_status().0, "Member": member, "Message": e.to_string()})
    })
    .collect();
    Ok(Json(json!({ "Problems": problems })))
}

type BodyResult = Result<Bytes, axum::extract::rejection::BytesRejection>;

/// A request body, or the error naming the limit it broke.
fn read_body(body: BodyResult) -> Result<Bytes, Error> {
    body.map_err(|r| match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Error::TooLarge { what: "the request body".into(), limit: MAX_REQUEST_BYTES },
        _ => Error::invalid_json(r.body_text()),
    })
}

async fn describe_job(State(intake): State<Arc<Intake>>, JobPath(id): JobPath, account: Account) -> ApiResult {
    let job = intake.job_in(&id, account.scope()).await?;
    Ok(Json(json!({ "Job": describe::descriptor(&job, Timestamp::now()) })))
}

async fn list_jobs(State(intake): State<Arc<Intake>>, account: Account, RawQuery(raw): RawQuery) -> ApiResult {
    let q = query_params(raw);
    let mut statuses = Vec::new();
    for s in q.get("jobStatuses").into_iter().flatten() {
        let status =
            JobStatus::parse(s).ok_or_else(|| Error::field("jobStatuses", format!("'{s}' is not a job status")))?;
        // Once each: a status repeated a hundred times made a filter DynamoDB refuses.
        if !statuses.contains(&status) {
            statuses.push(status);
        }
    }
    let max = match one(&q, "maxResults") {
        None => None,
        Some(m) => Some(m.parse::<usize>().map_err(|_| Error::field("maxResults", format!("'{m}' is not 0-1000")))?),
    };
    let filter = JobFilter { statuses: &statuses, account: account.0.as_deref(), open: false };
    let page = intake.list_jobs(&filter, max, one(&q, "nextToken").as_deref()).await?;
    let now = Timestamp::now();
    let jobs: Vec<Value> = page.jobs.iter().map(|j| describe::list_descriptor(j, now)).collect();
    let mut out = json!({ "Jobs": jobs });
    if let Some(t) = page.next_token {
        out["NextToken"] = json!(t);
    }
    Ok(Json(out))
}

async fn update_status(
    State(intake): State<Arc<Intake>>,
    OwnedJob(id): OwnedJob,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = query_params(raw);
    let requested = one(&q, "requestedJobStatus").ok_or_else(|| Error::field("requestedJobStatus", "is required"))?;
    let up = intake.update_job_status(&id, &requested, one(&q, "statusUpdateReason")).await?;
    let mut out = json!({"JobId": up.job_id, "Status": up.status});
    if let Some(r) = up.reason {
        out["StatusUpdateReason"] = json!(r);
    }
    Ok(Json(out))
}

async fn update_priority(
    State(intake): State<Arc<Intake>>,
    OwnedJob(id): OwnedJob,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = query_params(raw);
    let p = one(&q, "priority").ok_or_else(|| Error::field("priority", "is required"))?;
    let (id, priority) = intake.update_job_priority(&id, &p).await?;
    Ok(Json(json!({"JobId": id, "Priority": priority})))
}

async fn update_rate(State(intake): State<Arc<Intake>>, OwnedJob(id): OwnedJob, RawQuery(raw): RawQuery) -> ApiResult {
    let q = query_params(raw);
    let r = one(&q, "maxTasksPerSecond").ok_or_else(|| Error::field("maxTasksPerSecond", "is required"))?;
    let (id, rate) = intake.update_job_rate(&id, &r).await?;
    Ok(Json(json!({"JobId": id, "MaxTasksPerSecond": rate})))
}

async fn retry_failed(State(intake): State<Arc<Intake>>, ext: Extensions, OwnedJob(id): OwnedJob) -> ApiResult {
    let who = caller(&ext).map_or(Caller::Unknown, Caller::Principal);
    let id = intake.retry_failed(&id, who).await?;
    Ok(Json(json!({ "JobId": id })))
}

/// Rows shown per (ErrorCode, HTTP status) when the request names no `limit`.
const DEFAULT_FAILURE_ROWS: usize = 10;

async fn failures(
    State(intake): State<Arc<Intake>>,
    OwnedJob(id): OwnedJob,
    RawQuery(raw): RawQuery,
) -> Result<Json<Failures>, ApiError> {
    let limit = match one(&query_params(raw), "limit") {
        None => DEFAULT_FAILURE_ROWS,
        Some(l) => l.parse().map_err(|_| Error::field("limit", format!("'{l}' is not a number of rows")))?,
    };
    Ok(Json(intake.failures(&id, limit).await?))
}

async fn report_files(
    State(intake): State<Arc<Intake>>,
    OwnedJob(id): OwnedJob,
) -> Result<Json<ReportLinks>, ApiError> {
    Ok(Json(intake.report_links(&id).await?))
}

async fn get_tagging(State(intake): State<Arc<Intake>>, OwnedJob(id): OwnedJob) -> ApiResult {
    Ok(Json(json!({"Tags": intake.get_job_tagging(&id).await?})))
}

async fn put_tagging(State(intake): State<Arc<Intake>>, OwnedJob(id): OwnedJob, body: BodyResult) -> ApiResult {
    intake.put_job_tagging(&id, &read_body(body)?).await?;
    Ok(Json(json!({})))
}

async fn delete_tagging(State(intake): State<Arc<Intake>>, OwnedJob(id): OwnedJob) -> ApiResult {
    intake.delete_job_tagging(&id).await?;
    Ok(Json(json!({})))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use batchops_core::memory::{InMemoryPipeline, NoRoles};
    use batchops_core::pipeline::Settings;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    /// The router over in-memory ports.
    pub(crate) fn app() -> Router {
        app_checking(None)
    }

    fn app_checking(pass_role: Option<Arc<dyn batchops_core::ports::PassRoleCheck>>) -> Router {
        let memory = InMemoryPipeline::new(Arc::default(), Arc::new(NoRoles), Settings::default());
        router(Arc::new(Intake { pass_role, ..memory.intake() }))
    }

    async fn call(app: &Router, method: &str, uri: &str, body: &str) -> (u16, Value) {
        call_as(app, None, method, uri, body).await
    }

    /// A request as API Gateway's AWS_IAM authorization hands it on: the caller's ARN in the
    /// REST API request context.
    async fn call_as(app: &Router, caller: Option<&str>, method: &str, uri: &str, body: &str) -> (u16, Value) {
        let mut req = Request::builder().method(method).uri(uri).body(Body::from(body.to_string())).unwrap();
        if let Some(arn) = caller {
            let ctx = serde_json::from_value(json!({"httpMethod": method, "identity": {"userArn": arn}})).unwrap();
            req.extensions_mut().insert(RequestContext::ApiGatewayV1(ctx));
        }
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub(crate) const SPEC: &str = include_str!("../fixtures/create-job.json");

    #[tokio::test]
    async fn create_describe_list_and_update() {
        let app = app();
        let (status, body) = call(&app, "POST", "/v20180820/jobs", SPEC).await;
        assert_eq!(status, 200, "{body}");
        let id = body["JobId"].as_str().unwrap().to_string();
        let (status, body) = call(&app, "GET", &format!("/v20180820/jobs/{id}"), "").await;
        assert_eq!(status, 200);
        assert_eq!(body["Job"]["Status"], "New");
        assert_eq!(body["Job"]["Operation"]["S3PutObjectTagging"]["TagSet"][0]["Key"], "reviewed");
        assert_eq!(body["Job"]["ProgressSummary"]["NumberOfTasksSucceeded"], 0);
        let (_, body) = call(&app, "GET", "/v20180820/jobs?jobStatuses=New&jobStatuses=Active&maxResults=5", "").await;
        assert_eq!(body["Jobs"].as_array().unwrap().len(), 1);
        assert_eq!(body["Jobs"][0]["Operation"], "S3PutObjectTagging");
        let (status, body) = call(&app, "POST", &format!("/v20180820/jobs/{id}/priority?priority=42"), "").await;
        assert_eq!((status, body["Priority"].as_i64()), (200, Some(42)));
        let (status, body) = call(&app, "POST", &format!("/v20180820/jobs/{id}/rate?maxTasksPerSecond=250"), "").await;
        assert_eq!((status, body["MaxTasksPerSecond"].as_u64()), (200, Some(250)), "{body}");
        let (_, body) = call(&app, "GET", &format!("/v20180820/jobs/{id}"), "").await;
        assert_eq!(body["Job"]["MaxTasksPerSecond"], 250);
        let (status, body) = call(&app, "POST", &format!("/v20180820/jobs/{id}/rate?maxTasksPerSecond=0"), "").await;
        assert_eq!((status, body["Code"].as_str()), (400, Some("BadRequestException")), "{body}");
        assert!(body["Message"].as_str().unwrap().starts_with("maxTasksPerSecond:"), "{body}");
        let (status, body) = call(
            &app,
            "POST",
            &format!("/v20180820/jobs/{id}/status?requestedJobStatus=Cancelled&statusUpdateReason=no+longer+needed"),
            "",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["Status"], "Cancelling");
        assert_eq!(body["StatusUpdateReason"], "no longer needed");
    }

    #[tokio::test]
    async fn job_tags_are_read_replaced_and_deleted_within_s3s_limits() {
        let app = app();
        let mut spec: Value = serde_json::from_str(SPEC).unwrap();
        spec["Tags"] = json!([{"Key": "team", "Value": "data"}]);
        let (_, body) = call(&app, "POST", "/v20180820/jobs", &spec.to_string()).await;
        let tagging = format!("/v20180820/jobs/{}/tagging", body["JobId"].as_str().unwrap());
        let (status, body) = call(&app, "GET", &tagging, "").await;
        assert_eq!((status, &body), (200, &json!({"Tags": [{"Key": "team", "Value": "data"}]})));
        let set = json!({"Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": ""}]});
        assert_eq!(call(&app, "PUT", &tagging, &set.to_string()).await.0, 200);
        assert_eq!(call(&app, "GET", &tagging, "").await.1, set, "PUT replaces the set");
        let too_many: Vec<Value> = (0..51).map(|i| json!({"Key": format!("k{i}"), "Value": "v"})).collect();
        let (status, body) = call(&app, "PUT", &tagging, &json!({"Tags": too_many}).to_string()).await;
        assert_eq!((status, body["Code"].as_str()), (400, Some("TooManyTagsException")), "{body}");
        let long_key = json!({"Tags": [{"Key": "k".repeat(129), "Value": "v"}]});
        let (status, body) = call(&app, "PUT", &tagging, &long_key.to_string()).await;
        assert_eq!((status, body["Code"].as_str()), (400, Some("BadRequestException")), "{body}");
        assert!(body["Message"].as_str().unwrap().starts_with("Tags[0].Key:"), "{body}");
        let twice = json!({"Tags": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]});
        let (status, body) = call(&app, "PUT", &tagging, &twice.to_string()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(call(&app, "GET", &tagging, "").await.1, set, "refused sets change nothing");
        assert_eq!(call(&app, "DELETE", &tagging, "").await.0, 200);
        assert_eq!(call(&app, "GET", &tagging, "").await.1, json!({"Tags": []}));
        assert_eq!(call(&app, "PUT", &tagging, &set.to_string()).await.0, 200);
        assert_eq!(call(&app, "PUT", &tagging, r#"{"Tags": []}"#).await.0, 200);
        assert_eq!(call(&app, "GET", &tagging, "").await.1, json!({"Tags": []}), "an empty set deletes all");
        let (status, body) =
            call(&app, "GET", "/v20180820/jobs/00000000-0000-0000-0000-000000000000/tagging", "").await;
        assert_eq!((status, body["Code"].as_str()), (404, Some("NotFoundException")));
    }

    #[tokio::test]
    async fn validate_names_every_member_create_job_would_refuse_and_creates_nothing() {
        let app = app();
        let mut spec: Value = serde_json::from_str(SPEC).unwrap();
        spec["Report"]["Format"] = json!("CSV");
        spec["Priority"] = json!(-5);
        let (status, body) = call(&app, "POST", "/v20180820/jobs/validate", &spec.to_string()).await;
        assert_eq!(status, 200, "{body}");
        let members: Vec<&str> =
            body["Problems"].as_array().unwrap().iter().map(|p| p["Member"].as_str().unwrap()).collect();
        assert_eq!(members, ["Priority", "Report.Format"], "{body}");
        assert!(body["Problems"][1]["Message"].as_str().unwrap().starts_with("Report.Format:"), "{body}");
        let (_, body) = call(&app, "POST", "/v20180820/jobs/validate", SPEC).await;
        assert_eq!(body, json!({"Problems": []}));
        let (_, body) = call(&app, "POST", "/v20180820/jobs/validate", "{not json").await;
        assert_eq!(body["Problems"][0]["Code"], "BadRequestException", "{body}");
        let (_, body) = call(&app, "GET", "/v20180820/jobs", "").await;
        assert_eq!(body["Jobs"], json!([]), "validating creates no job");
    }

    #[tokio::test]
    async fn errors_carry_the_s3_control_code_and_the_field() {
        let app = app();
        let mut spec: Value = serde_json::from_str(SPEC).unwrap();
        spec["Report"]["Format"] = json!("CSV");
        let (status, body) = call(&app, "POST", "/v20180820/jobs", &spec.to_string()).await;
        assert_eq!(status, 400);
        assert_eq!(body["Code"], "BadRequestException");
        assert!(body["Message"].as_str().unwrap().starts_with("Report.Format:"), "{body}");
        let (status, body) = call(&app, "GET", "/v20180820/jobs/00000000-0000-0000-0000-000000000000", "").await;
        assert_eq!((status, body["Code"].as_str()), (404, Some("NotFoundException")));
        let (status, body) = call(&app, "GET", "/v20180820/jobs?jobStatuses=Running", "").await;
        assert_eq!((status, body["Code"].as_str()), (400, Some("BadRequestException")));
        let (status, _) = call(&app, "POST", "/v20180820/jobs", "{not json").await;
        assert_eq!(status, 400);
        // a body over the limit is refused with the same JSON error shape, naming the limit
        let huge = format!("{{\"Description\": \"{}\"}}", "x".repeat(MAX_REQUEST_BYTES));
        let (status, body) = call(&app, "POST", "/v20180820/jobs", &huge).await;
        assert_eq!((status, body["Code"].as_str()), (413, Some("RequestEntityTooLarge")), "{body}");
        assert!(body["Message"].as_str().unwrap().contains(&MAX_REQUEST_BYTES.to_string()), "{body}");
        // ... and so is one nested deeper than 32 levels, before anything builds a value of it
        let deep = format!("{{\"Operation\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let (status, body) = call(&app, "POST", "/v20180820/jobs", &deep).await;
        assert_eq!((status, body["Code"].as_str()), (400, Some("BadRequestException")), "{body}");
        assert!(
            body["Message"].as_str().unwrap().contains("nests deeper than 32 objects and arrays at line 1 column 46"),
            "{body}"
        );
        let (_, body) = call(&app, "POST", "/v20180820/jobs", SPEC).await;
        let id = body["JobId"].as_str().unwrap();
        let (status, body) =
            call(&app, "POST", &format!("/v20180820/jobs/{id}/status?requestedJobStatus=Ready"), "").await;
        assert_eq!((status, body["Code"].as_str()), (409, Some("JobStatusException")));
        let mut other: Value = serde_json::from_str(SPEC).unwrap();
        other["Priority"] = json!(99);
        let (status, body) = call(&app, "POST", "/v20180820/jobs", &other.to_string()).await;
        assert_eq!((status, body["Code"].as_str()), (409, Some("IdempotencyException")));
    }

    #[tokio::test]
    async fn create_job_requires_iam_pass_role_of_the_caller_on_the_job_role() {
        // GIVEN alice may pass the spec's role and bob may not
        let role = serde_json::from_str::<Value>(SPEC).unwrap()["RoleArn"].as_str().unwrap().to_string();
        let alice = "arn:aws:iam::123456789012:user/alice";
        let grants = batchops_core::memory::InMemoryPassRole::default();
        grants.grants.lock().unwrap().insert((alice.to_string(), role.clone()));
        let app = app_checking(Some(Arc::new(grants)));
        // WHEN each creates the job, THEN only alice's is created
        let (status, body) = call_as(&app, Some(alice), "POST", "/v20180820/jobs", SPEC).await;
        assert_eq!(status, 200, "{body}");
        let bob = "arn:aws:sts::123456789012:assumed-role/ops/bob";
        let (status, body) = call_as(&app, Some(bob), "POST", "/v20180820/jobs", SPEC).await;
        assert_eq!((status, body["Code"].as_str()), (403, Some("AccessDeniedException")), "{body}");
        let message = body["Message"].as_str().unwrap();
        assert!(message.contains(bob) && message.contains(&role) && message.contains("iam:PassRole"), "{message}");
        // AND a request without API Gateway's identity is refused too
        let (status, body) = call(&app, "POST", "/v20180820/jobs", SPEC).await;
        assert_eq!((status, body["Code"].as_str()), (403, Some("AccessDeniedException")), "{body}");
    }
}
