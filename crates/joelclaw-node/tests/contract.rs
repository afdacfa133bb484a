//! The machine contract: every `--json` output is one envelope that validates against the
//! published schema (`schemas/envelope.schema.json`, generated from the Rust types), success,
//! findings, errors and usage errors alike; errors carry a stable `kind`; next actions are
//! runnable argv with every flag they need.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_joelclaw-node");

fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn published_schema() -> Value {
    let path = workspace().join("schemas/envelope.schema.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Runs the agent with `args` and `--json`; returns (exit code, the one JSON document printed).
fn envelope(args: &[&str]) -> (i32, Value) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--json")
        .env("NODE_ID", "contract-test")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{args:?}: stdout is not one JSON document ({e}): {stdout}"));
    (out.status.code().unwrap_or(-1), doc)
}

fn assert_valid(args: &[&str], doc: &Value) {
    let schema = published_schema();
    let validator = jsonschema::validator_for(&schema).expect("the published schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{args:?}: {errors:?}\n{doc}");
}

#[test]
fn the_published_schemas_are_the_ones_the_types_generate() {
    let out = Command::new(BIN).arg("schema").output().unwrap();
    let generated: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(generated, published_schema(), "the envelope by default");
    for doc in ["envelope", "status", "event", "verb-outcome"] {
        let out = Command::new(BIN).args(["schema", doc]).output().unwrap();
        let generated: Value = serde_json::from_slice(&out.stdout).unwrap();
        let path = workspace().join(format!("schemas/{doc}.schema.json"));
        let published: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            generated, published,
            "{} is stale: regenerate it with `cargo run -p joelclaw-node -- schema {doc} > schemas/{doc}.schema.json`",
            path.display()
        );
    }
}

#[test]
fn every_kind_of_outcome_is_one_valid_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let fleet = workspace().join("examples/fleet-linux.toml");
    let fleet = fleet.to_str().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[loop]\ninterval = \"soon\"\n").unwrap();
    let bad = bad.to_str().unwrap();
    let embedded = dir.path().join("embedded.toml");
    std::fs::write(
        &embedded,
        format!(
            "[node]\nid = \"contract\"\n\n[loop]\nstate_dir = \"{}\"\n\n[[service]]\nlabel = \"web\"\nmanager = \"embedded\"\n\n[service.config]\nprogram = \"/bin/true\"\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let embedded = embedded.to_str().unwrap().to_string();
    let cases: Vec<(Vec<&str>, i32, Option<&str>)> = vec![
        // success
        (vec!["identity"], 0, None),
        // success with a next action (a dry run under --root)
        (
            vec!["apply", "--dry-run", "--root", &root, "--inventory", fleet],
            0,
            None,
        ),
        // bad input
        (vec!["status", "--inventory", bad], 2, Some("invalid-input")),
        (
            vec!["inspect", "no-such-label", "--inventory", fleet],
            2,
            Some("invalid-input"),
        ),
        // service verbs with no agent running: done through the adapter, or refused by kind
        (vec!["list", "--inventory", &embedded], 0, None),
        (vec!["stop", "web", "--inventory", &embedded], 0, None),
        (
            vec!["stop", "nope", "--inventory", &embedded],
            2,
            Some("not-found"),
        ),
        (vec!["status", "--inventory", &embedded], 0, None),
        // usage errors: an unknown flag, a missing argument, no verb at all
        (vec!["status", "--bogus"], 2, Some("usage")),
        (vec!["apply"], 2, Some("usage")),
        (vec![], 2, Some("usage")),
    ];
    for (args, code, kind) in cases {
        let (got, doc) = envelope(&args);
        assert_valid(&args, &doc);
        assert_eq!(got, code, "{args:?}: {doc}");
        assert_eq!(doc["schema_version"], 1);
        match kind {
            None => {
                assert!(doc["error"].is_null(), "{args:?}: {doc}");
                assert!(!doc["result"].is_null(), "{args:?}: {doc}");
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
}
