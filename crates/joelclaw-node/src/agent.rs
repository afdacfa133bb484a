//! The verbs that run over an inventory: `run`, `status`, `inspect`, `apply`, `install-self`.

use std::path::Path;

use crate::audit::AuditScope;
use crate::cli::{ApplyArgs, InspectArgs, InstallSelfArgs, InventoryArgs, RunArgs};
use crate::output::{Failure, Report};

fn not_yet(command: &'static str) -> Failure {
    Failure::input(
        command,
        format!(
            "`{command}` is not supported yet: it lands with the heal loop (issue: the node agent)"
        ),
    )
}

/// `run`: the heal loop.
pub fn run(_args: RunArgs, _as_json: bool) -> Result<Report, Failure> {
    Err(not_yet("run"))
}

/// `status`: one probe round.
pub fn status(_args: InventoryArgs) -> Result<Report, Failure> {
    Err(not_yet("status"))
}

/// `inspect LABEL`.
pub fn inspect(_args: InspectArgs) -> Result<Report, Failure> {
    Err(not_yet("inspect"))
}

/// `apply`.
pub fn apply(_args: ApplyArgs) -> Result<Report, Failure> {
    Err(not_yet("apply"))
}

/// `install-self`.
pub fn install_self(_args: InstallSelfArgs) -> Result<Report, Failure> {
    Err(not_yet("install-self"))
}

/// Fills the audit scope from an inventory: critical labels, state folder, service user.
pub fn audit_scope_from_inventory(
    _inventory: &Path,
    _scope: &mut AuditScope,
) -> Result<(), Failure> {
    Err(not_yet("audit --inventory"))
}
