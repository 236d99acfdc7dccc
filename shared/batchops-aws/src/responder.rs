//! CloudFormation's `ResponseURL`: an S3 URL presigned for a PUT of the custom resource's
//! response document. The URL was signed without a Content-Type, so none is sent.

use std::time::Duration;

use async_trait::async_trait;
use batchops_core::ports::Responder;
use batchops_core::{Error, Result};

/// PUTs response documents over HTTPS (or HTTP, for the emulators' presigned URLs).
#[derive(Clone)]
pub struct HttpResponder {
    client: reqwest::Client,
}

impl HttpResponder {
    pub fn new() -> Result<Self> {
        // No redirect is followed: the URL was checked against the response hosts, and a
        // redirect would take the PUT elsewhere.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::permanent("the HTTP client for CloudFormation's responses", e))?;
        Ok(HttpResponder { client })
    }
}

#[async_trait]
impl Responder for HttpResponder {
    async fn put(&self, url: &str, body: Vec<u8>) -> Result<()> {
        // The URL's query is its signature: it is not logged.
        let host = url.split('?').next().unwrap_or_default().to_string();
        let context = format!("the response to CloudFormation ({host})");
        let sent = self.client.put(url).body(body).send().await;
        let answer = sent.map_err(|e| Error::transient(&context, e))?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        let text = answer.text().await.unwrap_or_default();
        let message = format!("{status}: {}", text.chars().take(300).collect::<String>());
        // An expired or forged URL (403) stays refused; throttling and S3's 5xx pass.
        if status.is_server_error() || status.as_u16() == 429 {
            Err(Error::transient(context, message))
        } else {
            Err(Error::permanent(context, message))
        }
    }
}
