//! Output for people and for agents: a human text by default, `--json` for a stable envelope
//! `{ok, command, result, next_actions}` (errors: `{ok: false, command, error}`).

use serde::Serialize;
use serde_json::{json, Value};

/// Exit codes: 0 ok, 1 unhealthy or violations found, 2 bad usage or bad input.
pub mod exit {
    /// All good.
    pub const OK: u8 = 0;
    /// Something is unhealthy, or a check found violations.
    pub const FINDINGS: u8 = 1;
    /// Bad usage or bad input (missing file, bad TOML, unknown label, bad flag).
    pub const USAGE: u8 = 2;
}

/// A finished command: what to print and how to exit.
#[derive(Debug)]
pub struct Report {
    /// The verb.
    pub command: &'static str,
    /// `true` when nothing is wrong.
    pub ok: bool,
    /// The machine-readable result.
    pub result: Value,
    /// The human text.
    pub human: String,
    /// Hints for an agent: commands worth running next.
    pub next_actions: Vec<String>,
    /// The exit code.
    pub code: u8,
}

impl Report {
    /// A successful report.
    pub fn ok(command: &'static str, result: impl Serialize, human: String) -> Self {
        Report {
            command,
            ok: true,
            result: serde_json::to_value(result).unwrap_or(Value::Null),
            human,
            next_actions: Vec::new(),
            code: exit::OK,
        }
    }

    /// A report of findings (unhealthy, violations): exit 1.
    pub fn findings(command: &'static str, result: impl Serialize, human: String) -> Self {
        Report {
            ok: false,
            code: exit::FINDINGS,
            ..Report::ok(command, result, human)
        }
    }

    /// Adds next-action hints.
    pub fn with_next(mut self, next: impl IntoIterator<Item = String>) -> Self {
        self.next_actions.extend(next);
        self
    }

    /// Prints the report.
    pub fn print(&self, as_json: bool) {
        if as_json {
            let v = json!({
                "ok": self.ok,
                "command": self.command,
                "result": self.result,
                "next_actions": self.next_actions,
            });
            println!("{v}");
        } else {
            print!("{}", self.human);
            if !self.human.ends_with('\n') && !self.human.is_empty() {
                println!();
            }
        }
    }
}

/// A command that could not run: bad input (exit 2) or a failure to act (exit 1).
#[derive(Debug)]
pub struct Failure {
    /// The verb.
    pub command: &'static str,
    /// What was wrong, naming the file, line, key or label.
    pub message: String,
    /// The exit code.
    pub code: u8,
}

impl Failure {
    /// Bad input: exit 2.
    pub fn input(command: &'static str, message: impl std::fmt::Display) -> Self {
        Failure {
            command,
            message: message.to_string(),
            code: exit::USAGE,
        }
    }

    /// The command could not do its work: exit 1.
    pub fn failed(command: &'static str, message: impl std::fmt::Display) -> Self {
        Failure {
            command,
            message: message.to_string(),
            code: exit::FINDINGS,
        }
    }

    /// Prints the failure (stderr for people; the envelope on stdout for agents).
    pub fn print(&self, as_json: bool) {
        if as_json {
            let v = json!({
                "ok": false,
                "command": self.command,
                "error": self.message,
                "next_actions": [],
            });
            println!("{v}");
        } else {
            eprintln!("joelclaw-node {}: {}", self.command, self.message);
        }
    }
}

/// Renders rows as an aligned text table.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// An optional value as a table cell (`-` when absent).
pub fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or("-".into(), T::to_string)
}

/// A value's JSON name (an enum's serde spelling) as a table cell (`-` when it has none).
pub fn json_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "-".into())
}
