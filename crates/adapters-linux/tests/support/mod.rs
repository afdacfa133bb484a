//! Shared by the tests that need a real daemon: the one rule for when one is missing.

#![allow(dead_code)] // each test binary uses a different part

/// The value of `var`, which the harness (`scripts/test`) sets when the daemon it names runs.
///
/// Missing: under `CI=true` this panics (CI never skips a real-daemon test); elsewhere it prints
/// a loud `SKIPPED` line to stderr and returns `None`, and the test returns early.
pub(crate) fn daemon_env(var: &str, needs: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{var} is not set: this test needs {needs}, and CI=true never skips it; run it through scripts/test");
            }
            // Straight to the stderr handle: libtest captures `eprintln!` of passing tests,
            // and a skip must be seen.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("SKIPPED (needs {needs}: run scripts/test): {var} is not set\n").as_bytes(),
            );
            None
        }
    }
}

/// A container made for one test from the harness's busybox image, removed when dropped.
pub(crate) struct TestContainer {
    host: String,
    name: String,
}

impl TestContainer {
    pub(crate) fn run(host: &str, image: &str, name: &str, label: &str) -> Self {
        let c = TestContainer {
            host: host.to_string(),
            name: name.to_string(),
        };
        c.docker(&["rm", "-f", name]);
        // busybox sh as pid 1 ignores SIGTERM unless it traps it; trap it so a restart is quick.
        let out = c.docker(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            name,
            "--label",
            label,
            image,
            "sh",
            "-c",
            "trap 'exit 0' TERM; while :; do sleep 1; done",
        ]);
        assert!(out.status.success(), "docker run: {out:?}");
        c
    }

    pub(crate) fn docker(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("docker")
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .output()
            .expect("the docker CLI (package docker.io)")
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        self.docker(&["rm", "-f", &self.name]);
    }
}
