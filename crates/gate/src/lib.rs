//! The forbidden-pattern gate: a repository scanner that keeps an architecture honest. It reports
//! every line of a repository that matches a forbidden pattern outside the paths allowed for it,
//! with file and line — e.g. a supervisor CLI called outside its adapter, or a developer's home
//! folder hard-coded.
//!
//! It shares nothing with the heal loop. The workspace runs it on itself (`tests/gate.rs` at the
//! repo root, with [`workspace_rules`]); the node agent's `gate` verb runs it on any repository
//! (with [`default_repo_rules`] or `--forbid` patterns).
//!
//! Inside a git repository it reads what git tracks, as `git grep` does (a tracked file that
//! matches `.gitignore` is read, an untracked one is not); elsewhere every file not ignored by a
//! `.gitignore`. Files are matched as bytes, so one byte that is not UTF-8 hides nothing; a
//! committed symlink is matched by its target. Shown line text is bounded ([`MAX_TEXT_BYTES`])
//! and the report carries totals per rule and per file ([`Scan::totals`]).

use std::path::PathBuf;

mod listing;
mod rules;
mod scan;

pub use listing::{GitSettings, Listing};
pub use rules::{default_repo_rules, parse_rules, workspace_rules, Rule, RuleSpec};
pub use scan::{scan, scan_with, Scan, Totals, Unreadable, Violation, MAX_TEXT_BYTES};

/// Why a rule or a scan failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// A rules file does not parse.
    #[error("rules file {origin}: {detail}")]
    RulesFile {
        /// Which file.
        origin: String,
        /// What was wrong (with line and column).
        detail: String,
    },
    /// A rule is malformed.
    #[error("rule {rule:?}: {detail}")]
    BadRule {
        /// The rule's name.
        rule: String,
        /// What was wrong.
        detail: String,
    },
    /// git could not list the tracked files (not installed, failed, or past its deadline).
    #[error("cannot list the files git tracks in {path}: {detail}")]
    Git {
        /// The scanned root.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// The repository could not be walked.
    #[error("cannot scan {path}: {detail}")]
    Walk {
        /// Where.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn finds_hits_outside_allowed_paths_with_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "src/a.ts",
            "ok\n  exec('forbidden-word list')\n",
        );
        write(
            dir.path(),
            "pkg/process-manager/b.ts",
            "exec('forbidden-word')\n",
        );
        let rules =
            vec![Rule::forbid("forbidden-word", &["**/process-manager/**".into()]).unwrap()];
        let hits = scan(dir.path(), &rules).unwrap().violations;
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].path, PathBuf::from("src/a.ts"));
        assert_eq!((hits[0].line, hits[0].column), (2, 9));
        assert_eq!(
            hits[0].to_string(),
            "src/a.ts:2:9: [forbid forbidden-word] exec('forbidden-word list')"
        );
    }

    #[test]
    fn honours_gitignore_without_a_git_checkout() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), ".gitignore", "node_modules/\n");
        write(dir.path(), "node_modules/x/index.js", "forbidden-word\n");
        write(dir.path(), "index.js", "clean\n");
        let rules = vec![Rule::forbid("forbidden-word", &[]).unwrap()];
        assert!(scan(dir.path(), &rules).unwrap().violations.is_empty());
    }

    #[test]
    fn path_scoped_rules_and_bad_rules() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.rs", "forbidden-word\n");
        write(dir.path(), "a.md", "forbidden-word\n");
        let rules = parse_rules(
            "t.toml",
            "[[rule]]\nname = \"x\"\nliteral = \"forbidden-word\"\npaths = [\"**/*.rs\"]\n",
        )
        .unwrap();
        let hits = scan(dir.path(), &rules).unwrap().violations;
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].path, PathBuf::from("a.rs"));

        let err = parse_rules("t.toml", "[[rule]]\nname = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("exactly one of"), "{err}");
        let err = parse_rules("t.toml", "[[rule]]\nname = \"x\"\nliteral = 3\n").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        assert!(Rule::forbid("(", &[]).is_err());
    }

    #[test]
    fn built_in_rules_compile() {
        assert_eq!(workspace_rules().len(), 5);
        assert_eq!(default_repo_rules().len(), 2);
    }
}
