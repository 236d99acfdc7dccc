//! A small client of the batchops HTTP API (the S3 Control job routes): plain HTTP for
//! `batchops local`, HTTPS with SigV4 signatures (service `execute-api`) for the deployed API
//! behind API Gateway's AWS_IAM authorization.

use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use serde_json::Value;

#[derive(Clone, Debug)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
    signer: Option<Signer>,
    /// The account the requests name (`x-amz-account-id`): they then see only its jobs.
    account: Option<String>,
}

/// Signs requests with the SDK's standard credential chain and region (environment, profile,
/// SSO, instance role ...), as `aws` commands do.
#[derive(Clone, Debug)]
pub struct Signer {
    credentials: SharedCredentialsProvider,
    region: String,
}

impl Signer {
    pub fn from_sdk_config(sdk: &SdkConfig) -> Result<Signer> {
        let credentials = sdk.credentials_provider().context("no AWS credentials found to sign requests with")?;
        let region = sdk.region().context("no AWS region (AWS_REGION) to sign requests for")?.to_string();
        Ok(Signer { credentials, region })
    }

    /// Adds the SigV4 headers (`Authorization`, `X-Amz-Date`, `X-Amz-Security-Token`).
    async fn sign(&self, req: &mut reqwest::Request) -> Result<()> {
        let creds = self.credentials.provide_credentials().await.context("cannot load AWS credentials")?;
        let identity: Identity = creds.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("execute-api")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .context("signing parameters")?
            .into();
        let body = req.body().and_then(|b| b.as_bytes()).unwrap_or_default().to_vec();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let signable = SignableRequest::new(
            req.method().as_str(),
            req.url().as_str(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(&body),
        )
        .context("request to sign")?;
        let (instructions, _) = sign(signable, &params).context("SigV4 signing")?.into_parts();
        for (name, value) in instructions.headers() {
            req.headers_mut().insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes())?,
                reqwest::header::HeaderValue::from_str(value)?,
            );
        }
        Ok(())
    }
}

/// True for an API on this machine (`batchops local`), which is called unsigned unless asked.
pub fn is_loopback(url: &str) -> bool {
    let Some(host) = reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(String::from)) else {
        return false;
    };
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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

/// The `ApiUrl` output of a deployed batchops stack (CloudFormation DescribeStacks).
pub async fn stack_api_url(sdk: &SdkConfig, stack: &str) -> Result<String> {
    stack_output(sdk, stack, "ApiUrl").await
}

/// One output of a deployed batchops stack.
pub async fn stack_output(sdk: &SdkConfig, stack: &str, key: &str) -> Result<String> {
    let mut outputs = stack_outputs(sdk, stack).await?;
    match outputs.remove(key) {
        Some(v) => Ok(v),
        None => bail!("the stack {stack} has no {key} output: is it a batchops stack?"),
    }
}

/// Every output of the deployed stack, by key.
pub async fn stack_outputs(sdk: &SdkConfig, stack: &str) -> Result<std::collections::HashMap<String, String>> {
    let out = aws_sdk_cloudformation::Client::new(sdk)
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", aws_sdk_cloudformation::error::DisplayErrorContext(&e)))
        .with_context(|| format!("cannot describe the stack {stack}"))?;
    let outputs = out.stacks().first().map(|s| s.outputs()).unwrap_or_default();
    Ok(outputs.iter().filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string()))).collect())
}

impl ApiClient {
    /// An unsigned client (`batchops local`).
    pub fn new(base: impl Into<String>) -> Self {
        ApiClient {
            base: base.into().trim_end_matches('/').to_string(),
            // Idle connections go before `batchops local` closes them (after 10 s): a request
            // on one it is closing would fail.
            http: reqwest::Client::builder()
                .pool_idle_timeout(std::time::Duration::from_secs(5))
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
            signer: None,
            account: None,
        }
    }

    /// The same client acting for `account`: it sees, changes and creates that account's jobs
    /// only, as an S3 Control client does.
    pub fn for_account(self, account: Option<String>) -> Self {
        ApiClient { account, ..self }
    }

    /// A client that signs every request with `signer`.
    pub fn signed(base: impl Into<String>, signer: Signer) -> Self {
        ApiClient { signer: Some(signer), ..ApiClient::new(base) }
    }

