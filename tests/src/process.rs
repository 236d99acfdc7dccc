//! `batchops local` as a separate process, so a test can kill it (`SIGKILL`), stop it
//! (`SIGTERM`) and start it again on the same table, queues and port, as an operator would.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use batchops::client::ApiClient;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running `batchops local` process.
pub struct LocalProcess {
    child: Option<Child>,
    pub api: ApiClient,
    pub api_url: String,
    pub prefix: String,
    port: u16,
    env: Vec<(String, String)>,
    chunk_workers: usize,
}

/// The `batchops` binary built beside the test binary (`make test` builds it first).
pub fn binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(|d| d.parent()).context("the test binary has no target directory")?;
    let bin = dir.join("batchops");
    if !bin.exists() {
        bail!("{} does not exist: build it first (cargo build -p batchops)", bin.display());
    }
    Ok(bin)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl LocalProcess {
    /// Starts `batchops local` with `env` added to this process's environment.
    pub async fn start(prefix: &str, chunk_workers: usize, env: &[(&str, String)]) -> Result<LocalProcess> {
        let mut p = LocalProcess {
            child: None,
            api: ApiClient::new("http://127.0.0.1:1"),
            api_url: String::new(),
            prefix: prefix.to_string(),
            port: free_port()?,
            env: env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            chunk_workers,
        };
        p.spawn().await?;
        Ok(p)
    }

    async fn spawn(&mut self) -> Result<()> {
        let log_dir = PathBuf::from(std::env::var("CARGO_TARGET_TMPDIR").unwrap_or_else(|_| "/tmp".into()));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir.join(format!("batchops-local-{}.log", self.prefix)))?;
        let mut cmd = Command::new(binary()?);
        cmd.args(["local", "--listen", &format!("127.0.0.1:{}", self.port), "--prefix", &self.prefix])
            .args(["--chunk-workers", &self.chunk_workers.to_string()])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("spawn batchops local")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .context("batchops local did not start within 60 s")??
            .context("batchops local exited before it started")?;
        let url = line.split_whitespace().find(|w| w.starts_with("http://")).context("no API URL printed")?;
        self.api_url = url.to_string();
        self.api = ApiClient::new(url);
        // Keep reading stdout so the process never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// `kill -9`: the process dies with whatever it holds.
    pub async fn kill9(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill().await?;
        }
        Ok(())
    }

    /// `kill -TERM`, then waits for the process to exit (at most `within`).
    pub async fn term(&mut self, within: Duration) -> Result<std::process::ExitStatus> {
        let mut c = self.child.take().context("not running")?;
        let pid = c.id().context("no pid")?;
        std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
        Ok(tokio::time::timeout(within, c.wait()).await.context("did not exit after SIGTERM")??)
    }

    /// Starts it again on the same port, table and queues.
    pub async fn restart(&mut self) -> Result<()> {
        self.spawn().await
    }
}
