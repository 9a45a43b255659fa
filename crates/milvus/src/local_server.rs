//! A standalone Milvus server of this machine, for tests, benchmarks and walk-throughs: the
//! PyPI package `milvus==2.3.5` started by `scripts/milvus_server.py` on a fresh data folder,
//! stopped (SIGTERM, then SIGKILL after a deadline) when dropped, restartable on the same data.
//!
//! It runs only inside a loopback-only network namespace ([`loopback_only`]; `scripts/netns.sh`
//! makes one with `unshare -n`): the server cannot be told to listen on loopback alone, so the
//! namespace is what keeps it from listening on or reaching any other address.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Seconds a server may take to become healthy.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a local server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LocalServerError {
    /// Not inside a loopback-only network namespace.
    #[error(
        "this machine's network namespace has interfaces besides loopback ({0}); run inside \
         scripts/netns.sh so the server can reach nothing but 127.0.0.1"
    )]
    NotIsolated(String),
    /// The launcher could not run or the server did not become healthy.
    #[error("the Milvus server did not start: {0}")]
    Start(String),
}

/// Whether this process's network namespace has no interface but `lo`; the other interfaces'
/// names when it has.
pub fn loopback_only() -> Result<(), String> {
    // /proc/self/net follows this process's namespace; /sys/class/net follows the mount's
    let table = std::fs::read_to_string("/proc/self/net/dev").map_err(|e| e.to_string())?;
    let others: Vec<&str> = table
        .lines()
        .skip(2)
        .filter_map(|line| line.split(':').next().map(str::trim))
        .filter(|name| *name != "lo")
        .collect();
    if others.is_empty() {
        Ok(())
    } else {
        Err(others.join(", "))
    }
}

/// A running local server.
pub struct LocalServer {
    launcher: PathBuf,
    data: PathBuf,
    port: u16,
    health_port: u16,
    child: Option<Child>,
}

impl LocalServer {
    /// Starts a server with its data in `data` (created; give a fresh folder per run), gRPC on
    /// `port` and health on `health_port`, through the launcher script `launcher`, and waits
    /// until it is healthy.
    ///
    /// # Errors
    /// [`LocalServerError::NotIsolated`] outside a loopback-only namespace,
    /// [`LocalServerError::Start`] when the launcher fails (no `milvus` package, a port taken,
    /// no health within two minutes).
    pub fn start(
        launcher: &Path,
        data: &Path,
        port: u16,
        health_port: u16,
    ) -> Result<Self, LocalServerError> {
        loopback_only().map_err(LocalServerError::NotIsolated)?;
        let mut server = LocalServer {
            launcher: launcher.to_path_buf(),
            data: data.to_path_buf(),
            port,
            health_port,
            child: None,
        };
        server.launch()?;
        Ok(server)
    }

    /// [`LocalServer::start`] with the repository's launcher, for tests: `None` (with
    /// "skipped: why" printed) outside a loopback-only namespace, unless
    /// `UNISIGHT_REQUIRE_MILVUS=1` makes that a failure.
    ///
    /// # Panics
    /// When the server cannot start and one is required, or for any reason but isolation.
    pub fn start_or_skip(data: &Path, port: u16, health_port: u16) -> Option<Self> {
        let launcher = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/milvus_server.py");
        match Self::start(&launcher, data, port, health_port) {
            Ok(server) => Some(server),
            Err(e) => {
                let required = std::env::var("UNISIGHT_REQUIRE_MILVUS").is_ok_and(|v| v == "1");
                if required || !matches!(e, LocalServerError::NotIsolated(_)) {
                    panic!("a Milvus server is needed here: {e}");
                }
                eprintln!("skipped: {e}");
                None
            }
        }
    }

    /// The `milvus://` address of `collection` on this server.
    pub fn url(&self, collection: &str) -> String {
        format!("milvus://127.0.0.1:{}/{collection}", self.port)
    }

    /// gRPC port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (its data stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // the launcher stops Milvus on SIGTERM, then SIGKILLs it after its own deadline
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts the server again on the same data.
    ///
    /// # Errors
    /// As [`LocalServer::start`].
    pub fn restart(&mut self) -> Result<(), LocalServerError> {
        self.stop();
        self.launch()
    }

    fn launch(&mut self) -> Result<(), LocalServerError> {
        let ready = self.data.with_extension("ready");
        let _ = std::fs::remove_file(&ready);
        let log = std::fs::File::create(self.data.with_extension("log"))
            .map_err(|e| LocalServerError::Start(format!("log file: {e}")))?;
        let child = Command::new("python3")
            .arg(&self.launcher)
            .arg("--data")
            .arg(&self.data)
            .args(["--port", &self.port.to_string()])
            .args(["--health-port", &self.health_port.to_string()])
            .arg("--ready-file")
            .arg(&ready)
            .args(["--max-seconds", "3600"])
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(|e| LocalServerError::Start(e.to_string()))?,
            )
            .stderr(log)
            .spawn()
            .map_err(|e| LocalServerError::Start(format!("{}: {e}", self.launcher.display())))?;
        self.child = Some(child);
        let started = Instant::now();
        while !ready.exists() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || started.elapsed() > START_TIMEOUT {
                self.stop();
                let log =
                    std::fs::read_to_string(self.data.with_extension("log")).unwrap_or_default();
                let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
                return Err(LocalServerError::Start(format!(
                    "{} (launcher log: {tail})",
                    if exited.is_some() {
                        "the launcher exited"
                    } else {
                        "no health within 120 s"
                    }
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop();
    }
}
