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
