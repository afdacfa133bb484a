//! The Colima path: the VM is the fake `colima` (adapters-macos' tests), its Docker socket a
//! link to the harness's real dockerd. `status` lists the containers with state and health; a
//! container heal goes through the engine; with the VM down, the containers' heals wait, the VM
//! is started, then the containers are healed. One test in this binary: it sets `PATH`.

mod compose_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Instant;

use central_core::EventKind::*;
use central_core::Step;
use compose_support::*;

const FAKE_COLIMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../adapters-macos/tests/fake/colima"
);

/// A `colima` on `bin` that is the fake, except that `start` also brings the VM's socket back
/// (links `link` to the real engine's socket), as a real VM boot would.
fn colima_wrapper(bin: &Path, state: &Path, real_socket: &str, link: &Path) {
    std::fs::create_dir_all(bin).unwrap();
    let script = format!(
        "#!/bin/sh\nexport FAKE_COLIMA_STATE='{}'\nif [ \"$1\" = start ]; then ln -sf '{}' '{}'; fi\nexec '{}' \"$@\"\n",
        state.display(),
        real_socket,
        link.display(),
        FAKE_COLIMA
    );
    let path = bin.join("colima");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colima_status_lists_containers_and_heals_go_through_the_vms_engine() {
    let Some(image) = daemon_env("JOELCLAW_TEST_DOCKER_IMAGE") else {
        return;
    };
    let Some(p) = Project::up("colima", &two_services(&image, "no")) else {
        return;
    };
    let real_socket = p
        .host
        .strip_prefix("unix://")
        .expect("a unix socket")
        .to_string();
    let vm = tempfile::tempdir().unwrap();
    let (bin, state, link) = (
        vm.path().join("bin"),
        vm.path().join("colima-state"),
        vm.path().join("docker.sock"),
    );
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("running"), "").unwrap();
    std::fs::write(state.join("ip"), "192.168.64.2").unwrap();
    std::os::unix::fs::symlink(&real_socket, &link).unwrap();
    colima_wrapper(&bin, &state, &real_socket, &link);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // This binary's only test: nothing else reads PATH meanwhile.
    std::env::set_var("PATH", &path);

    let substrate = format!(
        "[substrate]\nname = \"colima\"\nkind = \"colima\"\nendpoint = \"unix://{}\"\ncompose_command = [\"docker-compose\"]\nstart_timeout = \"60s\"",
        link.display()
    );
    let inv = p.inventory(&substrate, "");

    // `status`: the containers with their state and health, through the VM's engine.
    status_lists_both_containers(&p, &image, Some(std::ffi::OsStr::new(&path)));

    // A container heal goes through the VM's engine.
    let agent_state = tempfile::tempdir().unwrap();
    let mut heal = heal_loop(&inv, agent_state.path());
    run_until(&mut heal, "all healthy", |_| true).await;
    p.docker(&["kill", "-s", "KILL", &p.container_of("app")]);
    let events = run_until(&mut heal, "app healed", |e| {
        had(e, "app", HealSucceeded, None)
    })
    .await;
    assert_eq!(steps(&events, "app"), [Step::Restart]);
    let restarted = events
        .iter()
        .find(|e| e.service == "app" && e.event == HealStarted)
        .unwrap();
    assert_eq!(restarted.adapter_type, "colima", "through the VM's engine");

    // The VM goes down (its socket with it) and a container stops meanwhile: the containers'
    // heals wait for the VM, the VM is started, then the container is healed.
    std::fs::remove_file(state.join("running")).unwrap();
    std::fs::remove_file(&link).unwrap();
    p.docker(&["stop", "-t", "1", &p.container_of("app")]);
    // One round with the VM down: its containers are unknown (their engine did not answer),
    // neither healthy nor failing.
    let round = heal.tick().await;
    let status = heal.status();
    for service in ["db", "app"] {
        let s = status.services.iter().find(|s| s.label == service).unwrap();
        assert_eq!(s.health, central_core::Health::Unknown, "{s:?}");
    }
    assert!(
        !round
            .events
            .iter()
            .any(|e| e.service == "app" && e.event == HealStarted),
        "{:#?}",
        round.events
    );
    let started = Instant::now();
    let mut events = round.events;
    let prior = events.clone();
    let healed = |e: &[central_core::HealEvent], service: &str| {
        had(e, service, HealSucceeded, None) || had(&prior, service, HealSucceeded, None)
    };
    events.extend(
        run_until(&mut heal, "VM then app healed", |e| {
            healed(e, "colima") && healed(e, "app")
        })
        .await,
    );
    report(
        "loop: substrate (VM down -> containers healed)",
        started.elapsed(),
    );
    let first = |service: &str, kind| {
        events
            .iter()
            .position(|e| e.service == service && e.event == kind)
            .unwrap_or_else(|| panic!("no {kind:?} for {service}: {events:#?}"))
    };
    // While the VM is down the container is not known to be down (its engine did not answer):
    // no heal of it is tried, and none fails, before the VM is back.
    let vm_back = first("colima", HealSucceeded);
    assert!(
        !events[..vm_back]
            .iter()
            .any(|e| e.service == "app" && matches!(e.event, HealStarted | HealFailed)),
        "{events:#?}"
    );
    assert!(
        first("colima", HealSucceeded) < first("app", HealStarted),
        "{events:#?}"
    );
    assert_eq!(steps(&events, "colima"), [Step::HealSubstrate]);
    let log = std::fs::read_to_string(state.join("argv.log")).unwrap();
    assert_eq!(log.lines().filter(|l| *l == "start").count(), 1, "{log}");
}
