//! Rules: what a rules file says ([`RuleSpec`]) and its compiled form ([`Rule`]).

use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};
use regex::bytes::Regex;
use serde::Deserialize;

use crate::GateError;

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
    /// The pattern must not run on into a longer name: what follows it is the end of the line or
    /// a character that cannot be in a user name (not a letter, digit, `_`, `.` or `-`). So the
    /// home folder `/Users/NAME` matches `/Users/NAME/bin` and `"/Users/NAME"`, but not the home
    /// of another account whose name starts with NAME.
    #[serde(default)]
    pub whole_name: bool,
    /// Globs of the files the rule applies to, relative to the repository; empty means every file.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Globs of the files where the pattern is allowed, relative to the repository.
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
    /// For a literal rule, the bare literal: a file without it is skipped without splitting it
    /// into lines (a cheap first pass that can only say "maybe").
    prefilter: Option<Regex>,
    paths: Option<GlobSet>,
    allow: GlobSet,
}

/// The bytes that may follow a `whole_name` pattern: the end, or anything that cannot be part of
/// a user name (user names are ASCII, so any other byte ends the name).
const NAME_END: &str = r"(?-u:$|[^A-Za-z0-9_.\-])";

fn globset(rule: &str, kind: &str, globs: &[String]) -> Result<GlobSet, GateError> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        // A glob is matched against a path relative to the scanned root, so an absolute one
        // would silently match nothing.
        if Path::new(g).is_absolute() {
            return Err(GateError::BadRule {
                rule: rule.into(),
                detail: format!(
                    "{kind} glob {g:?} is absolute: give it relative to the repository \
                     (e.g. \"vendor/**\")"
                ),
            });
        }
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

fn compile(rule: &str, pattern: &str) -> Result<Regex, GateError> {
    Regex::new(pattern).map_err(|e| GateError::BadRule {
        rule: rule.into(),
        detail: format!("regex: {e}"),
    })
}

impl Rule {
    /// Compiles a rule. Refuses a pattern that matches an empty line (it would match every
    /// line) and absolute globs (globs are relative to the repository).
    pub fn new(spec: RuleSpec) -> Result<Self, GateError> {
        let (pattern, prefilter) = match (&spec.literal, &spec.regex) {
            (Some(lit), None) => (regex::escape(lit), Some(regex::escape(lit))),
            (None, Some(re)) => (re.clone(), None),
            _ => {
                return Err(GateError::BadRule {
                    rule: spec.name.clone(),
                    detail: "give exactly one of `literal` or `regex`".into(),
                })
            }
        };
        let pattern = if spec.whole_name {
            format!("(?:{pattern}){NAME_END}")
        } else {
            pattern
        };
        let pattern = compile(&spec.name, &pattern)?;
        if pattern.is_match(b"") {
            return Err(GateError::BadRule {
                rule: spec.name.clone(),
                detail: "the pattern matches an empty line, so it matches every line".into(),
            });
        }
        let prefilter = prefilter.map(|p| compile(&spec.name, &p)).transpose()?;
        let paths = if spec.paths.is_empty() {
            None
        } else {
            Some(globset(&spec.name, "paths", &spec.paths)?)
        };
        let allow = globset(&spec.name, "allow", &spec.allow)?;
        Ok(Rule {
            spec,
            pattern,
            prefilter,
            paths,
            allow,
        })
    }

    /// A rule from a regex and allowed globs, for the CLI's `--forbid`/`--allow`.
    pub fn forbid(pattern: &str, allow: &[String]) -> Result<Self, GateError> {
        if pattern.is_empty() {
            return Err(GateError::BadRule {
                rule: "--forbid \"\"".into(),
                detail: "an empty pattern matches every line; give a regular expression".into(),
            });
        }
        Rule::new(RuleSpec {
            name: format!("forbid {pattern}"),
            literal: None,
            regex: Some(pattern.into()),
            whole_name: false,
            paths: Vec::new(),
            allow: allow.to_vec(),
            why: format!("forbidden by --forbid {pattern}"),
        })
    }

    /// The rule's spec.
    pub fn spec(&self) -> &RuleSpec {
        &self.spec
    }

    pub(crate) fn applies_to(&self, rel: &Path) -> bool {
        self.paths.as_ref().is_none_or(|p| p.is_match(rel)) && !self.allow.is_match(rel)
    }

    /// False when `content` cannot hold a hit; true when it may.
    pub(crate) fn may_match(&self, content: &[u8]) -> bool {
        self.prefilter.as_ref().is_none_or(|p| p.is_match(content))
    }

    /// Where the pattern first matches in one line.
    pub(crate) fn find(&self, line: &[u8]) -> Option<std::ops::Range<usize>> {
        self.pattern.find(line).map(|m| m.range())
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
