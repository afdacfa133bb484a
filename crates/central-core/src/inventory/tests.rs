//! The reader's tests: good files, and each kind of error at its own line and key.

use std::time::Duration;

use super::*;
use crate::model::*;

const GOOD: &str = r#"
[node]
id = "mac-studio-central"
role = "central"

[substrate]
name = "colima"

[[service]]
label = "redis"
manager = "container"
class = "infra-critical"

[[service]]
label = "com.joelclaw.worker"
manager = "launchd"
depends_on = ["redis"]

[[service.probe]]
kind = "http"
endpoints = [
  { class = "localhost", url = "http://127.0.0.1:3111/health" },
  { class = "dns", url = "http://worker.tailnet:3111/health" },
]
status = [200, 299]
timeout = "2s"

[service.heal]
failures_to_down = 2
backoff_initial = "30s"

[service.config]
program = "/opt/joelclaw/bin/worker"
args = ["--port", "3111"]
env = { PATH = "/opt/homebrew/bin:/usr/bin:/bin" }
"#;

fn parse(text: &str) -> Result<Inventory, InventoryError> {
    Inventory::parse("inv.toml", text)
}

#[test]
fn the_documented_example_parses() {
    let inv = Inventory::parse(
        "central.toml",
        include_str!("../../../../examples/central.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(inv.services.len(), 7);
    let sub = inv.substrate.as_ref().unwrap();
    assert_eq!(sub.kind, Some(SubstrateKind::Colima));
    assert_eq!(
        inv.managers["launchd"].service_account.as_deref(),
        Some("joelclaw")
    );
    assert_eq!(sub.profile.as_deref(), Some("default"));
    assert_eq!(inv.desired_configs().count(), 2);
    assert_eq!(
        inv.notify.as_ref().unwrap().timeout,
        Duration::from_secs(10)
    );
    // The five Central containers are one Compose project, found by its labels.
    for label in ["redis", "typesense", "inngest", "restate", "minio"] {
        let svc = inv.service(label).unwrap();
        let compose = svc.compose.as_ref().unwrap_or_else(|| panic!("{label}"));
        assert_eq!(compose.project, "central");
        assert_eq!(compose.service, label);
        assert_eq!(svc.container, None, "{label}: found by labels, not by name");
    }
    assert_eq!(
        sub.compose_command.as_deref(),
        Some(&["docker".to_string(), "compose".to_string()][..])
    );
    let worker = inv.service("com.joelclaw.system-bus-worker").unwrap();
    assert_eq!(worker.probes.len(), 2);
    assert_eq!(worker.heal.hysteresis.failures_to_down(), 2);
    assert_eq!(worker.heal.hysteresis.passes_to_up(), 2);
    // Dependencies come before dependents.
    let order = inv.dependency_order();
    let pos = |l: &str| {
        order
            .iter()
            .position(|&i| inv.services[i].label.as_str() == l)
    };
    assert!(pos("redis") < pos("com.joelclaw.system-bus-worker"));
    assert!(pos("inngest") < pos("com.joelclaw.system-bus-worker"));
}

#[test]
fn a_good_file_with_defaults_filled_in() {
    let inv = parse(GOOD).unwrap();
    assert_eq!(inv.node.id.as_deref(), Some("mac-studio-central"));
    assert_eq!(inv.node.role, Role::Central);
    assert_eq!(inv.settings, LoopSettings::default());
    let sub = inv.substrate.as_ref().unwrap();
    assert_eq!(sub.name.as_str(), "colima");

    let redis = inv.service("redis").unwrap();
    assert_eq!(redis.container.as_deref(), Some("redis"));
    assert_eq!(
        redis.probes[0].check,
        ProbeCheck::Container {
            name: "redis".into()
        }
    );
    // A container depends on its substrate without saying so.
    assert_eq!(redis.depends_on[0].as_str(), "colima");
    assert_eq!(redis.heal, HealPolicy::default());

    let worker = inv.service("com.joelclaw.worker").unwrap();
    assert_eq!(worker.class, ServiceClass::ServiceCritical);
    assert_eq!(worker.heal.hysteresis.failures_to_down(), 2);
    assert_eq!(worker.heal.backoff.initial(), Duration::from_secs(30));
    assert_eq!(worker.heal.hysteresis.passes_to_up(), 2);
    match &worker.probes[0].check {
        ProbeCheck::Http { endpoints, status } => {
            assert_eq!(endpoints.len(), 2);
            assert_eq!(endpoints[1].class, EndpointClass::Dns);
            assert_eq!(*status, (200, 299));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(worker.probes[0].timeout, Duration::from_secs(2));
    let config = worker.config.as_ref().unwrap();
    assert_eq!(config.label.as_str(), "com.joelclaw.worker");
    assert_eq!(config.args, ["--port", "3111"]);
    assert_eq!(inv.desired_configs().count(), 1);
    // Dependencies come first.
    let order = inv.dependency_order();
    assert_eq!(order, vec![0, 1]);
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

fn assert_error(text: &str, kind: InventoryErrorKind, needle: &str, key: &str) {
    let err = parse(text).unwrap_err();
    assert_eq!(err.kind, kind, "{err}");
    assert_eq!(err.line, line_of(text, needle), "{err}");
    assert_eq!(err.key, key, "{err}");
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("inv.toml:{}:", err.line)),
        "{shown}"
    );
    assert!(shown.contains(key), "{shown}");
}

#[test]
fn unknown_key_names_line_and_key() {
    let text =
        "[[service]]\nlabel = \"a\"\nmanager = \"null\"\n\n[service.heal]\nfailures_to_dwon = 3\n";
    assert_error(
        text,
        InventoryErrorKind::UnknownKey,
        "failures_to_dwon",
        "service.heal.failures_to_dwon",
    );
}

#[test]
fn manager_settings_are_checked() {
    let text = "[managers.systemd]\nservice_account = \"joelclaw\"\ncommand_prefix = [\"nsenter\", \"-t\", \"7\", \"-a\"]\n";
    let inv = parse(text).unwrap();
    assert_eq!(inv.managers["systemd"].command_prefix.len(), 4);
    let err = parse("\n[managers.upstart]\nservice_account = \"x\"\n").unwrap_err();
    assert_eq!(
        (err.kind, err.line),
        (InventoryErrorKind::UnknownKey, 2),
        "{err}"
    );
    assert_eq!(err.key, "managers.upstart");
    let err = parse("[managers.launchd]\nservice_account = \"0day\"\n").unwrap_err();
    assert_eq!(err.kind, InventoryErrorKind::Invalid, "{err}");
    assert_eq!(err.key, "managers.launchd.service_account");
    let err = parse("[managers.launchd]\nunit_dir = \"/x\"\n").unwrap_err();
    assert_eq!(
        (err.kind, err.line),
        (InventoryErrorKind::UnknownKey, 2),
        "{err}"
    );
}

#[test]
fn unknown_key_in_the_desired_config() {
    let text = "[[service]]\nlabel = \"a\"\nmanager = \"systemd\"\n\n[service.config]\nprogram = \"/bin/a\"\nprogramme = \"/bin/b\"\n";
    assert_error(
        text,
        InventoryErrorKind::UnknownKey,
        "programme",
        "service.config.programme",
    );
}

#[test]
fn wrong_type_names_line_and_key() {
    let text = "[loop]\ninterval = \"5s\"\nmax_concurrency = \"lots\"\n";
    assert_error(
        text,
        InventoryErrorKind::WrongType,
        "max_concurrency",
        "loop.max_concurrency",
    );
}

#[test]
fn duplicate_label_names_both_lines() {
    let text = "[[service]]\nlabel = \"a\"\nmanager = \"null\"\n\n[[service]]\nlabel = \"a\"  # again\nmanager = \"null\"\n";
    let err = parse(text).unwrap_err();
    assert_eq!(err.kind, InventoryErrorKind::DuplicateLabel);
    assert_eq!(err.line, line_of(text, "# again"));
    assert_eq!(err.key, "service.label");
    assert!(err.message.contains("line 2"), "{err}");
}

#[test]
fn unknown_dependency_names_line_and_key() {
    let text = "[[service]]\nlabel = \"a\"\nmanager = \"null\"\ndepends_on = [\n  \"redis\",\n]\n";
    assert_error(
        text,
        InventoryErrorKind::UnknownDependency,
        "\"redis\"",
        "service.depends_on",
    );
}

#[test]
fn dependency_cycle_shows_the_circle() {
    let text = "[[service]]\nlabel = \"a\"\nmanager = \"null\"\ndepends_on = [\"b\"]\n\n[[service]]\nlabel = \"b\"\nmanager = \"null\"\ndepends_on = [\"c\"] # b\n\n[[service]]\nlabel = \"c\"\nmanager = \"null\"\ndepends_on = [\"a\"] # c\n";
    let err = parse(text).unwrap_err();
    assert_eq!(err.kind, InventoryErrorKind::DependencyCycle, "{err}");
    assert_eq!(err.key, "service.depends_on");
    assert_eq!(err.line, line_of(text, "# c"), "{err}");
    assert!(err.message.contains("a -> b -> c -> a"), "{err}");
}

#[test]
fn bad_duration_names_line_and_key() {
    let text = "[[service]]\nlabel = \"a\"\nmanager = \"null\"\n\n[service.heal]\ngrace = \"ten seconds\"\n";
    assert_error(
        text,
        InventoryErrorKind::BadDuration,
        "ten seconds",
        "service.heal.grace",
    );
}

#[test]
fn syntax_error_names_the_line() {
    let text = "[node]\nrole = \"central\"\nid = \n";
    let err = parse(text).unwrap_err();
    assert_eq!(err.kind, InventoryErrorKind::Syntax, "{err}");
    assert_eq!(err.line, 3, "{err}");
}

#[test]
fn bad_label_and_bad_enum_are_refused() {
    let text = "[[service]]\nlabel = \"-rf\"\nmanager = \"null\"\n";
    assert_error(text, InventoryErrorKind::Invalid, "-rf", "service.label");
    let text = "[[service]]\nlabel = \"a\"\nmanager = \"upstart\"\n";
    assert_error(
        text,
        InventoryErrorKind::Invalid,
        "upstart",
        "service.manager",
    );
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let err = Inventory::load("/nonexistent/inv.toml").unwrap_err();
    assert_eq!(err.kind, InventoryErrorKind::Io);
    assert!(err.to_string().contains("/nonexistent/inv.toml"));
}

#[test]
fn a_zero_interval_is_reported_at_its_own_line_and_key() {
    let text = "[node]\nrole = \"central\"\n\n[loop]\nmax_concurrency = 4\ninterval = \"0s\"\n";
    assert_error(
        text,
        InventoryErrorKind::Invalid,
        "interval",
        "loop.interval",
    );
    let text = "[loop]\nmax_concurrency = 0\n";
    assert_error(
        text,
        InventoryErrorKind::Invalid,
        "max_concurrency",
        "loop.max_concurrency",
    );
}

#[test]
fn a_bad_policy_value_is_reported_where_it_is_written() {
    // Node-wide defaults, even with no service.
    let text = "[node]\nrole = \"central\"\n\n[heal]\ngrace = \"5s\"\njitter = 5\n";
    assert_error(text, InventoryErrorKind::Invalid, "jitter", "heal.jitter");
    // A service's own value.
    let text = "[[service]]\nlabel = \"a\"\nmanager = \"null\"\n\n[service.heal]\ngrace = \"5s\"\nbackoff_initial = \"1m\"\nbackoff_max = \"10s\"\n";
    assert_error(
        text,
        InventoryErrorKind::Invalid,
        "backoff_max",
        "service.heal.backoff_max",
    );
    // A value the service takes from `[heal]` is reported there, under its own key.
    let text = "[heal]\nfailures_to_down = 0\n\n[[service]]\nlabel = \"a\"\nmanager = \"null\"\n";
    assert_error(
        text,
        InventoryErrorKind::Invalid,
        "failures_to_down",
        "heal.failures_to_down",
    );
}

#[test]
fn a_wrong_type_in_the_desired_config_names_its_line_and_key() {
    let text = "[[service]]\nlabel = \"a\"\nmanager = \"systemd\"\n\n[service.config]\nprogram = \"/bin/a\"\nargs = \"--port 1\"\nrun_at_load = true\n";
    assert_error(
        text,
        InventoryErrorKind::WrongType,
        "args",
        "service.config.args",
    );
    let text = "[[service]]\nlabel = \"a\"\nmanager = \"systemd\"\n\n[service.config]\nargs = []\n";
    let err = parse(text).unwrap_err();
    assert_eq!(err.kind, InventoryErrorKind::MissingKey, "{err}");
    assert_eq!(err.key, "service.config.program", "{err}");
}

#[test]
fn a_port_outside_1_to_65535_is_refused_at_load() {
    let text = "[[service]]\nlabel = \"a\"\nmanager = \"null\"\n\n[[service.probe]]\nkind = \"tcp\"\ntimeout = \"1s\"\naddress = \"127.0.0.1:99999\"\n";
    assert_error(
        text,
        InventoryErrorKind::Invalid,
        "99999",
        "service.probe.address",
    );
    let text = "[[service]]\nlabel = \"a\"\nmanager = \"null\"\n\n[[service.probe]]\nkind = \"http\"\nendpoints = [\n  { url = \"http://127.0.0.1:8080/health\" },\n  { class = \"dns\", url = \"http://h.tailnet:0/health\" },\n]\n";
    assert_error(
        text,
        InventoryErrorKind::Invalid,
        "tailnet:0",
        "service.probe.endpoints",
    );
    let text = "[[service]]\nlabel = \"a\"\nmanager = \"null\"\n\n[[service.probe]]\nkind = \"tcp\"\naddress = \"localhost\"\n";
    assert_error(
        text,
        InventoryErrorKind::Invalid,
        "localhost",
        "service.probe.address",
    );
    // A URL without a port (80), {vm_ip} and IPv6 addresses are fine.
    let text = "[[service]]\nlabel = \"a\"\nmanager = \"null\"\n\n[[service.probe]]\nkind = \"http\"\nurl = \"http://127.0.0.1/health\"\n\n[[service.probe]]\nkind = \"tcp\"\nendpoints = [{ address = \"[::1]:6379\" }, { class = \"vm\", address = \"{vm_ip}:6379\" }]\n";
    parse(text).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn an_absurd_duration_is_refused_with_the_limit() {
    let text = "[node]\nrole = \"central\"\n\n[loop]\ninterval = \"100000000000d\"\n";
    assert_error(
        text,
        InventoryErrorKind::BadDuration,
        "100000000000d",
        "loop.interval",
    );
    assert!(parse(text).unwrap_err().message.contains("365 days"));
    let text = "[[service]]\nlabel = \"a\"\nmanager = \"null\"\n\n[service.heal]\nbreaker_cooldown = \"400d\"\n";
    assert_error(
        text,
        InventoryErrorKind::BadDuration,
        "400d",
        "service.heal.breaker_cooldown",
    );
    // A year itself is accepted.
    parse("[loop]\nheal_timeout = \"365d\"\n").unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_huge_value_is_not_echoed_whole() {
    let long = "x".repeat(10_000);
    for text in [
        format!("[[service]]\nlabel = \"{long}\"\nmanager = \"null\"\n"),
        format!("[loop]\ninterval = \"{long}\"\n"),
        format!("[[service]]\nlabel = \"a\"\nmanager = \"null\"\ndepends_on = [\"{long}\"]\n"),
    ] {
        let err = parse(&text).unwrap_err();
        let shown = err.to_string();
        assert!(shown.len() < 400, "{} bytes: {shown:.300}", shown.len());
        assert!(shown.contains("10000 characters"), "{shown}");
    }
}

#[test]
fn an_inventory_with_nothing_to_heal_reads_but_is_not_runnable() {
    let inv = parse("[node]\nrole = \"fleet\"\n").unwrap();
    let err = inv.check_runnable().unwrap_err();
    assert_eq!(err.kind, InventoryErrorKind::NothingToHeal);
    assert!(err.to_string().contains("nothing to heal"), "{err}");
    parse(GOOD).unwrap().check_runnable().unwrap();
    let substrate_only = parse("[substrate]\nname = \"colima\"\n").unwrap();
    substrate_only.check_runnable().unwrap();
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_without_being_opened() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("inv.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // A writer with a valid inventory, so a reader that opens the FIFO gets a file back
    // instead of hanging.
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            let _ = w.write_all(b"[node]\nrole = \"fleet\"\n");
        })
    };
    let result = Inventory::load(&fifo);
    // Release the writer whatever happened: open the read end without blocking.
    {
        use std::os::unix::fs::OpenOptionsExt;
        let _reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        writer.join().unwrap();
    }
    let err = result.unwrap_err();
    assert_eq!(err.kind, InventoryErrorKind::Io, "{err}");
    assert!(err.message.contains("FIFO"), "{err}");
    let err = Inventory::load(dir.path()).unwrap_err();
    assert!(err.message.contains("a folder"), "{err}");
}

#[test]
fn a_config_label_other_than_the_service_label_is_refused_at_its_key() {
    let text = "[[service]]\nlabel = \"a\"\nmanager = \"systemd\"\n\n[service.config]\nprogram = \"/bin/a\"\nlabel = \"b\"\n";
    assert_error(
        text,
        InventoryErrorKind::Invalid,
        "label = \"b\"",
        "service.config.label",
    );
    assert!(parse(text)
        .unwrap_err()
        .message
        .contains("config label \"b\" differs"));
    let same = "[[service]]\nlabel = \"a\"\nmanager = \"systemd\"\n\n[service.config]\nlabel = \"a\"\nprogram = \"/bin/a\"\n";
    assert_eq!(
        parse(same).unwrap().services[0]
            .config
            .as_ref()
            .unwrap()
            .label
            .as_str(),
        "a"
    );
}

#[test]
fn depends_on_orders_services_on_the_same_manager_only() {
    let inv = parse(
        r#"
[substrate]
name = "colima"

[[service]]
label = "redis"
manager = "container"

[[service]]
label = "ollama"
manager = "systemd"
[service.config]
program = "/usr/local/bin/ollama"

[[service]]
label = "cache"
manager = "launchd"
[service.config]
program = "/bin/cache"

[[service]]
label = "embedder"
manager = "systemd"
depends_on = ["redis", "colima", "cache", "ollama"]
[service.config]
program = "/bin/embedder"
after = ["ollama"]
"#,
    )
    .unwrap();
    let after: Vec<&str> = inv
        .service("embedder")
        .unwrap()
        .config
        .as_ref()
        .unwrap()
        .after
        .iter()
        .map(|l| l.as_str())
        .collect();
    // The container, the substrate and the launchd service are not systemd's to order;
    // `ollama`, named in both places, appears once.
    assert_eq!(after, vec!["ollama"]);
    let ollama = inv.service("ollama").unwrap().config.as_ref().unwrap();
    assert!(ollama.after.is_empty());
}

#[test]
fn hardening_write_paths_triggers_and_log_dir_are_read() {
    use process_manager::Relax;
    let inv = parse(
        r#"
[node]
log_dir = "/srv/logs"

[[service]]
label = "ollama"
manager = "systemd"
[service.config]
program = "/usr/local/bin/ollama"
hardening = { relax = ["devices", "wx-memory"] }
write_paths = ["/var/lib/ollama"]

[[service]]
label = "janitor"
manager = "systemd"
[service.config]
program = "/bin/janitor"
hardening = false
restart = "on-failure"
triggers = { interval = "1h", watch_paths = ["/var/lib/joelclaw/inbox"] }
"#,
    )
    .unwrap();
    assert_eq!(inv.node.log_dir(), std::path::PathBuf::from("/srv/logs"));
    let ollama = inv.service("ollama").unwrap().config.clone().unwrap();
    assert!(ollama.hardening.enabled);
    assert!(ollama.hardening.relax.contains(&Relax::Devices));
    assert!(ollama.hardening.relax.contains(&Relax::WxMemory));
    assert_eq!(
        ollama.write_paths,
        vec![std::path::PathBuf::from("/var/lib/ollama")]
    );
    let janitor = inv.service("janitor").unwrap().config.clone().unwrap();
    assert!(!janitor.hardening.enabled);
    assert_eq!(janitor.triggers.interval, Some(Duration::from_secs(3600)));
    assert!(janitor.is_job());

    assert_eq!(
        parse("[node]\nrole = \"fleet\"\n").unwrap().node.log_dir(),
        std::path::PathBuf::from(crate::model::DEFAULT_LOG_DIR)
    );
    assert_error(
        "[node]\nlog_dir = \"logs\"\n",
        InventoryErrorKind::Invalid,
        "log_dir",
        "node.log_dir",
    );
}

#[test]
fn definitions_without_log_files_log_under_the_node_log_dir() {
    let text = |log_dir: &str| {
        format!(
            r#"
[node]
{log_dir}

[[service]]
label = "worker"
manager = "systemd"
[service.config]
program = "/bin/worker"

[[service]]
label = "named"
manager = "launchd"
[service.config]
program = "/bin/named"
stderr_path = "/srv/named.err"

[[service]]
label = "local"
manager = "embedded"
[service.config]
program = "/bin/local"
"#
        )
    };
    let config = |inv: &Inventory, l: &str| inv.service(l).unwrap().config.clone().unwrap();
    let inv = parse(&text("")).unwrap();
    let worker = config(&inv, "worker");
    assert_eq!(
        worker.stdout_path.as_deref(),
        Some(std::path::Path::new("/var/log/joelclaw/worker.out.log"))
    );
    assert_eq!(
        worker.stderr_path.as_deref(),
        Some(std::path::Path::new("/var/log/joelclaw/worker.err.log"))
    );
    let inv = parse(&text("log_dir = \"/srv/logs\"")).unwrap();
    let named = config(&inv, "named");
    // A path the config names is kept; only the missing one is filled in.
    assert_eq!(
        named.stdout_path.as_deref(),
        Some(std::path::Path::new("/srv/logs/named.out.log"))
    );
    assert_eq!(
        named.stderr_path.as_deref(),
        Some(std::path::Path::new("/srv/named.err"))
    );
    // The embedded supervisor keeps its own logs.
    assert_eq!(config(&inv, "local").stdout_path, None);
}

#[test]
fn fleet_and_telemetry_sections_are_read_and_checked() {
    let text = "[fleet]\nredis = \"redis://central:6379/0\"\nusername = \"node-a\"\npassword_file = \"/etc/joelclaw/redis.pass\"\nheartbeat = \"2s\"\nqueue = 64\nstream_maxlen = 500\n\n[telemetry]\notlp = \"http://127.0.0.1:4318\"\n";
    let inv = parse(text).unwrap();
    let fleet = inv.fleet.unwrap();
    assert_eq!(fleet.redis, "redis://central:6379/0");
    assert_eq!(fleet.username.as_deref(), Some("node-a"));
    assert_eq!(fleet.heartbeat, Some(std::time::Duration::from_secs(2)));
    assert_eq!((fleet.queue, fleet.stream_maxlen), (Some(64), Some(500)));
    assert_eq!(inv.telemetry.unwrap().otlp, "http://127.0.0.1:4318");
    assert!(parse("[[service]]\nlabel = \"a\"\nmanager = \"null\"\n")
        .unwrap()
        .fleet
        .is_none());

    for (text, key, line) in [
        ("\n[fleet]\nredis = \"http://central\"\n", "fleet.redis", 3),
        (
            "[fleet]\nredis = \"redis://node:s3cret@central:6379\"\n",
            "fleet.redis",
            2,
        ),
        (
            "[fleet]\nredis = \"redis://central\"\npassword_file = \"redis.pass\"\n",
            "fleet.password_file",
            3,
        ),
        (
            "[fleet]\nredis = \"redis://central\"\nheartbeat = \"0s\"\n",
            "fleet.heartbeat",
            3,
        ),
        (
            "[fleet]\nredis = \"redis://central\"\n\nqueue = 0\n",
            "fleet.queue",
            4,
        ),
        (
            "[telemetry]\notlp = \"grpc://collector:4317\"\n",
            "telemetry.otlp",
            2,
        ),
    ] {
        let err = parse(text).unwrap_err();
        assert_eq!((err.key.as_str(), err.line), (key, line), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
    let err = parse("[fleet]\nredis = \"redis://central\"\nredis_url = \"x\"\n").unwrap_err();
    assert_eq!(err.kind, InventoryErrorKind::UnknownKey, "{err}");
}

const COMPOSED: &str = r#"
[substrate]
name = "docker"
kind = "docker"
unit = "docker.service"
compose_command = ["docker-compose"]
tls = { ca = "/etc/joelclaw/docker/ca.pem", cert = "/etc/joelclaw/docker/cert.pem", key = "/etc/joelclaw/docker/key.pem" }

[[service]]
label = "redis"
manager = "container"
compose = { project = "central", file = "/opt/central/compose.yaml" }

[[service]]
label = "inngest"
manager = "container"
depends_on = ["redis"]
compose = { project = "central", file = "/opt/central/compose.yaml", service = "inngest-server" }
"#;

#[test]
fn compose_services_and_the_engines_keys_are_read() {
    let inv = parse(COMPOSED).unwrap_or_else(|e| panic!("{e}"));
    let sub = inv.substrate.as_ref().unwrap();
    assert_eq!(
        sub.unit.as_deref(),
        Some("docker"),
        "the .service suffix is dropped"
    );
    assert_eq!(
        sub.compose_command,
        Some(vec!["docker-compose".to_string()])
    );
    assert_eq!(
        sub.tls.as_ref().unwrap().ca,
        std::path::PathBuf::from("/etc/joelclaw/docker/ca.pem")
    );
    let redis = inv.service("redis").unwrap();
    assert_eq!(
        redis.container_ref(),
        Some(container_runtime::ContainerRef::Compose(ComposeService {
            project: "central".into(),
            file: "/opt/central/compose.yaml".into(),
            service: "redis".into(),
        }))
    );
    // The default probe is the container itself (found by its labels), and it depends on the
    // substrate as every container does.
    assert_eq!(redis.probes[0].check, ProbeCheck::Process);
    assert!(redis.depends_on.iter().any(|d| d.as_str() == "docker"));
    let inngest = inv.service("inngest").unwrap();
    assert_eq!(inngest.compose.as_ref().unwrap().service, "inngest-server");
}

#[test]
fn bad_compose_keys_are_refused_at_their_line() {
    let cases = [
        (
            COMPOSED.replace("manager = \"container\"\ncompose = { project = \"central\", file = \"/opt/central/compose.yaml\" }", "manager = \"null\"\ncompose = { project = \"central\", file = \"/opt/central/compose.yaml\" }"),
            "only applies to manager",
        ),
        (
            COMPOSED.replace("file = \"/opt/central/compose.yaml\" }\n\n", "file = \"compose.yaml\" }\n\n"),
            "must be absolute",
        ),
        (
            COMPOSED.replace("project = \"central\", file = \"/opt/central/compose.yaml\" }\n\n", "project = \"-p\", file = \"/opt/central/compose.yaml\" }\n\n"),
            "compose project \"-p\"",
        ),
        (
            COMPOSED.replace("label = \"redis\"\nmanager = \"container\"\n", "label = \"redis\"\nmanager = \"container\"\ncontainer = \"redis-1\"\n"),
            "not both",
        ),
        (
            COMPOSED.replace("compose_command = [\"docker-compose\"]", "compose_command = []"),
            "needs a program",
        ),
    ];
    for (text, want) in cases {
        assert_ne!(text, COMPOSED, "the case must change the file ({want})");
        let e = parse(&text).expect_err(want);
        assert!(e.to_string().contains(want), "{e} (wanted {want:?})");
        assert!(e.line > 0, "{e}");
    }
}

#[test]
fn heal_hooks_are_read_with_their_defaults() {
    let inv = parse(
        "[[service]]\nlabel = \"worker\"\nmanager = \"systemd\"\n\n\
         [[service.before_restart]]\nkind = \"free-port\"\nport = 3111\ntimeout = \"3s\"\n\n\
         [[service.before_restart]]\nkind = \"command\"\nargv = [\"/usr/bin/logger\", \"restarting\"]\n\n\
         [[service.after_heal]]\nkind = \"http\"\nmethod = \"put\"\nurl = \"http://127.0.0.1:3111/api/inngest\"\n\n\
         [[service.after_heal]]\nkind = \"http\"\nurl = \"http://127.0.0.1:8288/sync\"\n",
    )
    .unwrap();
    let hooks = &inv.services[0].hooks;
    assert_eq!(
        hooks.before_restart,
        vec![
            Hook {
                action: HookAction::FreePort { port: 3111 },
                timeout: Duration::from_secs(3),
            },
            Hook {
                action: HookAction::Command {
                    argv: vec!["/usr/bin/logger".into(), "restarting".into()],
                },
                timeout: Duration::from_secs(10),
            },
        ]
    );
    assert_eq!(
        hooks.after_heal[0].action,
        HookAction::Http {
            method: "PUT".into(),
            url: "http://127.0.0.1:3111/api/inngest".into(),
        }
    );
    assert_eq!(
        hooks.after_heal[1].action,
        HookAction::Http {
            method: "POST".into(),
            url: "http://127.0.0.1:8288/sync".into(),
        },
        "a webhook's method by default"
    );
    assert!(parse("[[service]]\nlabel = \"a\"\nmanager = \"null\"\n")
        .unwrap()
        .services[0]
        .hooks
        .is_empty());
}

#[test]
fn bad_hooks_are_refused_at_their_line_and_key() {
    let svc = "[[service]]\nlabel = \"worker\"\nmanager = \"systemd\"\n\n";
    let cases: &[(&str, InventoryErrorKind, &str, &str)] = &[
        (
            "[[service.after_heal]]\nkind = \"command\"\nurl = \"http://x/\"\n",
            InventoryErrorKind::Invalid,
            "url =",
            "service.after_heal.url",
        ),
        (
            "[[service.after_heal]]\nkind = \"command\"\n",
            InventoryErrorKind::MissingKey,
            "[[service.after_heal]]",
            "service.after_heal.argv",
        ),
        (
            "[[service.before_restart]]\nkind = \"command\"\nargv = []\n",
            InventoryErrorKind::Invalid,
            "argv = []",
            "service.before_restart.argv",
        ),
        (
            "[[service.after_heal]]\nkind = \"http\"\nmethod = \"FETCH\"\nurl = \"http://127.0.0.1/x\"\n",
            InventoryErrorKind::Invalid,
            "FETCH",
            "service.after_heal.method",
        ),
        (
            "[[service.after_heal]]\nkind = \"http\"\nurl = \"https://example.com/x\"\n",
            InventoryErrorKind::Invalid,
            "https://",
            "service.after_heal.url",
        ),
        (
            "[[service.before_restart]]\nkind = \"free-port\"\nport = 70000\n",
            InventoryErrorKind::Invalid,
            "70000",
            "service.before_restart.port",
        ),
        (
            "[[service.before_restart]]\nkind = \"free-port\"\nport = 80\ntimeout = \"0s\"\n",
            InventoryErrorKind::Invalid,
            "timeout",
            "service.before_restart.timeout",
        ),
        (
            "[[service.before_restart]]\nkind = \"reboot\"\n",
            InventoryErrorKind::Invalid,
            "reboot",
            "service.before_restart.kind",
        ),
    ];
    for (hook, kind, needle, key) in cases {
        assert_error(&format!("{svc}{hook}"), *kind, needle, key);
    }
    // Never run, so never written: hooks on a monitor-only service.
    let text = "[[service]]\nlabel = \"w\"\nmanager = \"null\"\nmonitor_only = true\n\n\
                [[service.after_heal]]\nkind = \"command\"\nargv = [\"/bin/true\"]\n";
    assert_error(
        text,
        InventoryErrorKind::Invalid,
        "[[service.after_heal]]",
        "service.monitor_only",
    );
    // A container's own process is not known: no port to free on its behalf.
    let text = "[substrate]\nname = \"colima\"\n\n[[service]]\nlabel = \"redis\"\nmanager = \"container\"\n\n\
                [[service.before_restart]]\nkind = \"free-port\"\nport = 6379\n";
    assert_error(
        text,
        InventoryErrorKind::Invalid,
        "[[service.before_restart]]",
        "service.before_restart.kind",
    );
}
