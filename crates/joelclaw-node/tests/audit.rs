//! `audit` against ADR-0246's list: a correct Central built in a scratch root from
//! `examples/central.toml` passes, and each violation, added to it alone, is reported by its rule.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_joelclaw-node"))
}

fn manifest(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn inventory() -> PathBuf {
    manifest("../../examples/central.toml")
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("run joelclaw-node");
    (
        out.status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Puts a fixture at `rel` under the root, mode 0644.
fn place(root: &Path, fixture: &str, rel: &str) -> PathBuf {
    let to = root.join(rel);
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    fs::copy(manifest(&format!("tests/data/audit/{fixture}")), &to).unwrap();
    mode(&to, 0o644);
    to
}

fn folder(root: &Path, rel: &str, m: u32) -> PathBuf {
    let p = root.join(rel);
    fs::create_dir_all(&p).unwrap();
    mode(&p, m);
    p
}

/// A correct Central: what `apply` writes for `examples/central.toml`, the service account
/// `joelclaw` (the current uid, in the root's own `etc/passwd`, so ownership checks hold) with a
/// private home, a person `alice` with an ordinary home, the services folder owned by the
/// account, and a private state folder.
/// The inventories' service account (`service_account` in tests/data/audit) and its macOS
/// home, as `bootstrap` makes it: `/Users/` and the account's name.
const SERVICE_ACCOUNT: &str = "joelclaw";

/// The service account's line of an account database, with its home under `/Users`.
fn service_account_entry(uid: impl std::fmt::Display, gid: impl std::fmt::Display) -> String {
    format!("{SERVICE_ACCOUNT}:*:{uid}:{gid}::/Users/{SERVICE_ACCOUNT}:/usr/bin/false\n")
}

fn central() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (code, out, err) = run(bin()
        .args(["apply", "--root"])
        .arg(root)
        .arg("-i")
        .arg(inventory()));
    assert_eq!(code, 0, "apply: {out}{err}");
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    folder(root, "etc", 0o755);
    fs::write(
        root.join("etc/passwd"),
        service_account_entry(uid, gid) + "alice:*:501:20:Alice:/Users/alice:/bin/zsh\n",
    )
    .unwrap();
    folder(root, "Users/joelclaw", 0o700);
    folder(root, "Users/alice/Library/LaunchAgents", 0o755);
    folder(root, "Users/alice", 0o755);
    folder(root, "opt/joelclaw/bin", 0o755);
    folder(root, "var/lib/joelclaw/heal", 0o700);
    dir
}

fn audit_json(root: &Path) -> (i32, serde_json::Value) {
    let (code, out, err) = run(bin()
        .args(["--json", "audit", "--root"])
        .arg(root)
        .arg("-i")
        .arg(inventory()));
    assert!(code == 0 || code == 1, "{out}{err}");
    (code, serde_json::from_str(&out).expect("json"))
}

/// The failed verdicts as (rule, file relative to the root, evidence).
fn failures(root: &Path) -> Vec<(String, String, String)> {
    let (code, v) = audit_json(root);
    let failed: Vec<(String, String, String)> = v["result"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["verdict"] == "fail")
        .map(|f| {
            let file = f["file"].as_str().unwrap();
            let rel = Path::new(file)
                .strip_prefix(root)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| file.to_string());
            (
                f["rule"].as_str().unwrap().to_string(),
                rel,
                f["evidence"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(code, if failed.is_empty() { 0 } else { 1 }, "{v}");
    failed
}

fn rules_and_files(failed: &[(String, String, String)]) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = failed
        .iter()
        .map(|(r, f, _)| (r.as_str(), f.as_str()))
        .collect();
    out.sort();
    out
}

#[test]
fn a_correct_central_passes_every_rule() {
    let dir = central();
    let (code, out, err) = run(bin()
        .args(["audit", "--root"])
        .arg(dir.path())
        .arg("-i")
        .arg(inventory()));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(" 0 failed"), "{out}");
    for rule in [
        "system-daemon",
        "service-account",
        "no-developer-home",
        "definition-not-writable",
        "no-desktop-runtime",
        "no-gui-session",
        "definition-installed",
        "account-home-private",
        "services-folder-owner",
        "state-dir-private",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("pass") && l.contains(rule)),
            "{rule}: {out}"
        );
    }
}

#[test]
fn json_lists_rule_file_verdict_and_evidence() {
    let dir = central();
    let (code, v) = audit_json(dir.path());
    assert_eq!(code, 0, "{v}");
    let findings = v["result"]["findings"].as_array().unwrap();
    assert!(!findings.is_empty());
    for f in findings {
        for key in ["rule", "file", "verdict", "evidence"] {
            assert!(f[key].is_string(), "{key} in {f}");
        }
    }
}

#[test]
fn a_service_of_this_system_in_a_persons_domain_is_a_finding() {
    let dir = central();
    let agents = "Users/alice/Library/LaunchAgents";
    // Ours by label prefix, though not in the inventory.
    place(
        dir.path(),
        "person-agent.plist",
        &format!("{agents}/com.joelclaw.webhook-relay.plist"),
    );
    // Ours by what it runs: a program in the system's repo in the person's home.
    place(
        dir.path(),
        "repo-agent.plist",
        &format!("{agents}/dev.local.gateway.plist"),
    );
    // Someone else's: a person's own agent is not this system's business.
    place(
        dir.path(),
        "third-party-agent.plist",
        &format!("{agents}/org.example.notes-sync.plist"),
    );
    let failed = failures(dir.path());
    assert_eq!(
        rules_and_files(&failed),
        vec![
            (
                "no-developer-home",
                "Users/alice/Library/LaunchAgents/dev.local.gateway.plist"
            ),
            (
                "system-daemon",
                "Users/alice/Library/LaunchAgents/com.joelclaw.webhook-relay.plist"
            ),
            (
                "system-daemon",
                "Users/alice/Library/LaunchAgents/dev.local.gateway.plist"
            ),
        ],
        "{failed:?}"
    );
    assert!(
        failed.iter().any(|(_, _, e)| e.contains("alice's domain")),
        "{failed:?}"
    );
}

#[test]
fn colima_in_a_persons_domain_keeps_its_state_in_their_home() {
    let dir = central();
    place(
        dir.path(),
        "colima-agent.plist",
        "Users/alice/Library/LaunchAgents/homebrew.mxcl.colima.plist",
    );
    let failed = failures(dir.path());
    let file = "Users/alice/Library/LaunchAgents/homebrew.mxcl.colima.plist";
    assert_eq!(
        rules_and_files(&failed),
        vec![("colima-state", file), ("system-daemon", file)],
        "{failed:?}"
    );
    assert!(failed.iter().any(|(_, _, e)| e.contains("~alice/.colima")));
}

#[test]
fn a_critical_service_run_as_a_person_or_root_fails_the_service_account_rule() {
    for user in ["joel", "root"] {
        let dir = central();
        let path = dir
            .path()
            .join("Library/LaunchDaemons/com.joelclaw.system-bus-worker.plist");
        let text = fs::read_to_string(manifest("tests/data/audit/person-username.plist"))
            .unwrap()
            .replace("<string>joel</string>", &format!("<string>{user}</string>"));
        fs::write(&path, text).unwrap();
        let failed = failures(dir.path());
        assert_eq!(
            rules_and_files(&failed),
            vec![(
                "service-account",
                "Library/LaunchDaemons/com.joelclaw.system-bus-worker.plist"
            )],
            "{user}: {failed:?}"
        );
        assert!(
            failed[0].2.contains(&format!("runs as {user}")),
            "{failed:?}"
        );
    }
}

#[test]
fn a_persons_home_in_a_shell_string_or_watch_path_is_found() {
    let dir = central();
    place(
        dir.path(),
        "shell-home.plist",
        "Library/LaunchDaemons/com.joelclaw.vault-sync.plist",
    );
    let failed = failures(dir.path());
    assert_eq!(
        rules_and_files(&failed),
        vec![(
            "no-developer-home",
            "Library/LaunchDaemons/com.joelclaw.vault-sync.plist"
        )],
        "{failed:?}"
    );
    let evidence = &failed[0].2;
    assert!(evidence.contains("ProgramArguments[2]"), "{evidence}");
    assert!(evidence.contains("WatchPaths[0]"), "{evidence}");
}

#[test]
fn the_service_accounts_own_home_is_allowed() {
    let dir = central();
    place(
        dir.path(),
        "service-home.plist",
        "Library/LaunchDaemons/com.joelclaw.vault-sync.plist",
    );
    let (code, v) = audit_json(dir.path());
    assert_eq!(code, 0, "{v}");
    let home_rule = v["result"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "no-developer-home" && f["label"] == "com.joelclaw.vault-sync")
        .cloned();
    assert_eq!(home_rule.unwrap()["verdict"], "pass");
}

#[test]
fn a_missing_critical_definition_is_reported() {
    let dir = central();
    fs::remove_file(
        dir.path()
            .join("Library/LaunchDaemons/com.joelclaw.system-bus-worker.plist"),
    )
    .unwrap();
    let failed = failures(dir.path());
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "definition-installed");
    assert!(
        failed[0].2.contains("no definition installed"),
        "{failed:?}"
    );
}

