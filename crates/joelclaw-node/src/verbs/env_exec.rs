//! `env-exec --env-file=F … -- PROGRAM …` (hidden): the wrapper a launchd definition runs a service with env files through
//! (launchd has no `EnvironmentFile=`). It reads the files at each start, the way systemd does
//! (`process_manager::env_file`), sets their values over its own environment, and becomes the
//! program. The values never appear in the plist, its arguments, or any message.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use clap::Args;

use crate::output::{Failure, Report};

const CMD: &str = "env-exec";

/// `env-exec --env-file F … -- PROGRAM [ARGS…]`.
#[derive(Debug, Args)]
pub struct EnvExecArgs {
    /// An env file (systemd's syntax; a leading `-` lets it be missing). Later files win.
    #[arg(
        long = "env-file",
        value_name = "FILE",
        required = true,
        allow_hyphen_values = true
    )]
    pub env_files: Vec<PathBuf>,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    pub command: Vec<String>,
}

/// Becomes the program; returns only when the files cannot be read or it cannot be run.
pub fn exec(args: EnvExecArgs) -> Result<Report, Failure> {
    let values =
        process_manager::env_file::load(&args.env_files).map_err(|e| Failure::failed(CMD, e))?;
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| Failure::input(CMD, "no program after --"))?;
    let e = std::process::Command::new(program)
        .args(rest)
        .envs(values)
        .exec();
    Err(Failure::failed(CMD, format!("cannot run {program}: {e}")))
}
