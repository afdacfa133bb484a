//! The machine contract: every `--json` output is one envelope that validates against the
//! published schema (`schemas/envelope.schema.json`, generated from the Rust types), success,
//! findings, errors and usage errors alike, and its result against the verb's published result
//! schema where it has one; the schemas are what the types generate; errors carry a stable
//! `kind`; next actions are runnable argv with every flag they need.

use std::path::Path;
use std::process::Command;

use joelclaw_node::output::Document;
use serde_json::Value;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_joelclaw-node");

fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Runs the agent with `args` and `--json` (and `NODE_ID=contract-test` unless `env` sets it);
/// returns (exit code, the one JSON document printed).
fn envelope_with(args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("--json").env("NODE_ID", "contract-test");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{args:?}: stdout is not one JSON document ({e}): {stdout}"));
    (out.status.code().unwrap_or(-1), doc)
}

fn envelope(args: &[&str]) -> (i32, Value) {
    envelope_with(args, &[])
}

/// Every document of `Document::ALL` is published as `schema NAME` prints it, and nothing else
/// is in `schemas/`.
#[test]
fn the_published_schemas_are_the_ones_the_types_generate() {
    let out = Command::new(BIN).arg("schema").output().unwrap();
    let generated: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        generated,
        common::published_schema("envelope"),
        "the envelope by default"
    );
    for doc in Document::ALL {
        let name = doc.name();
        let out = Command::new(BIN).args(["schema", name]).output().unwrap();
        assert!(
            out.status.success(),
            "schema {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let generated: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            generated,
            common::published_schema(name),
            "schemas/{} is stale: regenerate it with `cargo run -p joelclaw-node -- schema {name} > schemas/{}`",
            doc.file_name(),
            doc.file_name()
        );
    }
    let published: Vec<String> = std::fs::read_dir(workspace().join("schemas"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    for file in &published {
        assert!(
            Document::ALL.iter().any(|d| d.file_name() == file),
            "schemas/{file} is no document of the contract (Document::ALL)"
        );
    }
    assert_eq!(published.len(), Document::ALL.len(), "{published:?}");
}

/// One case of the contract: a command line, the exit code and error kind it must give.
struct Case {
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    code: i32,
    /// `None`: a result (success, or findings with exit 1); `Some(kind)`: an error.
    kind: Option<&'static str>,
}

fn case(args: &[&str], code: i32, kind: Option<&'static str>) -> Case {
    Case {
        args: args.iter().map(|a| a.to_string()).collect(),
        env: Vec::new(),
        code,
        kind,
    }
}

/// Every verb's `--json` output, success (or findings) and error, usage errors included: one
/// envelope that validates against the published schema, and on success a result that
/// validates against the verb's own result schema where it has one (`common::result_schema`).
/// With no agent running, `restart` and `disable` cannot succeed on these managers (the
/// embedded one is the agent's; the in-memory one forgets between runs): their successes,
/// `inspect`'s and `logs`' with a live service are checked through a running agent in
/// tests/api.rs; the fleet's successes with a real Redis in tests/fleet_e2e.rs. `schema` prints
/// a JSON Schema, not an envelope; `run` is the agent itself.
#[test]
fn every_verbs_json_output_validates_against_its_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let root = path("root");
    std::fs::create_dir(&root).unwrap();
    let fleet = workspace().join("examples/fleet-linux.toml");
    let fleet = fleet.to_str().unwrap();
    let bad = path("bad.toml");
    std::fs::write(&bad, "[loop]\ninterval = \"soon\"\n").unwrap();
    // The embedded supervisor's service (no agent: read-only, stop is recorded) and an
    // in-memory one with a program (start and enable install it, within the one run).
    let embedded = path("embedded.toml");
    std::fs::write(
        &embedded,
        format!(
            "[node]\nid = \"contract\"\n\n[loop]\nstate_dir = \"{}\"\n\n[[service]]\nlabel = \"web\"\nmanager = \"embedded\"\n\n[service.config]\nprogram = \"/bin/true\"\n",
            path("state")
        ),
    )
    .unwrap();
    let memory = path("memory.toml");
    std::fs::write(
        &memory,
        format!(
            "[node]\nid = \"contract\"\n\n[loop]\nstate_dir = \"{}\"\n\n[[service]]\nlabel = \"web\"\nmanager = \"null\"\n\n[service.config]\nprogram = \"/bin/true\"\n",
            path("state-memory")
        ),
    )
    .unwrap();
    // A repository with one forbidden call, and one with none.
    let dirty = path("dirty");
    std::fs::create_dir_all(format!("{dirty}/src")).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/ts-tree/packages/gateway/src/restart.ts"
        ),
        format!("{dirty}/src/restart.ts"),
    )
    .unwrap();
    let clean = path("clean");
    std::fs::create_dir(&clean).unwrap();
    let (e, m) = (embedded.as_str(), memory.as_str());
    let mut cases = vec![
        // list
        case(&["list", "-i", e], 0, None),
        case(&["list", "-i", &bad], 2, Some("invalid-input")),
        // the service verbs, no agent running
        case(&["start", "web", "-i", m], 0, None),
        case(&["start", "web", "-i", e], 1, Some("failed")),
        case(&["stop", "web", "-i", e], 0, None),
        case(&["stop", "nope", "-i", e], 2, Some("not-found")),
        case(&["restart", "web", "-i", m], 1, Some("failed")),
        case(&["restart", "web"], 2, Some("usage")),
        case(&["enable", "web", "-i", m], 0, None),
        case(&["enable", "nope", "-i", m], 2, Some("not-found")),
        case(&["disable", "web", "-i", e], 1, Some("failed")),
        case(&["disable", "nope", "-i", e], 2, Some("not-found")),
        // logs: the embedded supervisor's files (empty), an unknown label, a manager with none
        case(&["logs", "web", "-i", e], 0, None),
        case(&["logs", "nope", "-i", e], 2, Some("not-found")),
        case(&["logs", "web", "-i", m], 2, Some("not-supported")),
        // inspect: not running is a finding; unknown labels are bad input
        case(
            &["inspect", "no-such-label", "-i", fleet],
            2,
            Some("invalid-input"),
        ),
        case(&["inspect", "web", "-i", e], 2, Some("invalid-input")),
        // identity
        case(&["identity"], 0, None),
        Case {
            env: vec![("NODE_ID", "has space".into())],
            ..case(&["identity"], 2, Some("invalid-input"))
        },
        // status, its fleet form without [fleet], events without --fleet
        case(&["status", "-i", e], 0, None),
        case(&["status", "-i", &bad], 2, Some("invalid-input")),
        case(&["status", "--fleet", "-i", e], 2, Some("invalid-input")),
        case(
            &["status", "--fleet", "--node", "n1", "-i", e],
            2,
            Some("invalid-input"),
        ),
        case(&["events", "-i", e], 2, Some("invalid-input")),
        case(&["events", "--fleet", "-i", e], 2, Some("invalid-input")),
        // apply
        case(
            &["apply", "--dry-run", "--root", &root, "-i", fleet],
            0,
            None,
        ),
        case(
            &["apply", "--dry-run", "--root", &root, "-i", &bad],
            2,
            Some("invalid-input"),
        ),
        // audit: an empty root has findings (nothing to check); a missing root is bad input
        case(&["audit", "--root", &root], 1, None),
        case(
            &["audit", "--root", &path("missing")],
            2,
            Some("invalid-input"),
        ),
        // gate
        case(&["gate", "--repo", &clean], 0, None),
        case(&["gate", "--repo", &dirty], 1, None),
        case(
            &["gate", "--repo", &path("missing")],
            2,
            Some("invalid-input"),
        ),
        // usage errors: an unknown flag, a missing argument, an unknown verb, no verb at all
        case(&["status", "--bogus"], 2, Some("usage")),
        case(&["apply"], 2, Some("usage")),
        case(&["frobnicate"], 2, Some("usage")),
        case(&[], 2, Some("usage")),
    ];
    // Each verb of the CLI is in the table with an error, and with a result but for the two
    // that need an agent to succeed (`schema` and `run` aside, see above).
    for verb in [
        "list", "start", "stop", "restart", "enable", "disable", "logs", "inspect", "identity",
        "status", "events", "apply", "audit", "gate",
    ] {
        let of_verb = || {
            cases
                .iter()
                .filter(|c| c.args.first().map(String::as_str) == Some(verb))
        };
        assert!(of_verb().any(|c| c.kind.is_some()), "{verb}: no error case");
        let needs_agent = ["restart", "disable", "inspect", "events"].contains(&verb);
        assert!(
            needs_agent || of_verb().any(|c| c.kind.is_none()),
            "{verb}: no success case"
        );
    }
    for c in cases.drain(..) {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = c.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (got, doc) = envelope_with(&args, &env);
        common::assert_output(&args, &doc);
        assert_eq!(got, c.code, "{args:?}: {doc}");
        assert_eq!(doc["schema_version"], 1);
        match c.kind {
            None => {
                assert!(doc["error"].is_null(), "{args:?}: {doc}");
                assert!(!doc["result"].is_null(), "{args:?}: {doc}");
                assert_eq!(doc["ok"], c.code == 0, "{args:?}: {doc}");
            }
            Some(kind) => {
                assert_eq!(doc["error"]["kind"], kind, "{args:?}: {doc}");
                assert!(doc["result"].is_null(), "{args:?}: {doc}");
                assert_eq!(doc["ok"], false);
                let message = doc["error"]["message"].as_str().unwrap();
                assert!(!message.is_empty());
            }
        }
    }
}