#[test]
fn garbage_loops_and_folders_are_findings_not_skipped() {
    let dir = central();
    let root = dir.path();
    place(root, "garbage.bin", "etc/systemd/system/garbage.service");
    place(
        root,
        "not-a-unit.service",
        "etc/systemd/system/text.service",
    );
    place(
        root,
        "garbage.bin",
        "Library/LaunchDaemons/com.joelclaw.garbage.plist",
    );
    symlink("loop.plist", root.join("Library/LaunchDaemons/loop.plist")).unwrap();
    folder(root, "Library/LaunchDaemons/x.plist", 0o755);
    symlink("/dev/null", root.join("etc/systemd/system/masked.service")).unwrap();
    // An absolute link is read inside the audited tree, not on the running host (where it
    // leads nowhere): a good unit there passes.
    folder(root, "lib/systemd/system", 0o755);
    let vendor = root.join("lib/systemd/system/audit-vendor-unit.service");
    fs::write(
        &vendor,
        "[Service]\nExecStart=/usr/bin/true\nUser=joelclaw\n",
    )
    .unwrap();
    mode(&vendor, 0o644);
    symlink(
        "/lib/systemd/system/audit-vendor-unit.service",
        root.join("etc/systemd/system/alias.service"),
    )
    .unwrap();
    let failed = failures(root);
    assert_eq!(
        rules_and_files(&failed),
        vec![
            (
                "parseable",
                "Library/LaunchDaemons/com.joelclaw.garbage.plist"
            ),
            ("parseable", "Library/LaunchDaemons/loop.plist"),
            ("parseable", "Library/LaunchDaemons/x.plist"),
            ("parseable", "etc/systemd/system/garbage.service"),
            ("parseable", "etc/systemd/system/text.service"),
        ],
        "{failed:?}"
    );
}

