//! The scan: every listed file read as bytes, line by line, against the rules that apply to it;
//! a symlink is checked by its target. The report carries bounded line text and totals.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::listing::{self, GitSettings, Listing};
use crate::{GateError, Rule};

/// At most this many bytes of a line are shown (around the match), so a minified 50 MB line
/// gives a short report.
pub const MAX_TEXT_BYTES: usize = 200;

/// How much of the line before the match a cut line still shows.
const CONTEXT_BEFORE: usize = 60;

/// One forbidden line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The rule's name.
    pub rule: String,
    /// The file, relative to the scanned root (in JSON, lossy UTF-8: a name need not be UTF-8).
    #[serde(serialize_with = "lossy_path")]
    pub path: PathBuf,
    /// 1-based line (1 for a symlink, whose content is its target).
    pub line: usize,
    /// 1-based column (in bytes) of the match.
    pub column: usize,
    /// The line, trimmed, at most [`MAX_TEXT_BYTES`] of it around the match (`…` where cut);
    /// bytes that are not UTF-8 and control characters show as `�`. For a symlink,
    /// `symlink -> TARGET`.
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

/// A file that is listed but could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// The file, relative to the scanned root.
    #[serde(serialize_with = "lossy_path")]
    pub path: PathBuf,
    /// Why.
    pub error: String,
}

/// What a scan found.
#[derive(Debug, Clone, Serialize)]
pub struct Scan {
    /// Every hit, sorted by path, line and rule.
    pub violations: Vec<Violation>,
    /// How many files (and symlinks) were read.
    pub files_scanned: usize,
    /// Listed files that could not be read (a tracked file deleted from the working tree is
    /// not listed here: `git grep` skips it too).
    pub unreadable: Vec<Unreadable>,
    /// How the files were listed.
    pub listing: Listing,
}

/// Hits counted per rule and per file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// All hits.
    pub violations: usize,
    /// Files read.
    pub files_scanned: usize,
    /// Hits per rule name.
    pub by_rule: BTreeMap<String, usize>,
    /// Hits per file (the path as lossy UTF-8).
    pub by_file: BTreeMap<String, usize>,
    /// Listed files that could not be read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<Unreadable>,
}

impl Scan {
    /// The per-rule and per-file counts.
    pub fn totals(&self) -> Totals {
        let mut by_rule = BTreeMap::new();
        let mut by_file = BTreeMap::new();
        for v in &self.violations {
            *by_rule.entry(v.rule.clone()).or_insert(0) += 1;
            *by_file
                .entry(v.path.to_string_lossy().into_owned())
                .or_insert(0) += 1;
        }
        Totals {
            violations: self.violations.len(),
            files_scanned: self.files_scanned,
            by_rule,
            by_file,
            unreadable: self.unreadable.clone(),
        }
    }
}

impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.by_rule.is_empty() {
            writeln!(f, "by rule:")?;
            for (rule, n) in &self.by_rule {
                writeln!(f, "  {rule}: {n}")?;
            }
            writeln!(f, "by file:")?;
            for (path, n) in &self.by_file {
                writeln!(f, "  {path}: {n}")?;
            }
        }
        for u in &self.unreadable {
            writeln!(f, "cannot read {}: {}", u.path.display(), u.error)?;
        }
        writeln!(
            f,
            "gate: {} violation(s) in {} of {} file(s)",
            self.violations,
            self.by_file.len(),
            self.files_scanned
        )
    }
}

/// The hits one per line, then the totals: the human form of a scan.
impl fmt::Display for Scan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for v in &self.violations {
            writeln!(f, "{v}")?;
        }
        write!(f, "{}", self.totals())
    }
}

/// Scans `root` with `rules`. Inside a git repository it reads what git tracks (as `git grep`
/// does, `.gitignore` or not); elsewhere every file not ignored by a `.gitignore`. Files are read
/// as bytes (a line that is not UTF-8 is still matched); a symlink is matched by its target and
/// never followed. Hits are sorted by path and line.
pub fn scan(root: &Path, rules: &[Rule]) -> Result<Scan, GateError> {
    scan_with(root, rules, &GitSettings::default())
}

