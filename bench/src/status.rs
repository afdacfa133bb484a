//! (d) `status` of 200 systemd units: the agent's `status` command (inside the container, on
//! its own system bus; without and with an agent running there), the systemd adapter alone (200 `inspect`s at once over the bus), one
//! batched `systemctl show` of the same properties, and a `systemctl show` per unit in a loop.

use std::path::Path;
use std::time::{Duration, Instant};

use adapters_linux::{BusAddress, SystemdProcessManager};
use process_manager::{ProcessManagerPort, ServiceLabel};

use crate::peers::Container;
use crate::procs::write;
use crate::{table, Series};

const UNITS: usize = 200;
const PREFIX: &str = "joelclaw-bench-st-";
/// The properties the adapter reads (its `systemctl show -p` list).
const PROPERTIES: &str = "Id,LoadState,ActiveState,SubState,MainPID,NRestarts,ExecMainCode,ExecMainStatus,Result,UnitFileState,FragmentPath,NeedDaemonReload";

fn names() -> Vec<String> {
    (0..UNITS).map(|i| format!("{PREFIX}{i:03}")).collect()
}

fn install(c: &Container) {
    for name in names() {
        write(
            &c.path(&format!("/etc/systemd/system/{name}.service")),
            "[Service]\nExecStart=/bin/sleep infinity\n",
        );
    }
    c.run_ok(&["systemctl", "daemon-reload"]);
    let mut argv = vec!["systemctl".to_string(), "start".into()];
    argv.extend(names().iter().map(|n| format!("{n}.service")));
    let words: Vec<&str> = argv.iter().map(String::as_str).collect();
    c.run_ok(&words);
}

fn remove(c: &Container) {
    let mut argv = vec!["systemctl".to_string(), "stop".into()];
    argv.extend(names().iter().map(|n| format!("{n}.service")));
    let words: Vec<&str> = argv.iter().map(String::as_str).collect();
    c.run(&words);
    for name in names() {
        let _ = std::fs::remove_file(c.path(&format!("/etc/systemd/system/{name}.service")));
    }
    c.run(&["systemctl", "daemon-reload"]);
}

/// Times `script` (bash, run inside the container) `n` times, in ms, by bash's own clock.
fn timed_inside(c: &Container, script: &str, n: usize) -> Vec<Option<f64>> {
    let wrapper = format!(
        "for i in $(seq {n}); do s=$EPOCHREALTIME; {{ {script} ; }} >/dev/null 2>&1; e=$EPOCHREALTIME; echo \"$s $e\"; done"
    );
    let out = c.run_ok(&["env", "LC_ALL=C", "bash", "-c", &wrapper]);
    out.lines()
        .filter_map(|l| {
            let v: Vec<f64> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.len() == 2).then(|| Some((v[1] - v[0]) * 1000.0))
        })
        .collect()
}

async fn adapter_inspects(pm: &SystemdProcessManager, labels: &[ServiceLabel]) -> f64 {
    let start = Instant::now();
    let all = futures::future::join_all(labels.iter().map(|l| pm.inspect(l))).await;
    let took = start.elapsed().as_secs_f64() * 1000.0;
    let running = all
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|s| s.is_running()))
        .count();
    assert_eq!(running, labels.len(), "every unit read as running");
    took
}

pub(crate) fn run(c: &Container, agent: &Path, n: usize) -> String {
    install(c);
    let inside = "/run/joelclaw-bench-status";
    std::fs::create_dir_all(c.path(inside)).unwrap();
    let _ = std::fs::remove_file(c.path(&format!("{inside}/joelclaw-node")));
    std::fs::copy(agent, c.path(&format!("{inside}/joelclaw-node"))).unwrap();
    let mut inventory =
        format!("[node]\nid = \"bench\"\nrole = \"fleet\"\nlog_dir = \"{inside}/logs\"\n");
    for name in names() {
        inventory.push_str(&format!(
            "\n[[service]]\nlabel = \"{name}\"\nmanager = \"systemd\"\nclass = \"app-level\"\n\n[[service.probe]]\nkind = \"process\"\n"
        ));
    }
    write(&c.path(&format!("{inside}/inventory.toml")), &inventory);
    let units: Vec<String> = names().iter().map(|n| format!("{n}.service")).collect();

    let status = timed_inside(
        c,
        &format!("{inside}/joelclaw-node status --inventory {inside}/inventory.toml --state-dir {inside}/state"),
        n,
    );
    // The same with an agent running on that inventory: `status` reads its snapshot over the
    // agent's socket, then the units' states (the agent's own rounds load the bus meanwhile).
    let running = c.run_agent(
        inside,
        std::process::Stdio::null(),
        std::process::Stdio::null(),
    );
    std::thread::sleep(Duration::from_secs(5));
    let status_with_agent = timed_inside(
        c,
        &format!("{inside}/joelclaw-node status --inventory {inside}/inventory.toml --state-dir {inside}/state"),
        n,
    );
    if let Some(p) = crate::procs::find_root(&format!("{inside}/inventory.toml --state-dir")) {
        crate::procs::signal(p, nix::sys::signal::Signal::SIGTERM);
        std::thread::sleep(Duration::from_secs(2));
    }
    crate::peers::stop_child(running);
    let batched = timed_inside(
        c,
        &format!("systemctl show -p {PROPERTIES} {}", units.join(" ")),
        n,
    );
    let per_unit = timed_inside(
        c,
        &format!(
            "for u in {}; do systemctl show -p {PROPERTIES} $u; done",
            units.join(" ")
        ),
        n,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pm = SystemdProcessManager::system()
        .with_command_prefix(["nsenter", "-t", &c.pid.to_string(), "-a"])
        .with_unit_dir(c.path("/etc/systemd/system"))
        .with_query_deadline(Duration::from_secs(10))
        .with_bus(BusAddress::Address(format!(
            "unix:path={}",
            c.path("/run/dbus/system_bus_socket").display()
        )));
    let labels: Vec<ServiceLabel> = names()
        .iter()
        .map(|n| ServiceLabel::new(n).unwrap())
        .collect();
    let adapter: Vec<Option<f64>> = rt.block_on(async {
        // The first call makes the connection; it is not a `status` cost to repeat.
        adapter_inspects(&pm, &labels).await;
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(Some(adapter_inspects(&pm, &labels).await));
        }
        v
    });
    remove(c);
    table(
        "(d) status of 200 systemd units",
        "ms",
        &[
            Series {
                what: "agent: joelclaw-node status (whole command, no agent running)".into(),
                samples: status,
            },
            Series {
                what: "agent: joelclaw-node status (whole command, agent running)".into(),
                samples: status_with_agent,
            },
            Series {
                what: "agent: systemd adapter, 200 inspects over the bus".into(),
                samples: adapter,
            },
            Series {
                what: "systemctl show, one batched call".into(),
                samples: batched,
            },
            Series {
                what: "systemctl show per unit, in a loop".into(),
                samples: per_unit,
            },
        ],
    )
}
