//! A small client of the batchops HTTP API (the S3 Control job routes).

use anyhow::{bail, Context, Result};
use serde_json::Value;

#[derive(Clone, Debug)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
}

/// An error answer of the API: `{"Code", "Message"}` and the HTTP status.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

/// Query-string encoding of a value (RFC 3986 unreserved characters kept).
fn enc(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

impl ApiClient {
    pub fn new(base: impl Into<String>) -> Self {
        ApiClient { base: base.into().trim_end_matches('/').to_string(), http: reqwest::Client::new() }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value> {
        let resp = req.send().await.with_context(|| format!("cannot reach the batchops API at {}", self.base))?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status >= 300 {
            return Err(ApiError {
                status,
                code: body["Code"].as_str().unwrap_or("Error").to_string(),
                message: body["Message"].as_str().unwrap_or("").to_string(),
            }
            .into());
        }
        Ok(body)
    }

    pub async fn create_job(&self, spec: &Value) -> Result<String> {
        let out = self.send(self.http.post(format!("{}/v20180820/jobs", self.base)).json(spec)).await?;
        match out["JobId"].as_str() {
            Some(id) => Ok(id.to_string()),
            None => bail!("the API answered without a JobId: {out}"),
        }
    }

    pub async fn describe_job(&self, id: &str) -> Result<Value> {
        self.send(self.http.get(format!("{}/v20180820/jobs/{}", self.base, enc(id)))).await
    }

    pub async fn list_jobs(&self, statuses: &[String], max: Option<u32>, next: Option<&str>) -> Result<Value> {
        let mut q: Vec<String> = statuses.iter().map(|s| format!("jobStatuses={}", enc(s))).collect();
        if let Some(m) = max {
            q.push(format!("maxResults={m}"));
        }
        if let Some(t) = next {
            q.push(format!("nextToken={}", enc(t)));
        }
        self.send(self.http.get(format!("{}/v20180820/jobs?{}", self.base, q.join("&")))).await
    }

    pub async fn update_job_status(&self, id: &str, status: &str, reason: Option<&str>) -> Result<Value> {
        let mut url = format!("{}/v20180820/jobs/{}/status?requestedJobStatus={}", self.base, enc(id), enc(status));
        if let Some(r) = reason {
            url.push_str(&format!("&statusUpdateReason={}", enc(r)));
        }
        self.send(self.http.post(url)).await
    }

    pub async fn update_job_priority(&self, id: &str, priority: i64) -> Result<Value> {
        self.send(self.http.post(format!("{}/v20180820/jobs/{}/priority?priority={priority}", self.base, enc(id))))
            .await
    }
}
