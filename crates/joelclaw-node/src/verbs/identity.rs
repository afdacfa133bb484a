//! `identity`: this node's identity, with where each value came from.

use node_identity::NodeIdentity;

use crate::output::{table, Failure, Report};

/// Detects the identity; a value that cannot be found or is malformed is bad input (exit 2).
pub fn exec() -> Result<Report, Failure> {
    let id = NodeIdentity::detect().map_err(|e| Failure::input("identity", e))?;
    let rows = vec![
        vec![
            "node_id".into(),
            id.node_id.value.clone(),
            id.node_id.source.to_string(),
        ],
        vec![
            "home_dir".into(),
            id.home_dir.value.display().to_string(),
            id.home_dir.source.to_string(),
        ],
        vec![
            "repo_root".into(),
            id.repo_root.value.display().to_string(),
            id.repo_root.source.to_string(),
        ],
        vec![
            "vault_path".into(),
            id.vault_path.value.display().to_string(),
            id.vault_path.source.to_string(),
        ],
        vec![
            "platform".into(),
            id.platform.value.to_string(),
            id.platform.source.to_string(),
        ],
        vec![
            "arch".into(),
            id.arch.value.clone(),
            id.arch.source.to_string(),
        ],
    ];
    Ok(Report::ok(
        "identity",
        &id,
        table(&["FIELD", "VALUE", "SOURCE"], &rows),
    ))
}
