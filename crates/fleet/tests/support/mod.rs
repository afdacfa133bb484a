//! A real `redis-server` for one test: its own socket and folder, stoppable and restartable on
//! the same address (for the outage tests).

#![allow(dead_code)] // each test binary uses a different part

pub(crate) mod tls;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The `redis-server` binary the harness found (`scripts/test` sets it). Missing: panics under
/// `CI=true` (never skipped there), else prints a loud SKIPPED and returns `None`.
pub(crate) fn redis_server_binary() -> Option<String> {
    const VAR: &str = "JOELCLAW_TEST_REDIS_SERVER";
    match std::env::var(VAR) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{VAR} is not set: this test needs a real redis-server, and CI=true never skips it; run it through scripts/test");
            }
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("SKIPPED (needs redis-server: run scripts/test): {VAR} is not set\n")
                    .as_bytes(),
            );
            None
        }
    }
}

/// One private Redis on a Unix socket.
pub(crate) struct TestRedis {
    binary: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// More arguments, given again at each start.
    extra: Vec<String>,
}

impl TestRedis {
    /// Starts it (returns `None` when the test is skipped).
    pub(crate) fn start() -> Option<TestRedis> {
        TestRedis::start_with(&[])
    }

    /// Starts it with more configuration (`--user node-a on >pw …`), each inner slice one
    /// directive.
    pub(crate) fn start_with(directives: &[&[&str]]) -> Option<TestRedis> {
        let binary = redis_server_binary()?;
        let mut redis = TestRedis {
            binary,
            dir: tempfile::tempdir().expect("a temp dir"),
            child: None,
            extra: directives
                .iter()
                .flat_map(|d| d.iter().map(|a| a.to_string()))
                .collect(),
        };
        redis.resume();
        Some(redis)
    }

    /// The socket path.
    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// The address to give the publisher.
    pub(crate) fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// Kills it (SIGKILL: as a crash or a lost link, nothing said to the clients).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.socket());
    }

    /// Starts it again on the same socket (its data is gone: no persistence).
    pub(crate) fn resume(&mut self) {
        let child = Command::new(&self.binary)
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(self.socket())
            .args(["--unixsocketperm", "700"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        for _ in 0..500 {
            if std::os::unix::net::UnixStream::connect(self.socket()).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "redis-server did not listen on {} in 5 s",
            self.socket().display()
        );
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 20 ms until it returns `Some`, or panics naming `what` after 20 s.
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..1000 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out after 20 s waiting for: {what}");
}