/// [`scan`] with the given way to ask git for the tracked files.
pub fn scan_with(root: &Path, rules: &[Rule], git: &GitSettings) -> Result<Scan, GateError> {
    if !root.is_dir() {
        return Err(GateError::Walk {
            path: root.into(),
            detail: "not a directory".into(),
        });
    }
    let (listing, files) = listing::list(root, git)?;
    let mut report = Scan {
        violations: Vec::new(),
        files_scanned: 0,
        unreadable: Vec::new(),
        listing,
    };
    for rel in files {
        let active: Vec<&Rule> = rules.iter().filter(|r| r.applies_to(&rel)).collect();
        if active.is_empty() {
            continue;
        }
        match read(&root.join(&rel)) {
            Ok(None) => {}
            Ok(Some(Content::File(bytes))) => {
                report.files_scanned += 1;
                scan_lines(&rel, &bytes, &active, &mut report.violations);
            }
            Ok(Some(Content::Symlink(target))) => {
                report.files_scanned += 1;
                scan_symlink(&rel, &target, &active, &mut report.violations);
            }
            Err(e) => report.unreadable.push(Unreadable {
                path: rel,
                error: e.to_string(),
            }),
        }
    }
    report
        .violations
        .sort_by(|a, b| (&a.path, a.line, &a.rule).cmp(&(&b.path, b.line, &b.rule)));
    Ok(report)
}

/// A path as a string even when it is not UTF-8 (serde refuses such a path outright).
fn lossy_path<S: serde::Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

enum Content {
    File(Vec<u8>),
    Symlink(Vec<u8>),
}

/// The bytes of a file, or a symlink's target; `None` for what is neither (a submodule's
/// folder) or is gone (tracked, then deleted from the working tree).
fn read(path: &Path) -> std::io::Result<Option<Content>> {
    let meta = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        other => other?,
    };
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path)?;
        Ok(Some(Content::Symlink(
            target.as_os_str().as_bytes().to_vec(),
        )))
    } else if meta.is_file() {
        Ok(Some(Content::File(std::fs::read(path)?)))
    } else {
        Ok(None)
    }
}

fn scan_lines(rel: &Path, bytes: &[u8], rules: &[&Rule], hits: &mut Vec<Violation>) {
    let rules: Vec<&Rule> = rules
        .iter()
        .copied()
        .filter(|r| r.may_match(bytes))
        .collect();
    if rules.is_empty() {
        return;
    }
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        for rule in &rules {
            if let Some(m) = rule.find(line) {
                hits.push(violation(rule, rel, i + 1, &m, snippet(line, &m)));
            }
        }
    }
}

fn scan_symlink(rel: &Path, target: &[u8], rules: &[&Rule], hits: &mut Vec<Violation>) {
    for rule in rules {
        if let Some(m) = rule.find(target) {
            let text = format!("symlink -> {}", snippet(target, &m));
            hits.push(violation(rule, rel, 1, &m, text));
        }
    }
}

fn violation(rule: &Rule, rel: &Path, line: usize, m: &Range<usize>, text: String) -> Violation {
    Violation {
        rule: rule.spec().name.clone(),
        path: rel.to_path_buf(),
        line,
        column: m.start + 1,
        text,
        why: rule.spec().why.clone(),
    }
}

/// The line trimmed, or when longer than [`MAX_TEXT_BYTES`] a window of it around the match
/// with `…` where it was cut.
fn snippet(line: &[u8], m: &Range<usize>) -> String {
    let trimmed = line.trim_ascii();
    if trimmed.len() <= MAX_TEXT_BYTES {
        return printable(trimmed).trim().to_string();
    }
    let first = line.len() - line.trim_ascii_start().len();
    let last = first + trimmed.len();
    let mut start = m.start.saturating_sub(CONTEXT_BEFORE).max(first);
    let mut end = (start + MAX_TEXT_BYTES).min(last);
    start = end.saturating_sub(MAX_TEXT_BYTES).max(first);
    // Cut on character boundaries where the line is UTF-8 (a continuation byte is 0b10xx_xxxx).
    while start < end && start > first && line[start] & 0xC0 == 0x80 {
        start += 1;
    }
    while end > start && end < last && line[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    let mut text = String::new();
    if start > first {
        text.push('…');
    }
    text.push_str(&printable(&line[start..end]));
    if end < last {
        text.push('…');
    }
    text
}

/// Lossy UTF-8, with control characters (but tab) replaced so a hit cannot drive the terminal.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .collect()
}
