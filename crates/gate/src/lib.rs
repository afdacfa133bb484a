//! The forbidden-pattern gate: a repository scanner that keeps an architecture honest. It walks
//! a repository (honouring `.gitignore`) and reports every line that matches a forbidden pattern
//! outside the paths allowed for it, with file and line — e.g. a supervisor CLI called outside
//! its adapter, or a developer's home folder hard-coded.
//!
//! It shares nothing with the heal loop. The workspace runs it on itself (`tests/gate.rs` at the
//! repo root, with [`workspace_rules`]); the node agent's `gate` verb runs it on any repository
//! (with [`default_repo_rules`] or `--forbid` patterns).

use std::fmt;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use regex::Regex;
use serde::{Deserialize, Serialize};

const WORKSPACE_RULES: &str = include_str!("workspace-rules.toml");
const REPO_RULES: &str = include_str!("repo-rules.toml");

/// A rule as written in a rules file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// A short name (`launchd-cli-outside-macos-adapter`).
    pub name: String,
    /// A plain string to forbid.
    #[serde(default)]
    pub literal: Option<String>,
    /// A regular expression to forbid (instead of `literal`).
    #[serde(default)]
    pub regex: Option<String>,
    /// Globs of the files the rule applies to; empty means every file.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Globs of the files where the pattern is allowed.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Why the rule exists, printed with each hit.
    #[serde(default)]
    pub why: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    rule: Vec<RuleSpec>,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    spec: RuleSpec,
    pattern: Regex,
    paths: Option<GlobSet>,
    allow: GlobSet,
}

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
    /// The repository could not be walked.
    #[error("cannot scan {path}: {detail}")]
    Walk {
        /// Where.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
}

fn globset(rule: &str, globs: &[String]) -> Result<GlobSet, GateError> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        b.add(Glob::new(g).map_err(|e| GateError::BadRule {
            rule: rule.into(),
            detail: format!("glob {g:?}: {e}"),
        })?);
    }
    b.build().map_err(|e| GateError::BadRule {
        rule: rule.into(),
        detail: e.to_string(),
    })
}

impl Rule {
    /// Compiles a rule.
    pub fn new(spec: RuleSpec) -> Result<Self, GateError> {
        let pattern = match (&spec.literal, &spec.regex) {
            (Some(lit), None) => regex::escape(lit),
            (None, Some(re)) => re.clone(),
            _ => {
                return Err(GateError::BadRule {
                    rule: spec.name.clone(),
                    detail: "give exactly one of `literal` or `regex`".into(),
                })
            }
        };
        let pattern = Regex::new(&pattern).map_err(|e| GateError::BadRule {
            rule: spec.name.clone(),
            detail: format!("regex: {e}"),
        })?;
        let paths = if spec.paths.is_empty() {
            None
        } else {
            Some(globset(&spec.name, &spec.paths)?)
        };
        let allow = globset(&spec.name, &spec.allow)?;
        Ok(Rule {
            spec,
            pattern,
            paths,
            allow,
        })
    }

    /// A rule from a regex and allowed globs, for the CLI's `--forbid`/`--allow`.
    pub fn forbid(pattern: &str, allow: &[String]) -> Result<Self, GateError> {
        Rule::new(RuleSpec {
            name: format!("forbid {pattern}"),
            literal: None,
            regex: Some(pattern.into()),
            paths: Vec::new(),
            allow: allow.to_vec(),
            why: String::new(),
        })
    }

    /// The rule's spec.
    pub fn spec(&self) -> &RuleSpec {
        &self.spec
    }

    fn applies_to(&self, rel: &Path) -> bool {
        self.paths.as_ref().is_none_or(|p| p.is_match(rel)) && !self.allow.is_match(rel)
    }
}

/// Parses a rules file (`[[rule]]` tables).
pub fn parse_rules(origin: &str, text: &str) -> Result<Vec<Rule>, GateError> {
    let file: RulesFile = toml::from_str(text).map_err(|e| GateError::RulesFile {
        origin: origin.into(),
        detail: e.to_string(),
    })?;
    file.rule.into_iter().map(Rule::new).collect()
}

/// This workspace's architecture rules.
pub fn workspace_rules() -> Vec<Rule> {
    parse_rules("workspace-rules.toml", WORKSPACE_RULES).expect("built-in rules compile")
}

/// The default rules for any repository (`joelclaw-node gate` without `--forbid`).
pub fn default_repo_rules() -> Vec<Rule> {
    parse_rules("repo-rules.toml", REPO_RULES).expect("built-in rules compile")
}

/// One forbidden line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The rule's name.
    pub rule: String,
    /// The file, relative to the scanned root.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in bytes) of the match.
    pub column: usize,
    /// The line, trimmed.
    pub text: String,
    /// Why the rule exists.
    pub why: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: [{}] {}",
            self.path.display(),
            self.line,
            self.column,
            self.rule,
            self.text
        )
    }
}

/// Scans `root` with `rules`. Honours `.gitignore` (also outside a git checkout), skips `.git`
/// and files that are not UTF-8 text. Hits are sorted by path and line.
pub fn scan(root: &Path, rules: &[Rule]) -> Result<Vec<Violation>, GateError> {
    if !root.is_dir() {
        return Err(GateError::Walk {
            path: root.into(),
            detail: "not a directory".into(),
        });
    }
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .require_git(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build();
    let mut hits = Vec::new();
    for entry in walker {
        let entry = entry.map_err(|e| GateError::Walk {
            path: root.into(),
            detail: e.to_string(),
        })?;
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let active: Vec<&Rule> = rules.iter().filter(|r| r.applies_to(rel)).collect();
        if active.is_empty() {
            continue;
        }
        let Ok(bytes) = std::fs::read(entry.path()) else {
            continue;
        };
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            for rule in &active {
                if let Some(m) = rule.pattern.find(line) {
                    hits.push(Violation {
                        rule: rule.spec.name.clone(),
                        path: rel.to_path_buf(),
                        line: i + 1,
                        column: m.start() + 1,
                        text: line.trim().to_string(),
                        why: rule.spec.why.clone(),
                    });
                }
            }
        }
    }
    hits.sort_by(|a, b| (&a.path, a.line, &a.rule).cmp(&(&b.path, b.line, &b.rule)));
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let hits = scan(dir.path(), &rules).unwrap();
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
        assert!(scan(dir.path(), &rules).unwrap().is_empty());
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
        let hits = scan(dir.path(), &rules).unwrap();
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
        assert_eq!(workspace_rules().len(), 4);
        assert_eq!(default_repo_rules().len(), 2);
    }
}