#[test]
fn a_gui_session_a_desktop_runtime_and_auto_login_are_findings() {
    let dir = central();
    place(
        dir.path(),
        "gui-desktop.plist",
        "Library/LaunchDaemons/com.joelclaw.docker-watch.plist",
    );
    place(
        dir.path(),
        "autologin.plist",
        "Library/Preferences/com.apple.loginwindow.plist",
    );
    let failed = failures(dir.path());
    let def = "Library/LaunchDaemons/com.joelclaw.docker-watch.plist";
    assert_eq!(
        rules_and_files(&failed),
        vec![
            (
                "no-auto-login",
                "Library/Preferences/com.apple.loginwindow.plist"
            ),
            ("no-desktop-runtime", def),
            ("no-gui-session", def),
        ],
        "{failed:?}"
    );
}

#[test]
fn open_homes_state_and_writable_definitions_are_findings() {
    let dir = central();
    let root = dir.path();
    mode(&root.join("Users/joelclaw"), 0o755);
    mode(&root.join("var/lib/joelclaw/heal"), 0o750);
    let def = "Library/LaunchDaemons/com.joelclaw.gateway.plist";
    mode(&root.join(def), 0o664);
    let failed = failures(root);
    assert_eq!(
        rules_and_files(&failed),
        vec![
            ("account-home-private", "Users/joelclaw"),
            ("definition-not-writable", def),
            ("state-dir-private", "var/lib/joelclaw/heal"),
        ],
        "{failed:?}"
    );
}

