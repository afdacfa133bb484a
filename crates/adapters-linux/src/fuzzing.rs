//! Crate-private parsers for the fuzz targets in `fuzz/` (feature `fuzzing`); not API.

use std::collections::BTreeMap;

use process_manager::{ServiceLabel, ServiceScope, ServiceStatus};

use crate::systemd::show;

/// `systemctl show` output split into one property map per unit.
pub fn parse_show_blocks(text: &str) -> Vec<BTreeMap<String, String>> {
    show::parse_show_blocks(text)
}

/// What the adapter makes of one `show` block.
#[derive(Debug, Clone, PartialEq)]
pub struct ShownUnit {
    /// `Id=`.
    pub id: String,
    /// The status the adapter reports (under the label `fuzz`, system scope).
    pub status: ServiceStatus,
    /// Whether the adapter reads the block as "no such unit".
    pub not_found: bool,
    /// Whether `enable` would still have to switch it on.
    pub needs_enabling: bool,
}

/// Reads one `show` block as the adapter does, or its parse error.
pub fn read_show_block(block: &BTreeMap<String, String>) -> Result<ShownUnit, String> {
    let unit = show::UnitState::from_block(block).map_err(|e| e.to_string())?;
    let label = ServiceLabel::new("fuzz").expect("a valid label");
    Ok(ShownUnit {
        id: unit.id.clone(),
        status: unit.to_status(label, ServiceScope::System),
        not_found: unit.is_not_found(),
        needs_enabling: unit.needs_enabling(),
    })
}

/// `list-units --output=json`: the unit names, or the parse error.
pub fn parse_list_units(text: &str) -> Result<Vec<String>, String> {
    show::parse_list_units(text)
        .map(|units| units.into_iter().map(|u| u.unit).collect())
        .map_err(|e| e.to_string())
}

/// The unit file the adapter writes for `config` (no default account), for the unit reader's
/// written-then-read property; the error when the adapter refuses the config.
pub fn render_unit(config: &process_manager::ServiceConfig) -> Result<String, String> {
    use crate::systemd::unit::{render_unit, ManagerKind};
    let kind = match config.scope {
        ServiceScope::System => ManagerKind::System,
        _ => ManagerKind::User,
    };
    render_unit(config, kind, None).map_err(|e| e.to_string())
}
