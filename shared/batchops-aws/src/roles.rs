//! Job roles: every S3 and Lambda request made for a job uses credentials of the job's
//! `RoleArn`, assumed through STS, as S3 Batch Operations does. The functions' own roles hold
//! their queues, their table and `sts:AssumeRole`, and no S3 data permissions.
//!
//! And the CreateJob caller's `iam:PassRole` check, asked of IAM (SimulatePrincipalPolicy).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_config::sts::AssumeRoleProvider;
use aws_config::SdkConfig;
use aws_sdk_s3::config::SharedCredentialsProvider;
use batchops_core::job::JobId;
use batchops_core::ports::{JobPorts, PassRoleCheck, RoleAccess, RoleError};
use batchops_core::retry::{is_transient, RetryPolicy};
use batchops_core::Result;

use crate::clients::{Clients, DataClients};
use crate::errors::{backend, parts};
use crate::ops::{OpsSettings, S3OperationRunner};
use crate::s3::S3ObjectStore;

/// How many (role, job) sessions one process keeps; an executor sees few jobs at a time.
const SESSIONS_KEPT: usize = 256;

/// Sessions of assumed roles, one per (role, job): the session is named after the job, so
/// CloudTrail shows which job made each request.
pub struct StsRoles {
    sdk: SdkConfig,
    sts: aws_sdk_sts::Client,
    ops: OpsSettings,
    retry: RetryPolicy,
    sessions: Mutex<HashMap<(String, JobId), JobPorts>>,
}

