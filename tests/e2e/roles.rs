//! The job-role adapters: `StsRoles` against moto's STS (a role STS refuses is rehearsed with
//! IAM enforcement in tests/rehearsal), `IamPassRole` against a recorded IAM answer (moto has no
//! SimulatePrincipalPolicy).

use anyhow::Result;
use batchops_aws::{IamPassRole, OpsSettings, StsRoles};
use batchops_core::job::JobId;
use batchops_core::ports::{PassRoleCheck, RoleAccess};
use batchops_core::retry::RetryPolicy;
use batchops_e2e::{clients, unique};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_job_role_is_assumed_once_per_job_and_its_store_reads_as_the_role() -> Result<()> {
    let c = clients().await;
    let bucket = unique("roles");
    c.s3.create_bucket().bucket(&bucket).send().await?;
    c.s3.put_object().bucket(&bucket).key("k").body(b"hello".to_vec().into()).send().await?;
    let roles = StsRoles::new(&c.sdk, OpsSettings::default(), RetryPolicy::default());
    let job = JobId::parse("0123456789abcdef")?;
    let role = "arn:aws:iam::123456789012:role/batchops-tests";
    let ports = roles.assume(&job, role).await?;
    let head = ports.objects.head(&bucket, "k", None).await?;
    assert_eq!(head.size, 5);
    // The same job and role: the same session (no second AssumeRole); another job: its own.
    let again = roles.assume(&job, role).await?;
    assert!(std::sync::Arc::ptr_eq(&ports.objects, &again.objects));
    let other = roles.assume(&JobId::parse("fedcba9876543210")?, role).await?;
    assert!(!std::sync::Arc::ptr_eq(&ports.objects, &other.objects));
    Ok(())
}

/// Serves one HTTP request with `decision` as IAM's SimulatePrincipalPolicy answer; returns
/// the request's body.
async fn iam_answering(decision: &'static str) -> Result<(String, tokio::task::JoinHandle<String>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let served = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.expect("accept");
        let mut req = Vec::new();
        let mut buf = [0u8; 8192];
        // Read the headers, then the body of Content-Length bytes.
        loop {
            let n = sock.read(&mut buf).await.expect("read");
            req.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&req).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len: usize = text[..end]
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if req.len() >= end + 4 + len {
                    break;
                }
            }
        }
        let body = format!(
            "<SimulatePrincipalPolicyResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">\
             <SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated><EvaluationResults><member>\
             <EvalActionName>iam:PassRole</EvalActionName><EvalResourceName>arn:aws:iam::123456789012:role/job</EvalResourceName>\
             <EvalDecision>{decision}</EvalDecision><MatchedStatements/><MissingContextValues/></member>\
             </EvaluationResults></SimulatePrincipalPolicyResult>\
             <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></SimulatePrincipalPolicyResponse>"
        );
        let resp = format!("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        sock.write_all(resp.as_bytes()).await.expect("write");
        String::from_utf8_lossy(&req).to_string()
    });
    Ok((url, served))
}

#[tokio::test]
async fn pass_role_asks_iam_for_the_callers_role_and_reads_its_decision() -> Result<()> {
    for (decision, expected) in [("allowed", true), ("implicitDeny", false), ("explicitDeny", false)] {
        let (url, served) = iam_answering(decision).await?;
        // Set when loading, so that it wins over AWS_ENDPOINT_URL (moto, which has no IAM simulator).
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(url)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "tests"))
            .load()
            .await;
        let caller = "arn:aws:sts::123456789012:assumed-role/ops-admin/alice";
        let allowed = IamPassRole::new(&sdk).may_pass(caller, "arn:aws:iam::123456789012:role/job").await?;
        assert_eq!(allowed, expected, "{decision}");
        let request = served.await?;
        assert!(request.contains("Action=SimulatePrincipalPolicy"), "{request}");
        // An assumed-role session is checked as its role.
        assert!(request.contains("PolicySourceArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fops-admin"), "{request}");
        assert!(request.contains("ActionNames.member.1=iam%3APassRole"), "{request}");
        assert!(request.contains("ResourceArns.member.1=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fjob"), "{request}");
    }
    Ok(())
}
