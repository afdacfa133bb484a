//! The gate on crafted trees: what it scans (git's tracked files inside a repository, bytes that
//! are not UTF-8, committed symlinks), how it bounds its output, and which rules it refuses.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use gate::{default_repo_rules, scan, Rule};

fn write(root: &Path, rel: &str, bytes: impl AsRef<[u8]>) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, bytes).unwrap();
}

fn git(root: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .expect("git runs");
    assert!(
        out.status.success() || out.status.code() == Some(1),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn git_init(root: &Path) {
    git(root, &["-c", "init.defaultBranch=main", "init", "-q"]);
}

/// `path:line` of every hit.
fn hit_lines(root: &Path, rules: &[Rule]) -> BTreeSet<String> {
    scan(root, rules)
        .unwrap()
        .violations
        .iter()
        .map(|h| format!("{}:{}", h.path.display(), h.line))
        .collect()
}

/// The home folder the default rules forbid (kept out of Rust sources, which the workspace's own
/// gate scans).
fn home() -> String {
    default_repo_rules()
        .into_iter()
        .find(|r| r.spec().name == "developer-home-path")
        .and_then(|r| r.spec().literal.clone())
        .expect("developer-home-path literal")
}

#[test]
fn inside_git_a_tracked_ignored_file_is_scanned_and_an_untracked_ignored_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git_init(root);
    write(root, ".gitignore", "generated/\nlocal.txt\n");
    write(root, "generated/tracked.ts", "x forbidden-word\n");
    write(root, "generated/untracked.ts", "forbidden-word\n");
    write(root, "local.txt", "forbidden-word\n");
    write(root, "src/new-untracked.ts", "forbidden-word\n");
    write(root, "src/a.ts", "ok\nforbidden-word\n");
    git(root, &["add", ".gitignore", "src/a.ts"]);
    git(root, &["add", "-f", "generated/tracked.ts"]);
    let rules = vec![Rule::forbid("forbidden-word", &[]).unwrap()];
    assert_eq!(
        hit_lines(root, &rules),
        BTreeSet::from(["generated/tracked.ts:1".into(), "src/a.ts:2".into()]),
        "git's tracked files, no more and no less"
    );
}

#[test]
fn a_file_with_a_byte_that_is_not_utf8_is_scanned() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "latin1.txt",
        b"caf\xe9\nforbidden-word \xff here\n",
    );
    let rules = vec![Rule::forbid("forbidden-word", &[]).unwrap()];
    let found = scan(dir.path(), &rules).unwrap().violations;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].line, found[0].column), (2, 1));
    assert_eq!(found[0].text, "forbidden-word \u{fffd} here");
}

#[test]
fn an_empty_or_match_everything_forbid_is_refused() {
    for pattern in ["", "x*", "^"] {
        let err = Rule::forbid(pattern, &[]).unwrap_err().to_string();
        assert!(err.contains("matches every line"), "{pattern:?}: {err}");
    }
}

#[test]
fn an_absolute_allow_glob_is_refused() {
    let err = Rule::forbid("forbidden-word", &["/work/repo/vendor/**".into()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("absolute"), "{err}");
    assert!(err.contains("relative to the repository"), "{err}");
    let mut spec = default_repo_rules()[0].spec().clone();
    spec.allow.push("/abs/**".into());
    assert!(Rule::new(spec).is_err());
}

#[test]
fn forbid_rules_say_why_in_json() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.ts", "execSync(x)\n");
    let rules = vec![Rule::forbid(r"execSync\(", &[]).unwrap()];
    let found = scan(dir.path(), &rules).unwrap().violations;
    assert_eq!(found[0].why, r"forbidden by --forbid execSync\(");
}

