//! Output for people and for agents: a human text by default, `--json` for one stable
//! envelope, the machine contract of the joelclaw CLI and gateway:
//! `{schema_version, ok, command, result, error, next_actions}` — `result` is null on error,
//! `error` (`{kind, message}`, `kind` a stable code) is null otherwise, and each next action is a
//! runnable argv with every flag it needs. Its JSON Schema is generated from [`Envelope`]
//! (`joelclaw-node schema`) and published as `schemas/envelope.schema.json`.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// The contract's version: bumped when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

/// Exit codes: 0 ok, 1 unhealthy or violations found, 2 bad usage or bad input.
pub mod exit {
    /// All good.
    pub const OK: u8 = 0;
    /// Something is unhealthy, or a check found violations.
    pub const FINDINGS: u8 = 1;
    /// Bad usage or bad input (missing file, bad TOML, unknown label, bad flag).
    pub const USAGE: u8 = 2;
}

/// What every `--json` output is.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Envelope {
    /// The contract's version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// `true` when nothing is wrong (exit 0).
    pub ok: bool,
    /// The verb (`status`, `apply`...), or `joelclaw-node` when none could be read.
    pub command: String,
    /// The verb's result; null when the command could not run.
    pub result: Value,
    /// Why the command could not run; null when it ran (findings are a result, not an error).
    pub error: Option<ErrorBody>,
    /// Commands worth running next, each a complete argv.
    pub next_actions: Vec<NextAction>,
}

/// A command that could not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// A stable code a caller can branch on.
    pub kind: ErrorCode,
    /// What was wrong, naming the file, line, key or label.
    pub message: String,
}

/// The stable error codes of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The command line itself is wrong (unknown flag, missing argument).
    Usage,
    /// An input is wrong: a missing file, a bad inventory, an unknown label, a bad value.
    InvalidInput,
    /// The command could not do its work (a manager refused, a call failed).
    Failed,
    /// What was asked for does not exist (an unknown service label, an unknown route).
    NotFound,
    /// Asked of something that cannot do it, or not built yet.
    NotSupported,
}

/// A command worth running next: a complete argv (program first) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct NextAction {
    /// The argv, with every flag it needs (state folder, root).
    pub argv: Vec<String>,
    /// What it does.
    pub description: String,
}

impl NextAction {
    /// `joelclaw-node ARGS…`, described.
    pub fn node(
        args: impl IntoIterator<Item = impl Into<String>>,
        description: impl Into<String>,
    ) -> Self {
        let mut argv = vec!["joelclaw-node".to_string()];
        argv.extend(args.into_iter().map(Into::into));
        NextAction {
            argv,
            description: description.into(),
        }
    }
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
    /// Commands worth running next.
    pub next_actions: Vec<NextAction>,
    /// The exit code.
    pub code: u8,
    /// Stdout already carried the command's output (`run`'s event stream): nothing more is
    /// printed, so a reader of that stream never finds an envelope mixed into it.
    pub stdout_taken: bool,
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
            stdout_taken: false,
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

    /// Adds next actions.
    pub fn with_next(mut self, next: impl IntoIterator<Item = NextAction>) -> Self {
        self.next_actions.extend(next);
        self
    }

    /// The report as the contract's envelope.
    pub fn envelope(&self) -> Envelope {
        Envelope {
            schema_version: SCHEMA_VERSION,
            ok: self.ok,
            command: self.command.to_string(),
            result: self.result.clone(),
            error: None,
            next_actions: self.next_actions.clone(),
        }
    }

    /// Prints the report.
    pub fn print(&self, as_json: bool) {
        if self.stdout_taken {
            return;
        }
        if as_json {
            print_json(&self.envelope());
        } else {
            print!("{}", process_manager::redact::redact_text(&self.human));
            if !self.human.ends_with('\n') && !self.human.is_empty() {
                println!();
            }
        }
    }
}

fn print_json(envelope: &Envelope) {
    // Redacted as a document, not as text, so it stays valid JSON whatever it holds.
    let text = serde_json::to_value(envelope)
        .and_then(|mut doc| {
            process_manager::redact::redact_json(&mut doc);
            serde_json::to_string(&doc)
        })
        .unwrap_or_else(|e| format!(
            "{{\"schema_version\":{SCHEMA_VERSION},\"ok\":false,\"command\":\"joelclaw-node\",\"result\":null,\"error\":{{\"kind\":\"failed\",\"message\":\"cannot encode the output: {e}\"}},\"next_actions\":[]}}"
        ));
    println!("{text}");
}

