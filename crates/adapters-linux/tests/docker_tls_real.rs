//! A remote engine over TLS: a dockerd of this test's own listening on `tcp://127.0.0.1` with
//! `--tlsverify` (certificates made here with `openssl`), reached with a client certificate,
//! key and CA; a wrong CA or plain HTTP is refused within the deadline. Needs root and dockerd,
//! as the harness's own dockerd does (its presence is the signal).
#![cfg(feature = "docker-tls")]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use adapters_linux::{DockerRuntime, DockerTls};
use container_runtime::{EnginePort, RuntimeError, SubstratePort};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, in `dir` (client files
/// named as Docker's CLI wants them: ca.pem, cert.pem, key.pem).
fn certificates(dir: &Path) {
    let days = ["-days", "2"];
    openssl(
        dir,
        &[
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca-key.pem",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=jc-test-ca",
            ][..],
            &days,
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, cn, ext) in [
        ("server", "127.0.0.1", "server.ext"),
        ("client", "jc-client", "client.ext"),
    ] {
        let key = if name == "client" {
            "key.pem".to_string()
        } else {
            format!("{name}-key.pem")
        };
        let cert = if name == "client" {
            "cert.pem".to_string()
        } else {
            format!("{name}-cert.pem")
        };
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        openssl(
            dir,
            &[
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca-key.pem",
                    "-CAcreateserial",
                    "-out",
                    &cert,
                    "-extfile",
                    ext,
                ][..],
                &days,
            ]
            .concat(),
        );
    }
}

/// This test's dockerd, stopped (and its state removed) when dropped.
struct TlsDaemon {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl TlsDaemon {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        certificates(dir.path());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p = |name: &str| dir.path().join(name).display().to_string();
        let child = Command::new("dockerd")
            .args([
                "--data-root",
                &p("data"),
                "--exec-root",
                &p("exec"),
                "--pidfile",
                &p("dockerd.pid"),
            ])
            .args(["--host", &format!("tcp://127.0.0.1:{port}"), "--tlsverify"])
            .args([
                "--tlscacert",
                &p("ca.pem"),
                "--tlscert",
                &p("server-cert.pem"),
                "--tlskey",
                &p("server-key.pem"),
            ])
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--ip-masq=false",
                "--userland-proxy=false",
                "--log-level=warn",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("dockerd.log")).unwrap())
            .spawn()
            .expect("dockerd");
        TlsDaemon { child, dir, port }
    }

    fn tls(&self) -> DockerTls {
        let p = |name: &str| -> PathBuf { self.dir.path().join(name) };
        DockerTls {
            ca: p("ca.pem"),
            cert: p("cert.pem"),
            key: p("key.pem"),
        }
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsDaemon {
    fn drop(&mut self) {
        // SIGTERM: dockerd unmounts what it mounted under its folders before it exits.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .output();
        let limit = Instant::now() + Duration::from_secs(30);
        while Instant::now() < limit {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_tls_engine_is_reached_with_its_client_certificate_and_refused_without() {
    // The harness's dockerd says this machine runs one (and the test runs as root).
    if support::daemon_env("JOELCLAW_TEST_DOCKER_HOST", "a real dockerd").is_none() {
        return;
    }
    let daemon = TlsDaemon::start();
    let engine = DockerRuntime::connect(&daemon.url())
        .unwrap()
        .with_tls(daemon.tls())
        .with_deadline(Duration::from_secs(2));
    let limit = Instant::now() + Duration::from_secs(60);
    // A client is built (and its version agreed) on first success only; until the daemon
    // listens, each call fails and the next one tries again.
    while !engine.is_healthy().await.unwrap_or(false) {
        let log =
            std::fs::read_to_string(daemon.dir.path().join("dockerd.log")).unwrap_or_default();
        assert!(
            Instant::now() < limit,
            "the TLS dockerd never answered: {log}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let listed = engine.list_containers(None).await.expect("list over TLS");
    assert!(listed.is_empty(), "{listed:?}");

    // Plain HTTP to the TLS port: not healthy, within the deadline.
    let plain = DockerRuntime::connect(&daemon.url())
        .unwrap()
        .with_deadline(Duration::from_secs(2));
    let r = tokio::time::timeout(Duration::from_secs(20), plain.is_healthy()).await;
    assert!(!r.expect("must not hang").unwrap_or(false));

    // A CA that did not sign the server: refused, within the deadline.
    let other = tempfile::tempdir().unwrap();
    certificates(other.path());
    let wrong = DockerRuntime::connect(&daemon.url())
        .unwrap()
        .with_tls(DockerTls {
            ca: other.path().join("ca.pem"),
            ..daemon.tls()
        })
        .with_deadline(Duration::from_secs(2));
    let r = tokio::time::timeout(Duration::from_secs(20), wrong.list_containers(None)).await;
    assert!(r.expect("must not hang").is_err());

    // A missing file is named before any connection.
    let missing = DockerRuntime::connect(&daemon.url())
        .unwrap()
        .with_tls(DockerTls {
            key: "/nonexistent/key.pem".into(),
            ..daemon.tls()
        });
    match missing.inspect_container("x").await {
        Err(e @ RuntimeError::InvalidInput { .. }) => {
            assert!(e.to_string().contains("/nonexistent/key.pem"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

/// An engine address that accepts connections and never answers (a hung daemon, a firewall
/// that swallows): plain or TLS, every call is a timeout at the deadline, never a wait.
#[tokio::test]
async fn a_silent_tcp_engine_is_a_timeout_plain_or_tls() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    // The kernel completes each handshake into the backlog; nothing ever reads or writes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://{}", silent.local_addr().unwrap());
    let deadline = Duration::from_millis(400);
    let tls = DockerTls {
        ca: dir.path().join("ca.pem"),
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    };
    for (what, rt) in [
        ("plain", DockerRuntime::connect(&url).unwrap()),
        ("TLS", DockerRuntime::connect(&url).unwrap().with_tls(tls)),
    ] {
        let rt = rt.with_deadline(deadline);
        let asked = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(10), rt.list_containers(None))
            .await
            .unwrap_or_else(|_| panic!("{what}: a silent engine hung the call"));
        match answer {
            Err(RuntimeError::Timeout { after, .. }) => assert_eq!(after, deadline, "{what}"),
            other => panic!("{what}: expected a timeout, got {other:?}"),
        }
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "{what}: {:?}",
            asked.elapsed()
        );
        let healthy = tokio::time::timeout(Duration::from_secs(10), rt.is_healthy())
            .await
            .unwrap_or_else(|_| panic!("{what}: is_healthy hung"));
        assert!(!matches!(healthy, Ok(true)), "{what}: {healthy:?}");
    }
    drop(silent);
}