impl StsRoles {
    /// `sdk` is the functions' own configuration (endpoint, region, their credentials, which
    /// assume the roles); `ops` and `retry` configure each session's operation runner.
    pub fn new(sdk: &SdkConfig, ops: OpsSettings, retry: RetryPolicy) -> StsRoles {
        StsRoles { sdk: sdk.clone(), sts: aws_sdk_sts::Client::new(sdk), ops, retry, sessions: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, JobId), JobPorts>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every job acts with the process's own credentials: for S3-compatible stores that have no
/// STS (`batchops local --no-job-roles`, `BATCHOPS_ASSUME_JOB_ROLES=false`). Never the
/// deployed default: it gives every job whatever the functions may do.
pub struct OwnCredentials(JobPorts);

impl OwnCredentials {
    pub fn new(sdk: &SdkConfig, ops: OpsSettings, retry: RetryPolicy) -> OwnCredentials {
        OwnCredentials(ports(Clients::data_clients(sdk), ops, retry))
    }
}

#[async_trait]
impl RoleAccess for OwnCredentials {
    async fn assume(&self, _job: &JobId, _role_arn: &str) -> Result<JobPorts, RoleError> {
        Ok(self.0.clone())
    }
}

fn ports(clients: DataClients, ops: OpsSettings, retry: RetryPolicy) -> JobPorts {
    JobPorts {
        objects: Arc::new(S3ObjectStore::new(clients.s3)),
        runner: Arc::new(S3OperationRunner::new(clients.s3_ops, clients.lambda, ops, retry)),
    }
}

/// `batchops-<job id>`: within STS's 64 characters of `[\w+=,.@-]` (job IDs are at most 36
/// characters of `[a-zA-Z0-9-_]`).
pub fn session_name(job: &JobId) -> String {
    format!("batchops-{job}")
}

#[async_trait]
impl RoleAccess for StsRoles {
    async fn assume(&self, job: &JobId, role_arn: &str) -> Result<JobPorts, RoleError> {
        let key = (role_arn.to_string(), job.clone());
        if let Some(ports) = self.lock().get(&key) {
            return Ok(ports.clone());
        }
        let session = session_name(job);
        // Asked once here so that a role that cannot be assumed fails the job with STS's own
        // answer; the clients' provider then assumes it again and refreshes the credentials
        // before they expire (the SDK's identity cache).
        if let Err(e) = self.sts.assume_role().role_arn(role_arn).role_session_name(&session).send().await {
            let (status, code, message) = parts(&e);
            let transient = is_transient(status, &code);
            return Err(RoleError { role: role_arn.to_string(), code, message, transient });
        }
        let provider = AssumeRoleProvider::builder(role_arn).session_name(session).configure(&self.sdk).build().await;
        let config = self.sdk.to_builder().credentials_provider(SharedCredentialsProvider::new(provider)).build();
        let ports = ports(Clients::data_clients(&config), self.ops.clone(), self.retry.clone());
        let mut sessions = self.lock();
        if sessions.len() >= SESSIONS_KEPT {
            sessions.clear();
        }
        sessions.insert(key, ports.clone());
        Ok(ports)
    }
}

/// The role name of an assumed-role session (`arn:aws:sts::1:assumed-role/R/s` -> `R`);
/// `None` for users and roles, which IAM evaluates as themselves.
pub fn assumed_role_name(caller: &str) -> Option<&str> {
    let mut fields = caller.splitn(6, ':');
    let (Some("arn"), Some(_), Some("sts"), Some(_), Some(_), Some(resource)) =
        (fields.next(), fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return None;
    };
    resource.strip_prefix("assumed-role/").and_then(|r| r.split('/').next())
}

/// The ARN of the identity `sdk`'s credentials belong to (sts:GetCallerIdentity).
pub async fn caller_arn(sdk: &SdkConfig) -> Result<String> {
    let out = aws_sdk_sts::Client::new(sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| backend("sts:GetCallerIdentity", e))?;
    Ok(out.arn().unwrap_or_default().to_string())
}

/// `iam:PassRole`, asked of IAM with SimulatePrincipalPolicy (the intake function's role needs
/// `iam:SimulatePrincipalPolicy`, and `iam:GetRole` for callers that are assumed-role sessions).
/// Policies' conditions are evaluated without context keys.
pub struct IamPassRole {
    iam: aws_sdk_iam::Client,
}

impl IamPassRole {
    pub fn new(sdk: &SdkConfig) -> IamPassRole {
        IamPassRole { iam: aws_sdk_iam::Client::new(sdk) }
    }
}

impl IamPassRole {
    /// The principal IAM evaluates for a caller: an assumed-role session is its role, whose
    /// ARN (with its path, which the session ARN leaves out) IAM gives by name.
    async fn principal(&self, caller: &str) -> Result<String> {
        let Some(name) = assumed_role_name(caller) else { return Ok(caller.to_string()) };
        let out = self.iam.get_role().role_name(name).send().await.map_err(|e| backend("iam:GetRole", e))?;
        Ok(out.role().map(|r| r.arn().to_string()).unwrap_or_default())
    }
}

#[async_trait]
impl PassRoleCheck for IamPassRole {
    async fn may_pass(&self, caller: &str, role_arn: &str) -> Result<bool> {
        let out = self
            .iam
            .simulate_principal_policy()
            .policy_source_arn(self.principal(caller).await?)
            .action_names("iam:PassRole")
            .resource_arns(role_arn)
            .send()
            .await
            .map_err(|e| backend("iam:SimulatePrincipalPolicy", e))?;
        let allowed = out
            .evaluation_results()
            .iter()
            .all(|r| r.eval_decision() == &aws_sdk_iam::types::PolicyEvaluationDecisionType::Allowed)
            && !out.evaluation_results().is_empty();
        Ok(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assumed_role_session_is_checked_as_its_role() {
        assert_eq!(
            assumed_role_name("arn:aws:sts::123456789012:assumed-role/ops-admin/alice@example.com"),
            Some("ops-admin")
        );
        assert_eq!(assumed_role_name("arn:aws-cn:sts::123456789012:assumed-role/r/s"), Some("r"));
        assert_eq!(assumed_role_name("arn:aws:iam::123456789012:user/alice"), None);
        assert_eq!(assumed_role_name("arn:aws:iam::123456789012:role/ops-admin"), None);
        assert_eq!(assumed_role_name("not an arn"), None);
    }

    #[test]
    fn session_names_fit_sts() {
        let name = session_name(&JobId::parse("0123456789abcdef0123456789abcdef-_ab").unwrap());
        assert!(name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c)));
    }
}
