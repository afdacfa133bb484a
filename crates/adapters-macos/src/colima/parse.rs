//! Parsers for what `colima` prints, tested on real captured output
//! (`tests/fixtures/colima/`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use container_runtime::SshConfig;
use serde::Deserialize;

/// `colima status --json` (and the fields the human/log status format shares with it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ColimaStatus {
    /// `display_name` (`colima`, `colima-<profile>`).
    #[serde(default)]
    pub display_name: Option<String>,
    /// `driver` (`QEMU`, `macOS Virtualization.Framework`).
    #[serde(default)]
    pub driver: Option<String>,
    /// `arch` (`aarch64`, `x86_64`).
    #[serde(default)]
    pub arch: Option<String>,
    /// `runtime` (`docker`, `containerd`).
    #[serde(default)]
    pub runtime: Option<String>,
    /// `mount_type` (`sshfs`, `virtiofs`).
    #[serde(default)]
    pub mount_type: Option<String>,
    /// `ip_address`: the VM's reachable address. Absent or empty when the VM has none of its
    /// own (no `--network-address`), which this parser reports as `None`.
    #[serde(default, deserialize_with = "empty_ip_is_none")]
    pub ip_address: Option<IpAddr>,
    /// `docker_socket` (`unix:///...`).
    #[serde(default)]
    pub docker_socket: Option<String>,
    /// `containerd_socket`.
    #[serde(default)]
    pub containerd_socket: Option<String>,
    /// `kubernetes`.
    #[serde(default)]
    pub kubernetes: Option<bool>,
    /// `cpu` (singular here; `list` says `cpus`).
    #[serde(default)]
    pub cpu: Option<u32>,
    /// `memory`, bytes.
    #[serde(default)]
    pub memory: Option<u64>,
    /// `disk`, bytes.
    #[serde(default)]
    pub disk: Option<u64>,
}

fn empty_ip_is_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    match s.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => {
            let ip: IpAddr = text.parse().map_err(serde::de::Error::custom)?;
            // Loopback or unspecified is not the VM's own address: colima reports the host's
            // forwarded localhost there.
            Ok((!ip.is_loopback() && !ip.is_unspecified()).then_some(ip))
        }
    }
}

/// Parses `colima status --json`.
pub fn parse_status_json(text: &str) -> Result<ColimaStatus, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("empty output".into());
    }
    serde_json::from_str(trimmed).map_err(|e| e.to_string())
}

/// One profile from `colima list --json` (one JSON object per line).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ColimaProfile {
    /// `name`.
    pub name: String,
    /// `status` (`Running`, `Stopped`).
    pub status: String,
    /// `arch`.
    #[serde(default)]
    pub arch: Option<String>,
    /// `cpus` (plural here; `status` says `cpu`).
    #[serde(default)]
    pub cpus: Option<u32>,
    /// `memory`, bytes.
    #[serde(default)]
    pub memory: Option<u64>,
    /// `disk`, bytes.
    #[serde(default)]
    pub disk: Option<u64>,
    /// `address`, absent for a stopped profile or one without its own address.
    #[serde(default, deserialize_with = "empty_ip_is_none")]
    pub address: Option<IpAddr>,
    /// `runtime`, absent for a stopped profile.
    #[serde(default)]
    pub runtime: Option<String>,
}

impl ColimaProfile {
    /// Whether colima says it is running.
    pub fn is_running(&self) -> bool {
        self.status.eq_ignore_ascii_case("running")
    }
}

/// Parses `colima list --json` (NDJSON, not an array).
pub fn parse_list_json(text: &str) -> Result<Vec<ColimaProfile>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| serde_json::from_str(l.trim()).map_err(|e| format!("line {}: {e}", n + 1)))
        .collect()
}

/// Parses the `colima list` table. Column widths vary between versions, so rows are split on
/// whitespace (no value holds a space); a stopped or address-less profile has fewer columns.
pub fn parse_list_table(text: &str) -> Result<Vec<ColimaProfile>, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty `colima list` output")?
        .split_whitespace()
        .collect();
    if header.first() != Some(&"PROFILE") {
        return Err(format!("`colima list` header is {header:?}"));
    }
    let col = |name: &str| header.iter().position(|h| *h == name);
    let mut out = Vec::new();
    for line in lines {
        let cells: Vec<&str> = line.split_whitespace().collect();
        let cell = |name: &str| col(name).and_then(|i| cells.get(i)).copied();
        out.push(ColimaProfile {
            name: cell("PROFILE").ok_or("row without a profile")?.to_string(),
            status: cell("STATUS").unwrap_or_default().to_string(),
            arch: cell("ARCH").map(str::to_string),
            cpus: cell("CPUS").and_then(|c| c.parse().ok()),
            memory: cell("MEMORY").map(parse_size).transpose()?,
            disk: cell("DISK").map(parse_size).transpose()?,
            address: cell("ADDRESS").and_then(|a| a.parse().ok()),
            runtime: cell("RUNTIME").map(str::to_string),
        });
    }
    Ok(out)
}

