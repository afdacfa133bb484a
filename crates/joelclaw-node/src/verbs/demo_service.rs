//! `demo-service` (hidden): the demo inventory's tiny HTTP service, from [`crate::demo`].

use clap::Args;

use crate::demo::{serve, Failure as DemoFailure};
use crate::output::{Failure, Report};

/// `demo-service`.
#[derive(Debug, Args)]
pub struct DemoServiceArgs {
    /// Port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Exit with status 1 after this long (e.g. `12s`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub crash_after: Option<std::time::Duration>,
    /// Stop answering after this long (e.g. `12s`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub hang_after: Option<std::time::Duration>,
}

/// Serves until it fails as told; returns only when it cannot serve at all.
pub fn exec(args: DemoServiceArgs) -> Result<Report, Failure> {
    let failure = match (args.crash_after, args.hang_after) {
        (Some(d), _) => DemoFailure::CrashAfter(d),
        (None, Some(d)) => DemoFailure::HangAfter(d),
        (None, None) => DemoFailure::None,
    };
    let e = serve(args.port, failure);
    Err(Failure::failed(
        "demo-service",
        format!("port {}: {e}", args.port),
    ))
}
