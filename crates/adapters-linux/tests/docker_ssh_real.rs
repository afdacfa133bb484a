//! A remote engine over SSH, for real: a private sshd of this test's own on 127.0.0.2:22
//! (bollard's SSH client takes no port, so the engine's "host" is a loopback address of its
//! own), whose sessions get `DOCKER_HOST` pointing at the harness's dockerd, so that
//! `docker system dial-stdio` there reaches it. The agent's key sits in a private `ssh-agent`.
//! The engine half's conformance suite runs over it, scenario by scenario.
#![cfg(feature = "docker-ssh")]

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use adapters_linux::DockerRuntime;
use container_runtime::testkit::{self, Fixture};
use container_runtime::EnginePort;
use support::TestContainer;

const SSH_HOST: &str = "127.0.0.2";

/// A process stopped when the test ends, passing or not.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(program: &str, args: &[&str], env: &[(&str, &Path)]) {
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
}

/// Until `what` holds, within 30 s.
fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let limit = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < limit, "{what}: not within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The sshd and the agent holding the key that it lets in, and the host key entry the ssh
/// client adds to known_hosts (removed again when dropped). bollard starts an ssh control
/// master per HTTP connection, several at once: sshd is told to accept that many.
struct SshEngine {
    _sshd: Reaped,
    _agent: Reaped,
    _dir: tempfile::TempDir,
}

impl SshEngine {
    fn start(docker_host: &str) -> SshEngine {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for key in ["host_key", "client_key"] {
            let path = d.join(key);
            run(
                "ssh-keygen",
                &[
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-f",
                    path.to_str().unwrap(),
                ],
                &[],
            );
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        let config = format!(
            "ListenAddress {SSH_HOST}:22\nHostKey {host_key}\nPidFile {pid}\n\
             AuthorizedKeysFile {keys}\nStrictModes no\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             SetEnv DOCKER_HOST={docker_host}\nLogLevel ERROR\n\
             MaxStartups 100\nMaxSessions 100\n",
            host_key = d.join("host_key").display(),
            pid = d.join("sshd.pid").display(),
            keys = d.join("authorized_keys").display(),
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        // bollard's client takes no port: the engine's "host" is 127.0.0.2:22, which a system
        // sshd listening on every address would already hold.
        assert!(
            std::net::TcpStream::connect((SSH_HOST, 22)).is_err(),
            "{SSH_HOST}:22 is taken (a system sshd on 0.0.0.0?): this test runs its own sshd there; stop the other one"
        );
        // sshd's privilege separation folder.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let sshd = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .spawn()
            .expect("sshd (package openssh-server)");
        let sshd = Reaped(sshd);
        let agent_sock = d.join("agent.sock");
        let agent = Command::new("ssh-agent")
            .args(["-D", "-a"])
            .arg(&agent_sock)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent");
        let agent = Reaped(agent);
        wait_for("ssh-agent listening", || agent_sock.exists());
        run(
            "ssh-add",
            &["-q", d.join("client_key").to_str().unwrap()],
            &[("SSH_AUTH_SOCK", &agent_sock)],
        );
        // (sshd says "kex_exchange_identification: Connection closed by remote host" of this
        // probe, which connects and hangs up without a word.)
        wait_for("sshd listening", || {
            std::net::TcpStream::connect((SSH_HOST, 22)).is_ok()
        });
        // The ssh client bollard runs finds the key through the agent. This binary's only test:
        // nothing else reads the environment meanwhile.
        std::env::set_var("SSH_AUTH_SOCK", &agent_sock);
        SshEngine {
            _sshd: sshd,
            _agent: agent,
            _dir: dir,
        }
    }
}

impl Drop for SshEngine {
    fn drop(&mut self) {
        // The ssh client accepted the host key on first use (as a person's would): forget it.
        let _ = Command::new("ssh-keygen")
            .args(["-R", SSH_HOST])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_suite_passes_over_ssh() {
    let Some(host) = support::daemon_env("JOELCLAW_TEST_DOCKER_HOST", "a real dockerd") else {
        return;
    };
    let Some(image) = support::daemon_env("JOELCLAW_TEST_DOCKER_IMAGE", "a real dockerd") else {
        return;
    };
    if !Path::new("/usr/sbin/sshd").exists() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "no /usr/sbin/sshd (package openssh-server): CI=true never skips this; run scripts/test"
        );
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIPPED (needs openssh-server: run scripts/test)\n",
        );
        return;
    }
    let _ssh = SshEngine::start(&host);
    let url = format!("ssh://root@{SSH_HOST}");
    let fixture = |scenario: &str| {
        let name = format!("jc-ssh-{scenario}-{}", std::process::id()).replace('_', "-");
        let label = format!("com.joelclaw.test={name}");
        let container = TestContainer::run(&host, &image, &name, &label);
        Fixture::new(false)
            .with_container(name, label)
            .keeping(container)
    };
    let rt = DockerRuntime::connect(&url)
        .unwrap()
        .with_deadline(Duration::from_secs(20));
    let started = Instant::now();
    // The first call over SSH: the engine answers through sshd and dial-stdio.
    let listed = rt.list_containers(None).await.expect("list over SSH");
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "TIMING ssh engine: first answer (ssh master, dial-stdio, version): {} ms; {} containers\n",
            started.elapsed().as_millis(),
            listed.len()
        )
        .as_bytes(),
    );
    testkit::engine_is_named(&rt, &fixture("named")).await;
    testkit::unknown_container_is_not_found(&rt, &fixture("unknown")).await;
    testkit::containers_are_found_listed_and_restarted(&rt, &fixture("restart")).await;
    testkit::start_leaves_a_running_container_alone(&rt, &fixture("start")).await;
    testkit::a_stopped_container_stays_stopped_until_started(&rt, &fixture("stopped")).await;
    // Compose over SSH (its own ssh client) is not part of this run: no Compose service here.
}
