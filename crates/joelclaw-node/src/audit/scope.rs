//! What an audit checks, and how an inventory fills it in.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use central_core::inventory::{Inventory, ManagerKind, ServiceClass, SubstrateKind};
use process_manager::ServiceScope;

use super::accounts;

/// What `audit` looks at.
#[derive(Debug, Clone, Default)]
pub struct AuditScope {
    /// The filesystem root the definitions live under (`/`, or a scratch root).
    pub root: PathBuf,
    /// Labels of the critical services; `None` (no inventory) holds every definition found to
    /// the whole policy.
    pub critical: Option<BTreeSet<String>>,
    /// What marks a definition as a service of this system; `None`: every definition is one.
    pub ours: Option<SystemMarks>,
    /// State folders that must be private.
    pub state_dirs: Vec<PathBuf>,
    /// The configured service account: launchd's, else the first manager's that names one.
    pub service_user: Option<String>,
    /// The systemd manager's service account, when it differs from `service_user`.
    pub unit_service_user: Option<String>,
    /// Accounts that run relays in their own domains.
    pub relay_accounts: Vec<String>,
    /// Critical services that must have a definition installed in the system domain.
    pub required: Vec<Required>,
    /// The services' folders (their working folders), owned by the service account.
    pub services_dirs: Vec<PathBuf>,
    /// The managers' own definition folders (absolute; `true` for systemd units).
    pub definition_dirs: Vec<(PathBuf, bool)>,
    /// The inventory and its substrate's Docker endpoint, when it names one.
    pub substrate_endpoint: Option<(PathBuf, String)>,
    /// The services' env files, each with the account allowed to own it besides root.
    pub env_files: Vec<EnvFile>,
}

/// A service's env file, which holds its settings and secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFile {
    /// Its path (absolute, the `-` of an optional one dropped).
    pub path: PathBuf,
    /// Whether it may be missing (written with a leading `-`).
    pub optional: bool,
    /// The account the service runs as (its config's user, else its manager's service
    /// account): the one owner besides root.
    pub account: Option<String>,
    /// The service it belongs to.
    pub label: String,
}

/// What marks a definition as a service of this system.
#[derive(Debug, Clone, Default)]
pub struct SystemMarks {
    /// Every label in the inventory.
    pub labels: BTreeSet<String>,
    /// The common prefix of the inventory's reverse-DNS labels (`com.joelclaw.`).
    pub label_prefix: Option<String>,
    /// The system's name (the prefix's last part, else the service account): a label
    /// `<name>-...` or a program under a `/<name>/` folder is ours.
    pub name: Option<String>,
    /// The services' program and working folders.
    pub paths: Vec<String>,
    /// The substrate is Colima, so a Colima definition is ours.
    pub colima: bool,
}

/// A critical service whose definition must be installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Required {
    /// Its label.
    pub label: String,
    /// Whether it is a systemd unit (else a launchd plist).
    pub unit: bool,
    /// The account whose own domain it runs in (a relay's per-user service); `None`: the
    /// system domain.
    pub domain_of: Option<String>,
}

/// Folders every program lives near; a service's program there says nothing about whose it is.
const SHARED_FOLDERS: &[&str] = &[
    "/",
    "/bin",
    "/sbin",
    "/usr",
    "/usr/bin",
    "/usr/sbin",
    "/usr/libexec",
    "/usr/local",
    "/usr/local/bin",
    "/usr/local/sbin",
    "/opt",
    "/opt/homebrew",
    "/opt/homebrew/bin",
    "/opt/homebrew/sbin",
];

/// The longest run of leading dotted parts all reverse-DNS labels share (at least two parts),
/// with its trailing dot.
fn common_label_prefix<'a>(labels: impl Iterator<Item = &'a str>) -> Option<String> {
    let dotted: Vec<Vec<&str>> = labels
        .filter(|l| l.contains('.'))
        .map(|l| l.split('.').collect())
        .collect();
    let first = dotted.first()?;
    let mut n = first.len() - 1;
    for parts in &dotted[1..] {
        n = n.min(parts.len() - 1);
        n = (0..n).find(|&i| parts[i] != first[i]).unwrap_or(n);
    }
    (n >= 2).then(|| format!("{}.", first[..n].join(".")))
}

