//! Job roles and `iam:PassRole` grants in memory.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::store::lock;
use crate::job::JobId;
use crate::ports::{JobPorts, ObjectStore, OperationRunner, PassRoleCheck, RoleAccess, RoleError};
use crate::Result;

/// Roles in memory: every role gives the same ports, except the roles named in `refused`
/// (STS's AccessDenied) and `throttled` (a transient error). Records who assumed what.
pub struct InMemoryRoles {
    ports: JobPorts,
    pub refused: Mutex<HashSet<String>>,
    pub throttled: Mutex<HashSet<String>>,
    pub assumed: Mutex<Vec<(JobId, String)>>,
}

impl InMemoryRoles {
    pub fn new(objects: Arc<dyn ObjectStore>, runner: Arc<dyn OperationRunner>) -> Self {
        InMemoryRoles {
            ports: JobPorts { objects, runner },
            refused: Mutex::default(),
            throttled: Mutex::default(),
            assumed: Mutex::default(),
        }
    }
}

#[async_trait]
impl RoleAccess for InMemoryRoles {
    async fn assume(&self, job: &JobId, role_arn: &str) -> Result<JobPorts, RoleError> {
        let error = |code: &str, transient| RoleError {
            role: role_arn.to_string(),
            code: code.into(),
            message: format!("not authorized to perform sts:AssumeRole on resource {role_arn}"),
            transient,
        };
        if lock(&self.refused).contains(role_arn) {
            return Err(error("AccessDenied", false));
        }
        if lock(&self.throttled).contains(role_arn) {
            return Err(error("Throttling", true));
        }
        lock(&self.assumed).push((job.clone(), role_arn.to_string()));
        Ok(self.ports.clone())
    }
}

/// Refuses every role: for intake tests that never act as a job's role.
pub struct NoRoles;

#[async_trait]
impl RoleAccess for NoRoles {
    async fn assume(&self, _job: &JobId, role_arn: &str) -> Result<JobPorts, RoleError> {
        Err(RoleError {
            role: role_arn.to_string(),
            code: "AccessDenied".into(),
            message: "no role may be assumed here".into(),
            transient: false,
        })
    }
}

/// `iam:PassRole` grants in memory: (caller ARN, role ARN) pairs.
#[derive(Default)]
pub struct InMemoryPassRole {
    pub grants: Mutex<HashSet<(String, String)>>,
}

#[async_trait]
impl PassRoleCheck for InMemoryPassRole {
    async fn may_pass(&self, caller: &str, role_arn: &str) -> Result<bool> {
        Ok(lock(&self.grants).contains(&(caller.to_string(), role_arn.to_string())))
    }
}
