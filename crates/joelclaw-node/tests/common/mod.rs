//! Helpers shared by this crate's process tests.

#![allow(dead_code)] // each test binary uses a different part

/// Whether `pid` is a live process (a zombie counts as gone: it has exited, only not reaped).
pub(crate) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The pid the embedded supervisor published for `label` while it runs (from
/// `STATE/embedded/services.json`).
pub(crate) fn published_pid(state: &std::path::Path, label: &str) -> Option<u32> {
    let text = std::fs::read_to_string(state.join("embedded/services.json")).ok()?;
    let all: serde_json::Value = serde_json::from_str(&text).ok()?;
    all.as_array()?
        .iter()
        .find(|s| s["label"] == label && s["state"] == "running")
        .and_then(|s| s["pid"].as_u64())
        .map(|p| p as u32)
}

/// A loopback port free right now (for a service the test's agent starts).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The harness's systemd PID, or `None` (SKIPPED) outside CI; under `CI=true` a missing harness
/// fails the test.
pub(crate) fn systemd_pid() -> Option<String> {
    match std::env::var("JOELCLAW_TEST_SYSTEMD_PID") {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("JOELCLAW_TEST_SYSTEMD_PID is not set: this test needs real systemd, and CI=true never skips it; run it through scripts/test");
            }
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"SKIPPED (needs real systemd: run scripts/test): JOELCLAW_TEST_SYSTEMD_PID is not set\n",
            );
            None
        }
    }
}
