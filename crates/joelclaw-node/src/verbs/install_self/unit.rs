//! The agent's own systemd unit beyond what the service adapter renders (its ordering, its
//! sandbox's exceptions) and the polkit rule of a non-root agent.

use std::path::Path;

use central_core::inventory::{ManagerKind, ProbeCheck, SubstrateKind};
use central_core::Inventory;
use process_manager::{Relax, ServiceConfig};

/// Where a non-root agent's polkit rule goes.
pub const POLKIT_RULE_PATH: &str = "/etc/polkit-1/rules.d/50-joelclaw-node.rules";

/// The sandbox: every protection services get, except three the agent's job needs.
/// - `proc`: its process probes read other services' entries in `/proc`.
/// - `home`: written back as `ProtectHome=read-only` ([`dropin`]), so a program or file the
///   inventory names under a home can still be checked, never changed.
/// - `write-paths` stays strict: a root agent writes only the definition folder (repairs),
///   its state and its logs; a non-root agent only its state and logs.
///
/// It keeps no capability at all and a private user namespace: systemd accepts unit
/// management from uid 0 over its private socket and the bus without `CAP_SYS_ADMIN`, and the
/// files the agent writes are root's own.
pub(super) fn sandbox(config: &mut ServiceConfig, as_root: bool, definition_dir: &Path) {
    config.hardening.relax.extend([Relax::Proc, Relax::Home]);
    if as_root {
        config.write_paths = vec![definition_dir.to_path_buf()];
    }
}

/// What the agent's unit starts after: the network (its probes and the container engine's
/// socket), and the local container engine when the inventory uses one.
pub(super) fn ordering(inventory: &Inventory) -> Vec<&'static str> {
    let mut after = vec!["network-online.target"];
    let needs_engine = inventory.substrate.is_some()
        || inventory.services.iter().any(|s| {
            s.manager == ManagerKind::Container
                || s.probes
                    .iter()
                    .any(|p| matches!(p.check, ProbeCheck::Container { .. }))
        });
    let sub = inventory.substrate.as_ref();
    let kind = sub.and_then(|s| s.kind).unwrap_or(SubstrateKind::Docker);
    let local = sub
        .and_then(|s| s.endpoint.as_deref())
        .is_none_or(|e| e.starts_with("unix://"));
    if needs_engine && kind == SubstrateKind::Docker && local {
        after.push("docker.service");
    }
    after
}

/// The drop-in's file name, beside the unit (`joelclaw-node.service.d/`).
pub(super) const DROPIN_NAME: &str = "10-node-agent.conf";

/// The agent's drop-in: its ordering (`Wants=` only the network: the engine is the
/// inventory's to heal, not the agent's to pull in) and homes read-only rather than hidden.
pub(super) fn dropin(after: &[&str]) -> String {
    format!(
        "# Written by joelclaw-node install-self: the node agent's ordering and home access.\n\
         [Unit]\n\
         After={}\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         ProtectHome=read-only\n",
        after.join(" ")
    )
}

/// A polkit rule (JavaScript, `/etc/polkit-1/rules.d/`) that lets `user` start, stop and
/// restart exactly `units`, and nothing else.
pub fn polkit_rule(user: &str, units: &[String]) -> String {
    // Names are JSON strings: the same quoting JavaScript reads.
    let quoted: Vec<String> = units
        .iter()
        .map(|u| serde_json::Value::String(u.clone()).to_string())
        .collect();
    let user = serde_json::Value::String(user.to_string()).to_string();
    format!(
        "// Written by `joelclaw-node install-self --user`: the node agent, running as {user},\n\
         // may start, stop and restart exactly its inventory's units.\n\
         polkit.addRule(function(action, subject) {{\n    \
             if (action.id == \"org.freedesktop.systemd1.manage-units\" && subject.user == {user}) {{\n        \
                 var units = [{}];\n        \
                 if (units.indexOf(action.lookup(\"unit\")) >= 0) {{\n            \
                     return polkit.Result.YES;\n        \
                 }}\n    \
             }}\n\
         }});\n",
        quoted.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_names_the_user_and_exactly_the_units() {
        let rule = polkit_rule("agent", &["a.service".into(), "b\"c.service".into()]);
        assert!(rule.contains(r#"subject.user == "agent""#), "{rule}");
        assert!(
            rule.contains(r#"var units = ["a.service", "b\"c.service"];"#),
            "{rule}"
        );
        assert!(
            rule.contains("org.freedesktop.systemd1.manage-units"),
            "{rule}"
        );
    }

    #[test]
    fn the_dropin_orders_after_the_network_and_the_engine() {
        let text = dropin(&["network-online.target", "docker.service"]);
        assert_eq!(
            text,
            "# Written by joelclaw-node install-self: the node agent's ordering and home access.\n[Unit]\nAfter=network-online.target docker.service\nWants=network-online.target\n\n[Service]\nProtectHome=read-only\n"
        );
    }
}
