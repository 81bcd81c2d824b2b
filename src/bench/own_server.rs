//! The server the bench starts for itself (`latchkey serve` from this same
//! binary, on a temporary SQLite database), and what the bench can see of a
//! server beside its answers: its argon2 count and its memory.

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// The custom integration the catalog of a started server declares.
pub const BENCH_INTEGRATION: &str = "bench";
/// The endpoint that integration is granted.
pub const BENCH_ENDPOINT: &str = "bench.v1.BenchService/Get";

/// Failure budgets too large to bind: for scenarios that measure what a
/// rejection costs, which throttling would otherwise decide.
pub const UNTHROTTLED: [&str; 4] = [
    "--key-failure-burst",
    "1000000000",
    "--peer-failure-burst",
    "1000000000",
];

/// How long a started server may take to report SERVING.
const STARTUP: Duration = Duration::from_secs(60);
/// How long a stopped server may take to drain and exit after SIGTERM.
const SHUTDOWN: Duration = Duration::from_secs(30);

/// A `latchkey serve` child process on a temporary database.
pub struct OwnServer {
    child: Child,
    pub addr: String,
    pub metrics_addr: String,
    pub partner_key: String,
    /// The server's database (a temporary SQLite file unless given).
    pub database_url: String,
    _dir: tempfile::TempDir,
}

impl OwnServer {
    /// Starts `latchkey serve` with `extra_args` on ports reserved here and
    /// waits until its health check answers SERVING.
    pub async fn start(extra_args: &[&str]) -> anyhow::Result<Self> {
        Self::start_on(None, extra_args).await
    }

    /// `start`, on `database_url` when given (an empty database the bench
    /// may fill), else on a temporary SQLite file.
    pub async fn start_on(database_url: Option<&str>, extra_args: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let database_url = database_url.map_or_else(
            || {
                format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("bench.db").display()
                )
            },
            str::to_owned,
        );
        // A server database needs a master key; a throwaway one serves.
        let master_key = latchkey::security::sealing::MasterKey::generate()?.to_base64();
        let catalog = dir.path().join("catalog.toml");
        std::fs::write(
            &catalog,
            format!(
                "[[integrations]]\nname = \"{BENCH_INTEGRATION}\"\nkind = \"custom\"\n\
                 description = \"latchkey bench\"\nendpoints = [\"bench.v1.BenchService/*\"]\n"
            ),
        )?;
        let partner_key = create_partner_key(&database_url).await?;
        let addr = free_local_addr()?;
        let metrics_addr = free_local_addr()?;
        let log_path = dir.path().join("serve.log");
        let log = std::fs::File::create(&log_path)?;
        let mut child = Command::new(std::env::current_exe()?)
            .args(["serve", "--listen", &addr, "--log-format", "json"])
            .arg("--catalog")
            .arg(&catalog)
            .args(["--metrics-listen", &metrics_addr])
            // The bench names the end callers it plays.
            .args(["--trusted-peers", "127.0.0.1"])
            .args(extra_args)
            .env("LATCHKEY_DATABASE_URL", &database_url)
            .env("LATCHKEY_MASTER_KEY", master_key.as_str())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start latchkey serve")?;
        wait_until_serving(&mut child, &addr, &log_path).await?;
        Ok(Self {
            child,
            addr,
            metrics_addr,
            partner_key,
            database_url,
            _dir: dir,
        })
    }

    /// A target and a probe on this server.
    pub async fn observe(&self) -> anyhow::Result<(super::calls::Target, Probe)> {
        let target = super::calls::Target::connect(
            &self.addr,
            &self.partner_key,
            BENCH_INTEGRATION,
            BENCH_ENDPOINT,
        )
        .await?;
        let probe = Probe {
            metrics: Some(self.metrics_addr.clone()),
            pid: self.pid(),
        };
        Ok((target, probe))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops the server as an orchestrator would: SIGTERM, then a bounded
    /// wait for it to drain and exit (SIGKILL if it does not).
    pub async fn stop(mut self) {
        let asked = self.child.id().is_some_and(|pid| terminate(pid).is_ok());
        if asked && let Ok(Ok(_)) = tokio::time::timeout(SHUTDOWN, self.child.wait()).await {
            return;
        }
        eprintln!("bench: the server did not stop after SIGTERM; killing it");
        let _ = self.child.kill().await;
    }
}

/// Sends SIGTERM to process `pid`.
#[cfg(unix)]
fn terminate(pid: u32) -> std::io::Result<()> {
    use rustix::process::{Pid, Signal, kill_process};
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| std::io::Error::other("not a process id"))?;
    Ok(kill_process(pid, Signal::TERM)?)
}

