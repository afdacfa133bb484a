//! `logs LABEL [-f] [--lines N]`: a service's output, from wherever its manager keeps it (the
//! manager says where: [`process_manager::LogSource`]): the embedded supervisor's and launchd's
//! log files, a systemd unit's output files or its journal. `-f` follows until interrupted.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use central_core::inventory::ManagerKind;
use clap::Args;
use process_manager::{LogSource, ServiceConfig};
use serde::Serialize;

use crate::compose::{compose, Mode};
use crate::output::{ErrorCode, Failure, NextAction, Report};
use crate::setup::{load, runtime, state_dir};

/// `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The service label.
    pub label: String,
    /// The inventory that names the service.
    #[arg(long, short = 'i', value_name = "FILE")]
    pub inventory: PathBuf,
    /// How many of the last lines.
    #[arg(long, short = 'n', default_value_t = 50)]
    pub lines: usize,
    /// Keep printing new lines until interrupted (a container's: until it stops).
    #[arg(long, short = 'f')]
    pub follow: bool,
}

/// How long reading the journal (or `tail`) may take, not following.
const COMMAND_DEADLINE: Duration = Duration::from_secs(15);
/// How often a followed file is looked at.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);
/// The most read back from the end of a log file for its last lines.
const TAIL_WINDOW: u64 = 4 << 20;

/// `logs`' result (without `-f`).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LogsResult {
    /// The service label.
    pub label: String,
    /// Each of its logs (a service writing stdout and stderr to two files has two).
    pub logs: Vec<LogTail>,
}

/// One log's last lines.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LogTail {
    /// The file, or the program that printed it.
    pub source: String,
    /// Its last lines, oldest first.
    pub lines: Vec<String>,
}

/// Prints a service's last lines (and follows them with `-f`).
pub fn exec(args: LogsArgs, state_flag: Option<PathBuf>, as_json: bool) -> Result<Report, Failure> {
    const CMD: &str = "logs";
    let inventory = load(CMD, &args.inventory)?;
    let spec = inventory.service(&args.label).ok_or_else(|| {
        Failure::not_found(
            CMD,
            format!(
                "unknown label {:?}: not in {}",
                args.label,
                args.inventory.display()
            ),
        )
    })?;
    let state = state_dir(CMD, state_flag, &inventory)?;
    let comp = compose(&inventory, &state, Mode::Observe).map_err(|e| Failure::input(CMD, e))?;
    if spec.manager == ManagerKind::Container {
        return container_log(CMD, &args, as_json, spec, comp.runtime.as_ref());
    }
    let manager = comp
        .manager_of(&inventory, &args.label)
        .ok_or_else(|| Failure::input(CMD, format!("no manager for {}", args.label)))?;
    let config = inventory
        .desired_configs()
        .find(|(s, _)| s.label == spec.label)
        .map(|(_, c)| c.clone())
        .unwrap_or_else(|| ServiceConfig::new(spec.label.clone(), ""));
    let source = manager.log_source(&config).ok_or_else(|| Failure {
        kind: ErrorCode::NotSupported,
        ..Failure::input(
            CMD,
            format!(
                "{}: its manager ({}) keeps no log this agent can read: give it stdout_path/stderr_path",
                args.label,
                spec.manager.as_str()
            ),
        )
    })?;
    match source {
        LogSource::Files(files) => files_log(CMD, &args, &state, &files, as_json),
        LogSource::Command {
            argv,
            lines_flag,
            follow_flag,
        } => command_log(CMD, &args, argv, [lines_flag, follow_flag], as_json),
    }
}

fn files_log(
    cmd: &'static str,
    args: &LogsArgs,
    state: &Path,
    files: &[PathBuf],
    as_json: bool,
) -> Result<Report, Failure> {
    let mut tails = Vec::new();
    // How far each file was read: following goes on from exactly there.
    let mut read_to = Vec::new();
    for f in files {
        let (lines, end) = match last_lines(f, args.lines) {
            Ok(read) => read,
            // Nothing written yet is an empty log, not an error.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), 0),
            Err(e) => return Err(Failure::failed(cmd, format!("{}: {e}", f.display()))),
        };
        read_to.push(end);
        tails.push(LogTail {
            source: f.display().to_string(),
            lines,
        });
    }
    if args.follow {
        // What is there first, then what comes; until interrupted.
        for t in &tails {
            print_lines(&t.source, &t.lines, as_json);
        }
        follow_files(files, read_to, as_json);
    }
    let mut human = String::new();
    for t in &tails {
        human.push_str(&format!("==> {} <==\n", t.source));
        for l in &t.lines {
            human.push_str(l);
            human.push('\n');
        }
    }
    let result = LogsResult {
        label: args.label.clone(),
        logs: tails,
    };
    Ok(Report::ok(cmd, result, human).with_next([NextAction::node(
        [
            "logs",
            &args.label,
            "-i",
            &args.inventory.display().to_string(),
            "--lines",
            &args.lines.to_string(),
            "--state-dir",
            &state.display().to_string(),
            "-f",
        ],
        "follow it",
    )]))
}

/// The last `n` whole lines of `path` (read from at most its last [`TAIL_WINDOW`] bytes), and
/// the offset just past them.
fn last_lines(path: &Path, n: usize) -> std::io::Result<(Vec<String>, u64)> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let from = len.saturating_sub(TAIL_WINDOW);
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    let text = String::from_utf8_lossy(&bytes[..whole]);
    let all: Vec<&str> = text.lines().collect();
    let lines = all[all.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect();
    Ok((lines, from + whole as u64))
}