#[test]
fn a_services_folder_owned_by_someone_else_is_a_finding() {
    let dir = central();
    // The root's account database says the service account is another uid than the owner.
    let passwd = dir.path().join("etc/passwd");
    let other = nix::unistd::getuid().as_raw() + 1;
    fs::write(&passwd, service_account_entry(other, 20)).unwrap();
    let failed = failures(dir.path());
    // The state folder is the agent's: owned by root (its default account) it passes; owned
    // by anyone else but the service account it is a finding.
    let mut expected = vec![("services-folder-owner", "opt/joelclaw")];
    if !nix::unistd::getuid().is_root() {
        expected.push(("state-dir-private", "var/lib/joelclaw/heal"));
    }
    assert_eq!(rules_and_files(&failed), expected, "{failed:?}");
}

#[test]
fn a_relay_accounts_own_domain_and_home_are_allowed_and_its_home_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let uid = nix::unistd::getuid();
    folder(root, "etc", 0o755);
    fs::write(
        root.join("etc/passwd"),
        service_account_entry(uid, 20)
            + "relay-alpha:*:601:20::/Users/relay-alpha:/usr/bin/false\n",
    )
    .unwrap();
    folder(root, "Users/joelclaw", 0o700);
    place(
        root,
        "relay-agent.plist",
        "Users/relay-alpha/Library/LaunchAgents/com.joelclaw.relay-alpha.plist",
    );
    mode(&root.join("Users/relay-alpha"), 0o700);
    let audit = |root: &Path| {
        run(bin()
            .args(["--json", "audit", "--root"])
            .arg(root)
            .arg("-i")
            .arg(manifest("tests/data/audit/relay.toml")))
    };
    let (code, out, err) = audit(root);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("relay-alpha's own domain"), "{out}");

    mode(&root.join("Users/relay-alpha"), 0o755);
    let (code, out, _) = audit(root);
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let failed: Vec<&serde_json::Value> = v["result"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["verdict"] == "fail")
        .collect();
    assert_eq!(failed.len(), 1, "{out}");
    assert_eq!(failed[0]["rule"], "account-home-private");
    assert!(failed[0]["file"]
        .as_str()
        .unwrap()
        .ends_with("Users/relay-alpha"));
}

/// A Linux node from `examples/fleet-linux.toml`: the units `apply` writes, the service account
/// with a private home, a person `ann`, and the private state folder.
fn fleet() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let fleet = manifest("../../examples/fleet-linux.toml");
    let (code, out, err) = run(bin()
        .args(["apply", "--root"])
        .arg(root)
        .arg("-i")
        .arg(&fleet));
    assert_eq!(code, 0, "apply: {out}{err}");
    let uid = nix::unistd::getuid();
    fs::write(
        root.join("etc/passwd"),
        format!(
            "joelclaw:*:{uid}:20::/home/joelclaw:/usr/sbin/nologin\n\
             ann:*:1000:1000::/home/ann:/bin/bash\n"
        ),
    )
    .unwrap();
    folder(root, "home/joelclaw", 0o700);
    folder(root, "home/ann/.config/systemd/user", 0o755);
    folder(root, "var/lib/joelclaw-node", 0o700);
    dir
}