#[test]
fn next_actions_are_runnable_argv_with_every_flag() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let fleet = workspace().join("examples/fleet-linux.toml");
    let (_, doc) = envelope(&[
        "apply",
        "--dry-run",
        "--root",
        &root,
        "--inventory",
        fleet.to_str().unwrap(),
    ]);
    let next = doc["next_actions"].as_array().expect("next_actions");
    let argv: Vec<&str> = next[0]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    // The dry run was under --root: the suggestion must not write to the real /.
    assert_eq!(argv[0], "joelclaw-node");
    assert_eq!(argv[1], "apply");
    let at = argv
        .iter()
        .position(|a| *a == "--root")
        .expect("--root kept");
    assert_eq!(argv[at + 1], root);
    assert!(!argv.contains(&"--dry-run"), "{argv:?}");
    // And it runs: the suggested command writes under the root, nothing else.
    let out = Command::new(BIN).args(&argv[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("etc/systemd/system").is_dir());

    // `logs`' next action (follow it) keeps the state folder and line count it was given: the
    // same logs, not the inventory's default folder's.
    let inventory = dir.path().join("logs.toml");
    std::fs::write(
        &inventory,
        format!(
            "[node]\nid = \"contract\"\n\n[loop]\nstate_dir = \"{}\"\n\n[[service]]\nlabel = \"web\"\nmanager = \"embedded\"\n\n[service.config]\nprogram = \"/bin/true\"\n",
            dir.path().join("default-state").display()
        ),
    )
    .unwrap();
    let state = dir.path().join("given-state").display().to_string();
    let inventory = inventory.display().to_string();
    let (code, doc) = envelope(&[
        "logs",
        "web",
        "-i",
        &inventory,
        "--lines",
        "7",
        "--state-dir",
        &state,
    ]);
    assert_eq!(code, 0, "{doc}");
    let argv: Vec<&str> = doc["next_actions"][0]["argv"]
        .as_array()
        .unwrap_or_else(|| panic!("no next action: {doc}"))
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let after = |flag: &str| {
        let at = argv
            .iter()
            .position(|a| *a == flag)
            .unwrap_or_else(|| panic!("{flag} dropped: {argv:?}"));
        argv[at + 1]
    };
    assert_eq!(after("--state-dir"), state, "{argv:?}");
    assert_eq!(after("--lines"), "7", "{argv:?}");
    assert_eq!(after("-i"), inventory, "{argv:?}");
    assert!(argv.contains(&"-f"), "{argv:?}");
    // Run without -f (it would follow forever), it reads the given folder's logs.
    let again: Vec<&str> = argv[1..].iter().copied().filter(|a| *a != "-f").collect();
    let (code, doc) = envelope(&again);
    assert_eq!(code, 0, "{doc}");
    let source = doc["result"]["logs"][0]["source"].as_str().unwrap();
    assert!(source.starts_with(&state), "{source}");
}