/// `2GiB` -> 2147483648.
fn parse_size(text: &str) -> Result<u64, String> {
    let units = [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (suffix, factor) in units {
        if let Some(n) = text.strip_suffix(suffix) {
            let n: f64 = n.parse().map_err(|_| format!("bad size {text:?}"))?;
            return Ok((n * factor as f64) as u64);
        }
    }
    text.parse().map_err(|_| format!("bad size {text:?}"))
}

/// What `colima status` prints without `--json` (TTY `INFO[0001] ...` lines or, piped, logrus
/// `time=... level=info msg="..."` lines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusLog {
    /// The first message said `colima is running`.
    pub running: bool,
    /// `... using <driver>`.
    pub driver: Option<String>,
    /// Every `key: value` message (`arch`, `runtime`, `mountType`, `address`, `docker socket`,
    /// `containerd socket`).
    pub fields: BTreeMap<String, String>,
}

/// Parses `colima status` in either log format.
pub fn parse_status_log(text: &str) -> StatusLog {
    let mut out = StatusLog::default();
    for line in text.lines() {
        let msg = if let Some(i) = line.find("msg=\"") {
            let rest = &line[i + 5..];
            rest.strip_suffix('"').unwrap_or(rest).trim()
        } else if let Some(i) = line.find(']') {
            line[i + 1..].trim()
        } else {
            continue;
        };
        if let Some(rest) = strip_display_name(msg).and_then(|m| m.strip_prefix("is running")) {
            out.running = true;
            out.driver = rest
                .trim()
                .strip_prefix("using ")
                .map(|d| d.trim().to_string());
        } else if let Some((k, v)) = msg.split_once(": ") {
            out.fields
                .insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    out
}

/// `msg` after colima's name for the profile (`colima `, `colima [profile=work] `).
fn strip_display_name(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("colima ")?;
    Some(match rest.strip_prefix("[profile=") {
        Some(named) => named.split_once("] ")?.1,
        None => rest,
    })
}

impl StatusLog {
    /// What the log format shares with `colima status --json`. The VM's address is read as the
    /// JSON's is: loopback or unspecified is no address of its own.
    pub fn to_status(&self) -> ColimaStatus {
        let field = |k: &str| self.fields.get(k).cloned();
        ColimaStatus {
            driver: self.driver.clone(),
            arch: field("arch"),
            runtime: field("runtime"),
            mount_type: field("mountType"),
            ip_address: field("address")
                .and_then(|a| a.parse::<IpAddr>().ok())
                .filter(|ip| !ip.is_loopback() && !ip.is_unspecified()),
            docker_socket: field("docker socket"),
            containerd_socket: field("containerd socket"),
            ..ColimaStatus::default()
        }
    }
}

/// Whether `colima status` failed because the VM is stopped: colima's fatal
/// `<display name> is not running` (`colima is not running`, `colima [profile=work] is not
/// running`), in either log format.
pub fn says_not_running(stderr: &str) -> bool {
    stderr.lines().any(|line| {
        let msg = match line.find("msg=\"") {
            Some(i) => line[i + 5..].trim_end().trim_end_matches('"'),
            None => line.find(']').map_or(line, |i| &line[i + 1..]).trim(),
        };
        strip_display_name(msg).is_some_and(|rest| rest.trim() == "is not running")
    })
}

/// Whether `colima` rejected `--json` as an unknown flag (versions before it had one).
pub fn rejects_json_flag(stderr: &str) -> bool {
    stderr.contains("unknown flag: --json")
}

/// Parses the `Key value` lines of an ssh config (`colima ssh-config`), quotes removed, in order.
pub fn parse_ssh_options(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.split_once(|c: char| c.is_whitespace() || c == '=')?;
            let v = v.trim().trim_start_matches('=').trim();
            let v = v
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or(v);
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// Parses `colima ssh-config` into the port's [`SshConfig`]. `Host`, `Hostname` and `Port` are
/// required.
pub fn parse_ssh_config(text: &str) -> Result<SshConfig, String> {
    let opts = parse_ssh_options(text);
    let first = |key: &str| {
        opts.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    let host = first("Host").ok_or("no `Host` line")?;
    let hostname = first("Hostname").ok_or("no `Hostname` line")?;
    let port = first("Port").ok_or("no `Port` line")?;
    let port = port.parse().map_err(|_| format!("bad Port {port:?}"))?;
    let mut options = BTreeMap::new();
    for (k, v) in &opts {
        options.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Ok(SshConfig {
        host,
        hostname,
        port,
        user: first("User"),
        identity_file: first("IdentityFile").map(PathBuf::from),
        options,
    })
}

/// Parses `/proc/uptime` (`12345.67 23456.78`): whole seconds since the VM booted.
pub fn parse_proc_uptime(text: &str) -> Result<u64, String> {
    let first = text.split_whitespace().next().ok_or("empty /proc/uptime")?;
    let secs: f64 = first
        .parse()
        .map_err(|_| format!("bad /proc/uptime {first:?}"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("bad /proc/uptime {first:?}"));
    }
    Ok(secs as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/colima/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
    }

    #[test]
    fn status_json_fixtures_exact() {
        let s9 = parse_status_json(&fixture("colima-09.txt")).unwrap();
        assert_eq!(
            s9,
            ColimaStatus {
                display_name: Some("colima".into()),
                driver: Some("macOS Virtualization.Framework".into()),
                arch: Some("aarch64".into()),
                runtime: Some("docker".into()),
                mount_type: Some("sshfs".into()),
                ip_address: None,
                docker_socket: Some("unix:///Users/x/.colima/default/docker.sock".into()),
                containerd_socket: None,
                kubernetes: Some(false),
                cpu: Some(2),
                memory: Some(3221225472),
                disk: Some(42949672960),
            }
        );
        let s10 = parse_status_json(&fixture("colima-10.txt")).unwrap();
        assert_eq!(
            s10,
            ColimaStatus {
                display_name: Some("colima".into()),
                driver: Some("QEMU".into()),
                arch: Some("aarch64".into()),
                runtime: Some("docker".into()),
                mount_type: Some("sshfs".into()),
                ip_address: Some("192.168.5.15".parse().unwrap()),
                docker_socket: Some("unix:///Users/me/.colima/default/docker.sock".into()),
                containerd_socket: Some("unix:///Users/me/.colima/default/containerd.sock".into()),
                kubernetes: Some(true),
                cpu: Some(2),
                memory: Some(2147483648),
                disk: Some(107374182400),
            }
        );
    }

    #[test]
    fn status_json_edge_cases() {
        // No ip_address key at all, and a loopback one: no VM address either way.
        assert_eq!(
            parse_status_json(r#"{"arch":"x86_64"}"#)
                .unwrap()
                .ip_address,
            None
        );
        assert_eq!(
            parse_status_json(r#"{"ip_address":"127.0.0.1"}"#)
                .unwrap()
                .ip_address,
            None
        );
        for bad in [
            "",
            "{",
            "not json",
            r#"{"ip_address":"nope"}"#,
            r#"{"cpu":"two"}"#,
        ] {
            assert!(parse_status_json(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn list_json_fixture_exact() {
        let profiles = parse_list_json(&fixture("colima-08.txt")).unwrap();
        assert_eq!(
            profiles,
            vec![
                ColimaProfile {
                    name: "default".into(),
                    status: "Running".into(),
                    arch: Some("aarch64".into()),
                    cpus: Some(2),
                    memory: Some(2147483648),
                    disk: Some(107374182400),
                    address: Some("192.168.64.2".parse().unwrap()),
                    runtime: Some("docker".into()),
                },
                ColimaProfile {
                    name: "m1".into(),
                    status: "Stopped".into(),
                    arch: Some("aarch64".into()),
                    cpus: Some(4),
                    memory: Some(8589934592),
                    disk: Some(107374182400),
                    address: None,
                    runtime: None,
                },
            ]
        );
        assert!(profiles[0].is_running());
        assert!(!profiles[1].is_running());
        assert!(
            parse_list_json("{\"name\":\"a\",\"status\":\"Running\"}\n[oops\n")
                .unwrap_err()
                .contains("line 2")
        );
    }

    #[test]
    fn list_table_fixture_exact() {
        let rows = parse_list_table(&fixture("colima-07.txt")).unwrap();
        assert_eq!(
            rows,
            vec![ColimaProfile {
                name: "default".into(),
                status: "Running".into(),
                arch: Some("aarch64".into()),
                cpus: Some(2),
                memory: Some(2 << 30),
                disk: Some(100 << 30),
                address: None,
                runtime: Some("docker".into()),
            }]
        );
    }

    #[test]
    fn status_log_fixtures_exact() {
        let s2 = parse_status_log(&fixture("colima-02.txt"));
        assert!(s2.running);
        assert_eq!(s2.driver.as_deref(), Some("macOS Virtualization.Framework"));
        let get = |s: &StatusLog, k: &str| s.fields.get(k).cloned();
        assert_eq!(get(&s2, "arch").as_deref(), Some("aarch64"));
        assert_eq!(get(&s2, "runtime").as_deref(), Some("docker"));
        assert_eq!(get(&s2, "mountType").as_deref(), Some("virtiofs"));
        assert_eq!(
            get(&s2, "docker socket").as_deref(),
            Some("unix:///Users/omerlondon/.colima/default/docker.sock")
        );
        assert_eq!(
            get(&s2, "containerd socket").as_deref(),
            Some("unix:///Users/omerlondon/.colima/default/containerd.sock")
        );
        assert_eq!(s2.fields.len(), 5);

        let s3 = parse_status_log(&fixture("colima-03.txt"));
        assert!(s3.running);
        assert_eq!(s3.driver.as_deref(), Some("macOS Virtualization.Framework"));
        assert_eq!(
            get(&s3, "docker socket").as_deref(),
            Some("unix:///Users/kevin/.colima/default/docker.sock")
        );
        assert_eq!(s3.fields.len(), 5);
        assert_eq!(get(&s3, "address"), None);

        let s4 = parse_status_log(&fixture("colima-04.txt"));
        assert!(s4.running);
        assert_eq!(get(&s4, "address").as_deref(), Some("192.168.64.2"));
        assert_eq!(s4.fields.len(), 6);

        assert!(!parse_status_log("").running);
    }

    #[test]
    fn status_log_carries_what_json_would() {
        let s4 = parse_status_log(&fixture("colima-04.txt")).to_status();
        assert_eq!(s4.ip_address, Some("192.168.64.2".parse().unwrap()));
        assert_eq!(s4.driver.as_deref(), Some("macOS Virtualization.Framework"));
        assert_eq!(s4.runtime.as_deref(), Some("docker"));
        assert_eq!(s4.mount_type.as_deref(), Some("virtiofs"));
        assert_eq!(
            s4.docker_socket.as_deref(),
            Some("unix:///Users/davidbr/.colima/default/docker.sock")
        );
        assert_eq!(
            parse_status_log(&fixture("colima-02.txt"))
                .to_status()
                .ip_address,
            None
        );
        let named = "INFO[0001] colima [profile=work] is running using QEMU\n";
        let log = parse_status_log(named);
        assert!(log.running);
        assert_eq!(log.driver.as_deref(), Some("QEMU"));
    }

    #[test]
    fn stopped_and_unknown_flag_are_told_apart() {
        assert!(says_not_running(
            "time=\"2026-05-10T00:42:35+02:00\" level=fatal msg=\"colima is not running\"\n"
        ));
        assert!(says_not_running(
            "FATA[0000] colima [profile=work] is not running\n"
        ));
        assert!(!says_not_running(
            "time=\"x\" level=fatal msg=\"error retrieving current runtime: empty value\"\n"
        ));
        assert!(!says_not_running("FATA[0000] docker is not running\n"));
        assert!(!says_not_running(""));
        let old = "Error: unknown flag: --json\nUsage:\n  colima status [profile] [flags]\n";
        assert!(rejects_json_flag(old));
        assert!(!says_not_running(old));
        assert!(!rejects_json_flag("FATA[0000] colima is not running\n"));
    }

    #[test]
    fn ssh_config_fixtures_exact() {
        // colima-12 is a partial capture: options parse, but it names no host to reach.
        let partial = fixture("colima-12.txt");
        assert_eq!(
            parse_ssh_options(&partial),
            vec![
                ("ControlMaster".to_string(), "auto".to_string()),
                (
                    "ControlPath".to_string(),
                    "/Users/utensil/.config/colima/_lima/colima/ssh.sock".to_string()
                ),
                ("ControlPersist".to_string(), "yes".to_string()),
            ]
        );
        assert!(parse_ssh_config(&partial).unwrap_err().contains("Host"));

        let full = parse_ssh_config(&fixture("colima-13.txt")).unwrap();
        assert_eq!(full.host, "lima-default");
        assert_eq!(full.hostname, "127.0.0.1");
        assert_eq!(full.port, 60006);
        assert_eq!(full.user.as_deref(), Some("go"));
        assert_eq!(
            full.identity_file,
            Some(PathBuf::from("/Users/go/.lima/_config/user"))
        );
        assert_eq!(
            full.options.get("Ciphers").map(String::as_str),
            Some("^aes128-gcm@openssh.com,aes256-gcm@openssh.com")
        );
        assert_eq!(
            full.options.get("UserKnownHostsFile").map(String::as_str),
            Some("/dev/null")
        );
        assert_eq!(full.options.len(), 17);
    }

    #[test]
    fn proc_uptime() {
        assert_eq!(parse_proc_uptime("12345.67 23456.78\n").unwrap(), 12345);
        assert!(parse_proc_uptime("").is_err());
        assert!(parse_proc_uptime("abc 1").is_err());
        assert!(parse_proc_uptime("-3 1").is_err());
    }
}