fn print_lines(source: &str, lines: &[String], as_json: bool) {
    let mut out = std::io::stdout().lock();
    for l in lines {
        // As every other output: a secret a service logs is not shown again here.
        let l = process_manager::redact::redact_text(l);
        let _ = if as_json {
            writeln!(
                out,
                "{}",
                serde_json::json!({ "source": source, "line": l })
            )
        } else {
            writeln!(out, "{l}")
        };
    }
    let _ = out.flush();
}

/// Prints what is appended to `files` until the process is interrupted (a file replaced by a
/// shorter one, as after rotation, is read again from its start).
fn follow_files(files: &[PathBuf], mut at: Vec<u64>, as_json: bool) -> ! {
    loop {
        std::thread::sleep(FOLLOW_EVERY);
        for (i, f) in files.iter().enumerate() {
            let Ok(mut file) = std::fs::File::open(f) else {
                continue;
            };
            let len = file.metadata().map_or(0, |m| m.len());
            if len < at[i] {
                at[i] = 0;
            }
            if len == at[i] || file.seek(SeekFrom::Start(at[i])).is_err() {
                continue;
            }
            let mut bytes = Vec::new();
            if file.read_to_end(&mut bytes).is_ok() {
                // Only whole lines; a partial one waits for its end.
                let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
                let text = String::from_utf8_lossy(&bytes[..whole]);
                let lines: Vec<String> = text.lines().map(str::to_string).collect();
                print_lines(&f.display().to_string(), &lines, as_json);
                at[i] += whole as u64;
            }
        }
    }
}

fn command_log(
    cmd: &'static str,
    args: &LogsArgs,
    argv: Vec<std::ffi::OsString>,
    [lines_flag, follow_flag]: [&str; 2],
    as_json: bool,
) -> Result<Report, Failure> {
    let (program, rest) = argv
        .split_first()
        .ok_or_else(|| Failure::failed(cmd, "the manager gave no log program"))?;
    let program = sysutil::program::find(program, None).map_err(|e| Failure::failed(cmd, e))?;
    let mut rest = rest.to_vec();
    rest.push(lines_flag.into());
    rest.push(args.lines.to_string().into());
    let shown = format!(
        "{} {}",
        program.display(),
        rest.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    if args.follow {
        // The program's own follow, line by line, until interrupted.
        rest.push(follow_flag.into());
        let mut child = std::process::Command::new(&program)
            .args(&rest)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| Failure::failed(cmd, format!("{shown}: {e}")))?;
        if let Some(stdout) = child.stdout.take() {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                print_lines(&shown, &[line], as_json);
            }
        }
        let status = child.wait().map_err(|e| Failure::failed(cmd, e))?;
        std::process::exit(status.code().unwrap_or(1));
    }
    let rt = runtime(cmd)?;
    let out = rt
        .block_on(
            sysutil::command::Command::new(&program, COMMAND_DEADLINE)
                .args(&rest)
                .run(),
        )
        .map_err(|e| Failure::failed(cmd, format!("{shown}: {e}")))?;
    if !out.success() {
        return Err(Failure::failed(
            cmd,
            format!("{shown}: exited {:?}: {}", out.code(), out.stderr.trim()),
        ));
    }
    let lines: Vec<String> = out.stdout.lines().map(str::to_string).collect();
    let tail = LogTail {
        source: shown,
        lines,
    };
    let human = tail.lines.join("\n");
    let result = LogsResult {
        label: args.label.clone(),
        logs: vec![tail],
    };
    Ok(Report::ok(cmd, result, human))
}

/// A container's last lines, from its engine (`-f`: then what it writes next).
fn container_log(
    cmd: &'static str,
    args: &LogsArgs,
    as_json: bool,
    spec: &central_core::ServiceSpec,
    engine: Option<&container_runtime::SharedContainerRuntime>,
) -> Result<Report, Failure> {
    let engine =
        engine.ok_or_else(|| Failure::input(cmd, "the inventory has no container runtime"))?;
    let what = spec
        .container_ref()
        .unwrap_or_else(|| container_runtime::ContainerRef::Named(spec.label.to_string()));
    let rt = runtime(cmd)?;
    if args.follow {
        // The engine's own follow (`docker logs -f`), line by line, until the container stops
        // or the command is interrupted.
        let mut printed = false;
        let source = format!("container {}", args.label);
        let followed = rt.block_on(async {
            let c = engine.inspect_ref(&what).await?;
            engine
                .follow_container_logs(&c.name, args.lines, &mut |line| {
                    printed = true;
                    print_lines(&source, &[line], as_json);
                })
                .await
        });
        match followed {
            Ok(()) => {
                eprintln!(
                    "logs: {}: the container's output ended (it stopped)",
                    args.label
                );
                std::process::exit(0);
            }
            Err(e) if !printed => return Err(Failure::failed(cmd, e)),
            Err(e) => {
                eprintln!("logs: {}: {e}", args.label);
                std::process::exit(1);
            }
        }
    }
    let (name, lines) = rt
        .block_on(async {
            let c = engine.inspect_ref(&what).await?;
            let lines = engine.container_logs(&c.name, args.lines).await?;
            Ok::<_, container_runtime::RuntimeError>((c.name, lines))
        })
        .map_err(|e| Failure::failed(cmd, e))?;
    let tail = LogTail {
        source: format!("container {name}"),
        lines,
    };
    let human = tail.lines.join("\n");
    let result = LogsResult {
        label: args.label.clone(),
        logs: vec![tail],
    };
    Ok(Report::ok(cmd, result, human))
}
