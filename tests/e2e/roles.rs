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

/// Reads one HTTP request (headers and a body of Content-Length bytes) from `sock`; `None` at
/// the end of the connection.
async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<String> {
    let mut req = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&req).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if req.len() >= end + 4 + len {
                return Some(text);
            }
        }
        let n = sock.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        req.extend_from_slice(&buf[..n]);
    }
}

/// IAM's answers are fixtures that tests/scripts/test_iam_fixtures.py checks against botocore's
/// IAM model: like botocore, the SDK skips elements it does not know, so a misspelt hand-written
/// answer would read as one without the element and this test would still pass.
const GET_ROLE_OPS_ADMIN: &str = include_str!("fixtures/iam/get-role-ops-admin.xml");

/// Plays IAM for two requests: GetRole (the caller's role has the path `/ops/`) and
/// SimulatePrincipalPolicy answering `simulated`; returns the requests it was sent.
async fn iam_answering(simulated: &'static str) -> Result<(String, tokio::task::JoinHandle<Vec<String>>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let served = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let (mut sock, _) = listener.accept().await.expect("accept");
            while let Some(req) = read_request(&mut sock).await {
                let body = if req.contains("Action=GetRole") { GET_ROLE_OPS_ADMIN } else { simulated };
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                sock.write_all(resp.as_bytes()).await.expect("write");
                seen.push(req);
                if seen.len() == 2 {
                    break;
                }
            }
        }
        seen
    });
    Ok((url, served))
}

#[tokio::test]
async fn pass_role_asks_iam_for_the_callers_role_and_reads_its_decision() -> Result<()> {
    for (decision, simulated, expected) in [
        ("allowed", include_str!("fixtures/iam/simulate-principal-policy-allowed.xml"), true),
        ("implicitDeny", include_str!("fixtures/iam/simulate-principal-policy-implicit-deny.xml"), false),
        ("explicitDeny", include_str!("fixtures/iam/simulate-principal-policy-explicit-deny.xml"), false),
    ] {
        let (url, served) = iam_answering(simulated).await?;
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
        let [get_role, simulate] = <[String; 2]>::try_from(served.await?).expect("two requests");
        // An assumed-role session is checked as its role, found by name with its path.
        assert!(get_role.contains("Action=GetRole") && get_role.contains("RoleName=ops-admin"), "{get_role}");
        assert!(simulate.contains("Action=SimulatePrincipalPolicy"), "{simulate}");
        assert!(
            simulate.contains("PolicySourceArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fops%2Fops-admin"),
            "{simulate}"
        );
        assert!(simulate.contains("ActionNames.member.1=iam%3APassRole"), "{simulate}");
        assert!(
            simulate.contains("ResourceArns.member.1=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fjob"),
            "{simulate}"
        );
    }
    Ok(())
}