    /// Makes `method path_and_query` with `body` (signed when this client signs) and answers
    /// the API's status and body as they are: the console's calls to a deployed stack.
    pub async fn forward(&self, method: &str, path_and_query: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>)> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).context("HTTP method")?;
        let mut req = self.http.request(method, format!("{}{path_and_query}", self.base));
        if !body.is_empty() {
            req = req.header("content-type", "application/json").body(body);
        }
        let resp = self.execute(req).await?;
        let status = resp.status().as_u16();
        Ok((status, resp.bytes().await.context("the API's answer")?.to_vec()))
    }

    /// Builds, signs (when this client signs) and sends a request.
    async fn execute(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let mut req = req.build().context("request")?;
        if let Some(account) = &self.account {
            let headers = req.headers_mut();
            headers.insert("x-amz-account-id", account.parse().context("--account-id")?);
            // With the account header, the JSON answer must be asked for (S3 Control's is XML).
            headers.insert("accept", reqwest::header::HeaderValue::from_static("application/json"));
        }
        if let Some(signer) = &self.signer {
            signer.sign(&mut req).await?;
        }
        self.http.execute(req).await.with_context(|| format!("cannot reach the batchops API at {}", self.base))
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value> {
        let resp = self.execute(req).await?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status >= 300 {
            // API Gateway's own refusals (bad signature, missing permission) say `message`.
            let gateway = body["message"].as_str().map(|m| ("AccessDenied", m));
            let (code, message) = match (body["Code"].as_str(), gateway) {
                (Some(code), _) => (code, body["Message"].as_str().unwrap_or("")),
                (None, Some((code, m))) => (code, m),
                (None, None) => ("Error", ""),
            };
            return Err(ApiError { status, code: code.to_string(), message: message.to_string() }.into());
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

    pub async fn update_job_rate(&self, id: &str, rate: u64) -> Result<Value> {
        self.send(self.http.post(format!("{}/v20180820/jobs/{}/rate?maxTasksPerSecond={rate}", self.base, enc(id))))
            .await
    }

    pub async fn get_job_tagging(&self, id: &str) -> Result<Value> {
        self.send(self.http.get(format!("{}/v20180820/jobs/{}/tagging", self.base, enc(id)))).await
    }

    /// Replaces the job's tags with `tags` (a JSON array of `{"Key","Value"}`).
    pub async fn put_job_tagging(&self, id: &str, tags: &Value) -> Result<Value> {
        let body = serde_json::json!({ "Tags": tags });
        self.send(self.http.put(format!("{}/v20180820/jobs/{}/tagging", self.base, enc(id))).json(&body)).await
    }

    pub async fn delete_job_tagging(&self, id: &str) -> Result<Value> {
        self.send(self.http.delete(format!("{}/v20180820/jobs/{}/tagging", self.base, enc(id)))).await
    }

    /// batchops: creates a job over the failed tasks of ended job `id`; returns its ID.
    pub async fn retry_failed(&self, id: &str) -> Result<String> {
        let out = self.send(self.http.post(format!("{}/v20180820/jobs/{}/retry-failed", self.base, enc(id)))).await?;
        match out["JobId"].as_str() {
            Some(id) => Ok(id.to_string()),
            None => bail!("the API answered without a JobId: {out}"),
        }
    }

    /// batchops: job `id`'s failed tasks per ErrorCode and HTTP status, `limit` rows of each.
    pub async fn failures(&self, id: &str, limit: Option<usize>) -> Result<Value> {
        let q = limit.map(|l| format!("?limit={l}")).unwrap_or_default();
        self.send(self.http.get(format!("{}/v20180820/jobs/{}/failures{q}", self.base, enc(id)))).await
    }

    /// batchops: job `id`'s report files so far, each with a presigned download URL.
    pub async fn report_files(&self, id: &str) -> Result<Value> {
        self.send(self.http.get(format!("{}/v20180820/jobs/{}/report-files", self.base, enc(id)))).await
    }

    pub async fn update_job_priority(&self, id: &str, priority: i64) -> Result<Value> {
        self.send(self.http.post(format!("{}/v20180820/jobs/{}/priority?priority={priority}", self.base, enc(id))))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_apis_on_this_machine_go_unsigned() {
        assert!(is_loopback("http://127.0.0.1:8080"));
        assert!(is_loopback("http://localhost:8080/v1"));
        assert!(is_loopback("http://[::1]:8080"));
        assert!(!is_loopback("https://abc123.execute-api.eu-west-1.amazonaws.com/v1"));
        assert!(!is_loopback("http://10.0.0.5:8080"));
        assert!(!is_loopback("not a url"));
    }
}