/// A command that could not run: bad input (exit 2) or a failure to act (exit 1).
#[derive(Debug)]
pub struct Failure {
    /// The verb.
    pub command: &'static str,
    /// Its stable code.
    pub kind: ErrorCode,
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
            kind: ErrorCode::InvalidInput,
            message: message.to_string(),
            code: exit::USAGE,
        }
    }

    /// The command could not do its work: exit 1.
    pub fn failed(command: &'static str, message: impl std::fmt::Display) -> Self {
        Failure {
            command,
            kind: ErrorCode::Failed,
            message: message.to_string(),
            code: exit::FINDINGS,
        }
    }

    /// What was asked for does not exist: exit 2 (bad input, named).
    pub fn not_found(command: &'static str, message: impl std::fmt::Display) -> Self {
        Failure {
            kind: ErrorCode::NotFound,
            ..Failure::input(command, message)
        }
    }

    /// A bad command line: exit 2.
    pub fn usage(command: &'static str, message: impl std::fmt::Display) -> Self {
        Failure {
            kind: ErrorCode::Usage,
            ..Failure::input(command, message)
        }
    }

    /// The failure as the contract's envelope.
    pub fn envelope(&self) -> Envelope {
        Envelope {
            schema_version: SCHEMA_VERSION,
            ok: false,
            command: self.command.to_string(),
            result: Value::Null,
            error: Some(ErrorBody {
                kind: self.kind,
                message: self.message.clone(),
            }),
            next_actions: Vec::new(),
        }
    }

    /// Prints the failure (stderr for people; the envelope on stdout for agents).
    pub fn print(&self, as_json: bool) {
        if as_json {
            print_json(&self.envelope());
        } else {
            let message = process_manager::redact::redact_text(&self.message);
            eprintln!("joelclaw-node {}: {message}", self.command);
        }
    }
}

/// The documents of the contract with a published JSON Schema (`schemas/NAME.schema.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Document {
    /// Every `--json` output and API answer: [`Envelope`].
    Envelope,
    /// The node's live snapshot: `GET /v1/status`'s result, `status`'s `result.status`.
    Status,
    /// One kept event: `GET /v1/events`' `result.events[]` and each Server-Sent Event's data.
    Event,
    /// What a service verb did: `POST /v1/services/{label}/{verb}`'s result and the verbs'.
    VerbOutcome,
    /// `list`'s result.
    List,
    /// `inspect`'s result: the manager's answer about one service.
    Inspect,
    /// `identity`'s result.
    Identity,
    /// `logs`' result (without `-f`).
    Logs,
    /// `status --fleet`'s result.
    FleetStatus,
    /// `status --fleet --node ID`'s result.
    FleetNode,
    /// `events --fleet`'s result (without `--follow`).
    FleetEvents,
}

impl Document {
    /// Every document, as published.
    pub const ALL: [Document; 11] = [
        Document::Envelope,
        Document::Status,
        Document::Event,
        Document::VerbOutcome,
        Document::List,
        Document::Inspect,
        Document::Identity,
        Document::Logs,
        Document::FleetStatus,
        Document::FleetNode,
        Document::FleetEvents,
    ];

    /// Its name (`fleet-status`): `schema NAME` and the file's stem.
    pub fn name(self) -> &'static str {
        self.file_name()
            .strip_suffix(".schema.json")
            .unwrap_or_default()
    }

    /// Its file name in `schemas/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Document::Envelope => "envelope.schema.json",
            Document::Status => "status.schema.json",
            Document::Event => "event.schema.json",
            Document::VerbOutcome => "verb-outcome.schema.json",
            Document::List => "list.schema.json",
            Document::Inspect => "inspect.schema.json",
            Document::Identity => "identity.schema.json",
            Document::Logs => "logs.schema.json",
            Document::FleetStatus => "fleet-status.schema.json",
            Document::FleetNode => "fleet-node.schema.json",
            Document::FleetEvents => "fleet-events.schema.json",
        }
    }

    /// Its JSON Schema, generated from the Rust types, pretty-printed.
    pub fn schema(self) -> String {
        let schema = match self {
            Document::Envelope => schemars::schema_for!(Envelope),
            Document::Status => schemars::schema_for!(central_core::NodeStatus),
            Document::Event => schemars::schema_for!(crate::api::JournalEntry),
            Document::VerbOutcome => schemars::schema_for!(central_core::VerbOutcome),
            Document::List => schemars::schema_for!(crate::verbs::service::ListResult),
            Document::Inspect => schemars::schema_for!(process_manager::ServiceStatus),
            Document::Identity => schemars::schema_for!(node_identity::NodeIdentity),
            Document::Logs => schemars::schema_for!(crate::verbs::logs::LogsResult),
            Document::FleetStatus => schemars::schema_for!(crate::verbs::fleet::FleetStatusResult),
            Document::FleetNode => schemars::schema_for!(crate::verbs::fleet::FleetNodeResult),
            Document::FleetEvents => schemars::schema_for!(crate::verbs::fleet::FleetEventsResult),
        };
        serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
    }
}

/// Renders rows as an aligned text table (cells may carry colour: widths count what shows).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(visible_width(cell));
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            s.push_str(c);
            if i + 1 < cells.len() {
                let pad = widths[i].saturating_sub(visible_width(c)) + 2;
                s.extend(std::iter::repeat_n(' ', pad));
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

/// Characters that show: an ANSI colour sequence (`ESC [ … m`) counts for nothing.
fn visible_width(cell: &str) -> usize {
    let mut width = 0;
    let mut in_escape = false;
    for c in cell.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => width += 1,
        }
    }
    width
}

/// Whether stdout takes colour: a terminal, `NO_COLOR` unset (no-color.org), `TERM` not dumb.
pub fn colour_on_stdout() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdout())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// A health word in its colour when `on`: green healthy, yellow failing or unknown, red
/// unhealthy, dim when stopped or disabled by request.
pub fn paint(health: &str, on: bool) -> String {
    if !on {
        return health.to_string();
    }
    let code = match health {
        "healthy" => "32",
        "failing" | "unknown" => "33",
        "unhealthy" => "31",
        _ => "2",
    };
    format!("\x1b[{code}m{health}\x1b[0m")
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