/// No SIGTERM here: `stop` falls back to killing the process.
#[cfg(not(unix))]
fn terminate(_pid: u32) -> std::io::Result<()> {
    Err(std::io::Error::other("no SIGTERM on this platform"))
}

/// `127.0.0.1:PORT` with a port free now (the OS picks it; the listener is
/// closed again for the server to bind).
fn free_local_addr() -> anyhow::Result<String> {
    let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(probe.local_addr()?.to_string())
}

/// Waits until the server at `addr` answers its health check with SERVING
/// (migrated, catalog applied, grants loaded) while `child` still runs.
async fn wait_until_serving(child: &mut Child, addr: &str, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + STARTUP;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "latchkey serve exited ({status}) before serving{}",
                log_tail(log)
            );
        }
        // Checked before `child` is seen still running, so a SERVING answer
        // from some other process that took the port is not mistaken for
        // ours: ours exits at once when it cannot listen.
        if is_serving(addr).await {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if child.try_wait()?.is_none() {
                return Ok(());
            }
            continue;
        }
        if Instant::now() >= deadline {
            bail!(
                "latchkey serve did not report SERVING within {} s{}",
                STARTUP.as_secs(),
                log_tail(log)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn is_serving(addr: &str) -> bool {
    let Ok(channel) = latchkey_client::Client::builder(format!("http://{addr}"))
        .timeout(Duration::from_secs(1))
        .channel()
        .await
    else {
        return false;
    };
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .is_ok_and(|r| r.into_inner().status() == ServingStatus::Serving)
}

/// The last lines of the server's log, for an error message (the server
/// never logs a secret).
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("\n");
    if tail.is_empty() {
        String::new()
    } else {
        format!("; its log ends with:\n{tail}")
    }
}

/// A new partner key in the database at `database_url`, made by
/// `latchkey partner-keys create` (this binary), which prints it alone on
/// stdout.
async fn create_partner_key(database_url: &str) -> anyhow::Result<String> {
    let output = Command::new(std::env::current_exe()?)
        .args(["partner-keys", "create", "--name", "bench"])
        .env("LATCHKEY_DATABASE_URL", database_url)
        .stdin(Stdio::null())
        .output()
        .await
        .context("cannot run latchkey partner-keys create")?;
    if !output.status.success() {
        bail!(
            "latchkey partner-keys create failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let key = String::from_utf8(output.stdout)
        .context("latchkey partner-keys create printed a non-UTF-8 key")?
        .trim()
        .to_owned();
    if key.is_empty() {
        bail!("latchkey partner-keys create printed no key");
    }
    Ok(key)
}

/// What the bench can see of the server beside its answers.
pub struct Probe {
    /// Its Prometheus metrics, HOST:PORT.
    pub metrics: Option<String>,
    /// Its process, when the bench started it.
    pub pid: Option<u32>,
}

impl Probe {
    /// Runs `scenario` and adds the server's argon2 computations during it
    /// and its resident memory after it.
    pub async fn measure(
        &self,
        scenario: impl Future<Output = super::report::ScenarioResult>,
    ) -> super::report::ScenarioResult {
        let before = self.argon2_runs().await;
        let mut result = scenario.await;
        result.argon2_runs = self.argon2_runs_since(before).await;
        result.server_rss_mib = self.rss();
        result
    }

    /// Resident memory of the server now, MiB (Linux).
    pub fn rss(&self) -> Option<f64> {
        self.pid.and_then(|pid| proc_status_mib(pid, "VmRSS:"))
    }

    /// Peak resident memory of the server so far (VmHWM), MiB (Linux).
    pub fn peak_rss(&self) -> Option<f64> {
        self.pid.and_then(|pid| proc_status_mib(pid, "VmHWM:"))
    }

    /// argon2 computations since a count `before` taken earlier.
    pub async fn argon2_runs_since(&self, before: Option<u64>) -> Option<u64> {
        self.argon2_runs()
            .await
            .zip(before)
            .map(|(after, before)| after.saturating_sub(before))
    }

    /// `latchkey_argon2_runs_total`, summed over lanes.
    pub async fn argon2_runs(&self) -> Option<u64> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.metrics.as_ref()?;
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")
            .await
            .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await.ok()?;
        let total = text
            .lines()
            .filter(|l| l.starts_with("latchkey_argon2_runs_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        Some(total as u64)
    }
}

/// A memory figure (`VmRSS:`, `VmHWM:`) of process `pid`, MiB (Linux).
pub fn proc_status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