fn fleet_failures(root: &Path) -> Vec<(String, String)> {
    let (code, out, err) = run(bin()
        .args(["--json", "audit", "--root"])
        .arg(root)
        .arg("-i")
        .arg(manifest("../../examples/fleet-linux.toml")));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"));
    let mut failed: Vec<(String, String)> = v["result"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["verdict"] == "fail")
        .map(|f| {
            let file = Path::new(f["file"].as_str().unwrap());
            (
                f["rule"].as_str().unwrap().to_string(),
                file.strip_prefix(root).unwrap().display().to_string(),
            )
        })
        .collect();
    failed.sort();
    assert_eq!(code, if failed.is_empty() { 0 } else { 1 }, "{out}");
    failed
}

#[test]
fn systemd_units_are_held_to_the_same_rules() {
    let dir = fleet();
    let root = dir.path();
    assert_eq!(fleet_failures(root), Vec::<(String, String)>::new());

    // A person's user unit of this system (its label names the system), reaching into their
    // home through a shell string; a critical unit run as that person.
    fs::write(
        root.join("home/ann/.config/systemd/user/joelclaw-sync.service"),
        "[Service]\nExecStart=/bin/sh -c 'cd /home/ann/src/joelclaw && exec make sync'\n",
    )
    .unwrap();
    mode(
        &root.join("home/ann/.config/systemd/user/joelclaw-sync.service"),
        0o644,
    );
    let ollama = root.join("etc/systemd/system/ollama.service");
    let text = fs::read_to_string(&ollama).unwrap();
    assert!(text.contains("User=joelclaw"), "{text}");
    fs::write(&ollama, text.replace("User=joelclaw", "User=ann")).unwrap();
    // A path unit beside it watching the person's home counts as the unit's own.
    fs::write(
        root.join("etc/systemd/system/ollama.path"),
        "[Path]\nPathChanged=/home/ann/models\n",
    )
    .unwrap();
    let user_unit = "home/ann/.config/systemd/user/joelclaw-sync.service".to_string();
    assert_eq!(
        fleet_failures(root),
        vec![
            (
                "no-developer-home".to_string(),
                "etc/systemd/system/ollama.service".to_string()
            ),
            ("no-developer-home".to_string(), user_unit.clone()),
            (
                "service-account".to_string(),
                "etc/systemd/system/ollama.service".to_string()
            ),
            ("system-daemon".to_string(), user_unit),
        ]
    );
}

#[test]
fn an_env_file_readable_by_others_or_owned_by_a_stranger_is_a_finding() {
    let dir = fleet();
    let root = dir.path();
    let env = root.join("etc/joelclaw/embedder.env");
    // Optional ('-' path) and absent: nothing to judge.
    assert_eq!(fleet_failures(root), Vec::<(String, String)>::new());
    folder(root, "etc/joelclaw", 0o755);
    fs::write(&env, "API_TOKEN=s3cr3t\n").unwrap();
    mode(&env, 0o600);
    assert_eq!(fleet_failures(root), Vec::<(String, String)>::new());
    let rel = "etc/joelclaw/embedder.env".to_string();
    for m in [0o604, 0o620, 0o602] {
        mode(&env, m);
        assert_eq!(
            fleet_failures(root),
            vec![("env-file-private".to_string(), rel.clone())],
            "mode {m:o}"
        );
    }
    mode(&env, 0o640);
    // The evidence never quotes the file.
    let (_, out, _) = run(bin()
        .args(["--json", "audit", "--root"])
        .arg(root)
        .arg("-i")
        .arg(manifest("../../examples/fleet-linux.toml")));
    assert!(
        out.contains("env-file-private") && !out.contains("s3cr3t"),
        "{out}"
    );
    // Owned by an account that is neither root nor the service's.
    if nix::unistd::getuid().is_root() {
        let stranger = nix::unistd::Uid::from_raw(4242);
        nix::unistd::chown(&env, Some(stranger), None).unwrap();
    } else {
        let other = nix::unistd::getuid().as_raw() + 1;
        fs::write(
            root.join("etc/passwd"),
            format!("joelclaw:*:{other}:20::/home/joelclaw:/usr/sbin/nologin\n"),
        )
        .unwrap();
    }
    let failed = fleet_failures(root);
    assert!(
        failed.contains(&("env-file-private".to_string(), rel.clone())),
        "{failed:?}"
    );
}