#[test]
fn the_line_text_is_bounded_around_the_match() {
    let dir = tempfile::tempdir().unwrap();
    let line = format!(
        "{}forbidden-word{}\n",
        "a".repeat(1_000_000),
        "é".repeat(1_000_000)
    );
    write(dir.path(), "long.js", &line);
    let rules = vec![Rule::forbid("forbidden-word", &[]).unwrap()];
    let found = scan(dir.path(), &rules).unwrap().violations;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].column, 1_000_001);
    let text = &found[0].text;
    assert!(
        text.len() <= 2 * gate::MAX_TEXT_BYTES,
        "{} bytes",
        text.len()
    );
    assert!(text.starts_with('…') && text.ends_with('…'), "{text}");
    assert!(text.contains("aaaforbidden-wordééé"), "{text}");
    // A short line is shown whole, trimmed.
    write(dir.path(), "short.js", "  x forbidden-word y  \n");
    let found = scan(dir.path(), &rules).unwrap().violations;
    assert_eq!(found[1].text, "x forbidden-word y");
}

#[test]
fn a_persons_home_matches_as_a_whole_name_only() {
    let dir = tempfile::tempdir().unwrap();
    let home = home();
    let lines = [
        format!("{home}claw/bin/x"), // the service account's home: not a person's
        format!("{home}.old/x"),     // another name
        format!("{home}/bin/x"),     // hit
        format!("\"{home}\""),       // hit
        home.to_string(),            // hit: end of line
        format!("{home}:/usr/bin"),  // hit
        format!("{home}_backup/x"),  // another name
    ];
    write(dir.path(), "paths.sh", lines.join("\n"));
    assert_eq!(
        hit_lines(dir.path(), &default_repo_rules()),
        BTreeSet::from([
            "paths.sh:3".into(),
            "paths.sh:4".into(),
            "paths.sh:5".into(),
            "paths.sh:6".into()
        ])
    );
}

#[test]
fn a_committed_symlink_into_a_persons_home_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let home = home();
    std::os::unix::fs::symlink(format!("{home}/data"), root.join("data")).unwrap();
    std::os::unix::fs::symlink(format!("{home}claw/data"), root.join("ok")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("passwd")).unwrap();
    let outside = scan(root, &default_repo_rules()).unwrap().violations;
    git_init(root);
    git(root, &["add", "data", "ok", "passwd"]);
    let inside = scan(root, &default_repo_rules()).unwrap().violations;
    for found in [outside, inside] {
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, Path::new("data"));
        assert_eq!(found[0].rule, "developer-home-path");
        assert_eq!(found[0].text, format!("symlink -> {home}/data"));
    }
}

#[test]
fn totals_per_rule_and_per_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.ts", "alpha\nalpha beta\n");
    write(dir.path(), "b.ts", "beta\n");
    write(dir.path(), "c.ts", "clean\n");
    let rules = vec![
        Rule::forbid("alpha", &[]).unwrap(),
        Rule::forbid("beta", &[]).unwrap(),
    ];
    let report = scan(dir.path(), &rules).unwrap();
    assert_eq!(report.files_scanned, 3);
    let totals = report.totals();
    assert_eq!(totals.violations, 4);
    assert_eq!(
        serde_json::to_value(&totals).unwrap(),
        serde_json::json!({
            "violations": 4,
            "files_scanned": 3,
            "by_rule": { "forbid alpha": 2, "forbid beta": 2 },
            "by_file": { "a.ts": 3, "b.ts": 1 },
        })
    );
    assert_eq!(
        totals.to_string(),
        "by rule:\n  forbid alpha: 2\n  forbid beta: 2\nby file:\n  a.ts: 3\n  b.ts: 1\n\
         gate: 4 violation(s) in 2 of 3 file(s)\n"
    );
}