impl AuditScope {
    /// The scope an inventory gives: its critical services, its service account (the first
    /// manager that names one), its relay accounts (the users of per-user domains), the state
    /// folder, and what marks a definition as one of its services.
    pub fn from_inventory(root: &Path, inventory: &Inventory) -> AuditScope {
        let critical: BTreeSet<String> = inventory
            .services
            .iter()
            .filter(|s| s.class != ServiceClass::AppLevel)
            .map(|s| s.label.to_string())
            .collect();
        let required = inventory
            .services
            .iter()
            .filter(|s| critical.contains(s.label.as_str()))
            .filter(|s| matches!(s.manager, ManagerKind::Launchd | ManagerKind::Systemd))
            .map(|s| Required {
                label: s.label.to_string(),
                unit: s.manager == ManagerKind::Systemd,
                domain_of: s.config.as_ref().and_then(|c| match c.scope {
                    ServiceScope::User { uid } | ServiceScope::Gui { uid } => {
                        accounts::name_of(root, uid)
                    }
                    ServiceScope::System => None,
                }),
            })
            .collect();
        let mut relay_uids: Vec<u32> = inventory.managers.values().filter_map(|m| m.uid).collect();
        relay_uids.extend(
            inventory
                .desired_configs()
                .filter_map(|(_, c)| match c.scope {
                    ServiceScope::User { uid } | ServiceScope::Gui { uid } => Some(uid),
                    ServiceScope::System => None,
                }),
        );
        let mut relay_accounts: Vec<String> = relay_uids
            .into_iter()
            .filter_map(|uid| accounts::name_of(root, uid))
            .collect();
        relay_accounts.sort();
        relay_accounts.dedup();
        let mut paths = BTreeSet::new();
        let mut services_dirs = BTreeSet::new();
        for (spec, config) in inventory.desired_configs() {
            paths.extend(config.program.parent().map(Path::to_path_buf));
            if let Some(dir) = &config.working_dir {
                paths.insert(dir.clone());
                if critical.contains(spec.label.as_str()) {
                    services_dirs.insert(dir.clone());
                }
            }
        }
        let paths = paths
            .into_iter()
            .map(|p| p.display().to_string())
            .filter(|p| !SHARED_FOLDERS.contains(&p.trim_end_matches('/')))
            .collect();
        let label_prefix = common_label_prefix(inventory.services.iter().map(|s| s.label.as_str()));
        let account_of = |manager: &str| {
            inventory
                .managers
                .get(manager)
                .and_then(|m| m.service_account.clone())
        };
        let service_user = account_of("launchd").or_else(|| {
            inventory
                .managers
                .values()
                .find_map(|m| m.service_account.clone())
        });
        let unit_service_user = account_of("systemd").filter(|u| Some(u) != service_user.as_ref());
        // Without reverse-DNS labels (systemd units), the service account is named after the
        // system.
        let name = label_prefix
            .as_deref()
            .and_then(|p| p.trim_end_matches('.').rsplit('.').next())
            .map(str::to_string)
            .or_else(|| service_user.clone());
        let definition_dirs = inventory
            .managers
            .iter()
            .filter_map(|(manager, m)| {
                let dir = m.definition_dir.clone()?;
                Some((dir, manager == "systemd"))
            })
            .collect();
        let substrate_endpoint = inventory
            .substrate
            .as_ref()
            .and_then(|s| s.endpoint.clone())
            .map(|e| (inventory.file.clone(), e));
        let env_files = inventory
            .desired_configs()
            .flat_map(|(spec, config)| {
                let account = config
                    .user
                    .clone()
                    .or_else(|| account_of(spec.manager.as_str()));
                config.env_files.iter().map(move |configured| {
                    let (path, optional) = process_manager::env_file::spec(configured);
                    EnvFile {
                        path: path.to_path_buf(),
                        optional,
                        account: account.clone(),
                        label: spec.label.to_string(),
                    }
                })
            })
            .collect();
        AuditScope {
            root: root.to_path_buf(),
            ours: Some(SystemMarks {
                labels: inventory
                    .services
                    .iter()
                    .map(|s| s.label.to_string())
                    .collect(),
                label_prefix,
                name,
                paths,
                colima: inventory
                    .substrate
                    .as_ref()
                    .is_some_and(|s| s.kind == Some(SubstrateKind::Colima)),
            }),
            critical: Some(critical),
            state_dirs: inventory.settings.state_dir.iter().cloned().collect(),
            service_user,
            unit_service_user,
            relay_accounts,
            required,
            services_dirs: services_dirs.into_iter().collect(),
            definition_dirs,
            substrate_endpoint,
            env_files,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_manager_has_its_own_service_account_and_critical_definitions_are_required() {
        let inventory = Inventory::parse(
            "t.toml",
            r#"
[managers.launchd]
service_account = "svc-mac"
[managers.systemd]
service_account = "svc-linux"
[[service]]
label = "com.example.worker"
manager = "systemd"
class = "service-critical"
[[service.probe]]
kind = "process"
[substrate]
kind = "null"
[[service]]
label = "cache"
manager = "container"
class = "infra-critical"
"#,
        )
        .unwrap();
        let scope = AuditScope::from_inventory(Path::new("/"), &inventory);
        assert_eq!(scope.service_user.as_deref(), Some("svc-mac"));
        assert_eq!(scope.unit_service_user.as_deref(), Some("svc-linux"));
        assert_eq!(
            scope.required,
            vec![Required {
                label: "com.example.worker".into(),
                unit: true,
                domain_of: None
            }]
        );
    }

    #[test]
    fn the_label_prefix_is_shared_dotted_parts() {
        let p = |l: &[&str]| common_label_prefix(l.iter().copied());
        assert_eq!(
            p(&["redis", "com.joelclaw.a", "com.joelclaw.b.c"]).as_deref(),
            Some("com.joelclaw.")
        );
        assert_eq!(p(&["com.joelclaw.a"]).as_deref(), Some("com.joelclaw."));
        assert_eq!(p(&["com.a.x", "org.b.y"]), None);
        assert_eq!(p(&["redis"]), None);
    }
}
