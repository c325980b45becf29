//! The real `wagu` binary as a child process, for tests of what only the process does: its
//! startup (the open-file limit), `kill -9`.

use super::http;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The real `wagu` binary as a child process, killed with SIGKILL when dropped.
pub struct Wagu {
    child: Child,
    pub addr: SocketAddr,
    log: std::path::PathBuf,
    env: Vec<(String, String)>,
}

impl Wagu {
    /// Starts `wagu` on a free port over `data_dir`, with its defaults (the embedded room
    /// store) and `env`; waits until `/readyz` answers 200.
    pub async fn spawn(root: &Path, env: &[(&str, &str)]) -> Wagu {
        Wagu::spawn_with_nofile(root, env, None).await
    }

    /// As [`Wagu::spawn`], with the child's soft and hard `RLIMIT_NOFILE` set to `nofile`.
    pub async fn spawn_with_nofile(root: &Path, env: &[(&str, &str)], nofile: Option<u64>) -> Wagu {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("server.log"))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wagu"));
        cmd.env_clear()
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(root.join("data"))
            .env("WAGU_LOG", "warn")
            .env("WAGU_DATABASE__SEED_SAMPLE_PLACES", "false")
            // The server logs to stdout; both streams go to the log file.
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            let lim = rustix::process::Rlimit {
                current: Some(n),
                maximum: Some(n),
            };
            // SAFETY: between fork and exec the closure only makes one system call.
            unsafe {
                cmd.pre_exec(move || {
                    rustix::process::setrlimit(rustix::process::Resource::Nofile, lim)
                        .map_err(std::io::Error::from)
                });
            }
        }
        let mut child = cmd.spawn().expect("the wagu binary starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(root.join("server.log")).unwrap_or_default();
                panic!("wagu exited at start ({status}): {log}");
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok()
                && http(addr, "GET", "/readyz", "").await.0 == 200
            {
                return Wagu {
                    child,
                    addr,
                    log: root.join("server.log"),
                    env: env
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                };
            }
            assert!(Instant::now() < deadline, "wagu not ready within 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The cluster node id it was started with (`WAGU_CLUSTER__NODE_ID`).
    pub fn node_id(&self) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == "WAGU_CLUSTER__NODE_ID")
            .map(|(_, v)| v.clone())
            .expect("a cluster node")
    }

    /// What the server wrote (its log) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (SIGSTOP to pause the node, SIGCONT to wake it, SIGTERM to drain it).
    pub fn signal(&self, signal: rustix::process::Signal) {
        rustix::process::kill_process(rustix::process::Pid::from_child(&self.child), signal)
            .expect("the wagu child takes the signal");
    }

    /// Waits for the process to exit by itself (after SIGTERM or a drain).
    pub async fn exited(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "wagu did not exit within {within:?}: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `kill -9`: no shutdown path runs, nothing is flushed on the way out.
    pub fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Wagu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