/// The acceptance case: on a tree with a file that is not UTF-8, a tracked file that matches
/// `.gitignore` and a 50 MB line, the gate finds exactly what `git grep` finds, with bounded
/// output and totals.
#[test]
fn the_gate_finds_what_git_grep_finds() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git_init(root);
    write(root, ".gitignore", "build/\n*.log\n");
    write(root, "src/main.ts", "import x\nforbidden-word()\nok\n");
    write(root, "src/latin1.txt", b"\xe9t\xe9 forbidden-word\n\xff\n");
    write(root, "build/tracked.js", "// forbidden-word\n");
    write(root, "build/untracked.js", "forbidden-word\n");
    write(root, "debug.log", "forbidden-word\n");
    let mut huge = "x".repeat(50 * 1024 * 1024);
    huge.insert_str(25 * 1024 * 1024, "forbidden-word");
    write(
        root,
        "dist/bundle.js",
        format!("first\n{huge}\nforbidden-word last"),
    );
    write(root, "src/untracked.ts", "forbidden-word\n");
    git(
        root,
        &[
            "add",
            ".gitignore",
            "src/main.ts",
            "src/latin1.txt",
            "dist/bundle.js",
        ],
    );
    git(root, &["add", "-f", "build/tracked.js"]);

    let out = git(root, &["grep", "-n", "-I", "-F", "forbidden-word"]);
    let want: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, ':');
            format!("{}:{}", parts.next().unwrap(), parts.next().unwrap())
        })
        .collect();
    assert_eq!(want.len(), 5, "{want:?}");

    let rules = vec![Rule::forbid("forbidden-word", &[]).unwrap()];
    let report = scan(root, &rules).unwrap();
    let got: BTreeSet<String> = report
        .violations
        .iter()
        .map(|h| format!("{}:{}", h.path.display(), h.line))
        .collect();
    assert_eq!(got, want);
    let output = serde_json::to_string(&report).unwrap();
    assert!(output.len() < 4096, "{} bytes of output", output.len());
    let totals = report.totals();
    assert_eq!(totals.violations, 5);
    assert_eq!(totals.by_file.len(), 4);
    assert_eq!(report.files_scanned, 5);
}

/// A fake `git` in a folder that holds `.git`, so the scan asks it for the tracked files.
fn repo_with_fake_git(script: &str) -> (tempfile::TempDir, gate::GitSettings) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join(".git")).unwrap();
    let git = dir.path().join(".git/fake-git");
    fs::write(&git, format!("#!/bin/sh\n{script}\n")).unwrap();
    fs::set_permissions(&git, fs::Permissions::from_mode(0o755)).unwrap();
    let settings = gate::GitSettings {
        program: git,
        deadline: std::time::Duration::from_millis(300),
    };
    (dir, settings)
}

#[test]
fn inside_git_a_failing_git_fails_the_scan_instead_of_falling_back_to_a_walk() {
    let (dir, git) = repo_with_fake_git("echo 'fatal: broken index' >&2; exit 128");
    write(dir.path(), "a.ts", "forbidden-word\n");
    let rules = vec![Rule::forbid("forbidden-word", &[]).unwrap()];
    let err = gate::scan_with(dir.path(), &rules, &git)
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken index"), "{err}");
}

#[test]
fn a_git_past_its_deadline_is_killed_with_its_children() {
    let (dir, git) = repo_with_fake_git("sleep 300 & echo $! > \"$PWD/.git/child\"; wait");
    let rules = vec![Rule::forbid("forbidden-word", &[]).unwrap()];
    let err = gate::scan_with(dir.path(), &rules, &git)
        .unwrap_err()
        .to_string();
    assert!(err.contains("timed out"), "{err}");
    let child: i32 = fs::read_to_string(dir.path().join(".git/child"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Dead means gone or a zombie waiting for init to reap it; SIGKILL lands asynchronously,
    // so look until it has (bounded).
    let dead = || match fs::read_to_string(format!("/proc/{child}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
    };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !dead() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(dead(), "the fake git's child {child} outlived the deadline");
}

#[test]
fn a_file_name_that_is_not_utf8_still_gives_a_json_report() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.ts");
    if fs::write(dir.path().join(name), "forbidden-word\n").is_err() {
        eprintln!("SKIPPED: this filesystem refuses names that are not UTF-8 (APFS does)");
        return;
    }
    let rules = vec![Rule::forbid("forbidden-word", &[]).unwrap()];
    let report = scan(dir.path(), &rules).unwrap();
    assert_eq!(report.violations[0].path, Path::new(name));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["violations"][0]["path"], "caf\u{fffd}.ts");
    let totals = serde_json::to_value(report.totals()).unwrap();
    assert_eq!(totals["by_file"]["caf\u{fffd}.ts"], 1);
}
