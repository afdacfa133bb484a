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

/// The published `schemas/NAME.schema.json`.
pub(crate) fn published_schema(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/../../schemas/{name}.schema.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Panics naming every error and where it is when `doc` does not validate against the
/// published `schemas/NAME.schema.json`; `what` says which output it is.
pub(crate) fn assert_schema(name: &str, doc: &serde_json::Value, what: &str) {
    let schema = published_schema(name);
    let validator = jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("schemas/{name}.schema.json does not compile: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: not a valid {name}: {errors:?}\n{doc}"
    );
}

/// The published schema of a command's `result` (and where in the result it applies: `""` for
/// the whole), for the commands that have one: `args` as given to the binary.
pub(crate) fn result_schema(args: &[&str]) -> Option<(&'static str, &'static str)> {
    let verb = args.iter().find(|a| !a.starts_with('-'))?;
    let has = |flag: &str| args.contains(&flag);
    Some(match *verb {
        "list" => ("list", ""),
        "inspect" => ("inspect", ""),
        "identity" => ("identity", ""),
        "logs" if !has("-f") && !has("--follow") => ("logs", ""),
        "start" | "stop" | "restart" | "enable" | "disable" => ("verb-outcome", ""),
        "status" if has("--fleet") && has("--node") => ("fleet-node", ""),
        "status" if has("--fleet") => ("fleet-status", ""),
        "status" => ("status", "/status"),
        "events" if has("--fleet") && !has("-f") && !has("--follow") => ("fleet-events", ""),
        _ => return None,
    })
}

/// `doc`, printed by the binary run with `args` and `--json`: a valid envelope, and its result
/// (when there is one) valid against the command's result schema, where it has one.
pub(crate) fn assert_output(args: &[&str], doc: &serde_json::Value) {
    let what = format!("{args:?}");
    assert_schema("envelope", doc, &what);
    if doc["result"].is_null() {
        return;
    }
    if let Some((name, at)) = result_schema(args) {
        let part = doc["result"]
            .pointer(at)
            .unwrap_or_else(|| panic!("{what}: no result{at}: {doc}"));
        assert_schema(name, part, &what);
    }
}
