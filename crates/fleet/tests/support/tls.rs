//! A real `redis-server` speaking TLS only, on a loopback port, with certificates made for the
//! test: a private CA, a server certificate for 127.0.0.1, a client certificate, and a second,
//! unrelated CA (the wrong one).

use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use super::redis_server_binary;

/// The test's certificates, as PEM files in one folder.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// Makes them all.
    pub(crate) fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().expect("a temp dir"),
        };
        let (ca_cert, issuer) = ca("joelclaw test central CA");
        pki.write("ca.pem", &ca_cert.pem());
        let (server, server_key) = leaf(
            &issuer,
            "central",
            vec![SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST))],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        pki.write("server.pem", &server);
        pki.write("server.key", &server_key);
        let (client, client_key) = leaf(
            &issuer,
            "node-a",
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        pki.write("client.pem", &client);
        pki.write_private("client.key", &client_key);
        let (other, _) = ca("some other CA");
        pki.write("other-ca.pem", &other.pem());
        pki
    }

    /// A file of it: `ca.pem`, `other-ca.pem`, `server.pem`, `server.key`, `client.pem`,
    /// `client.key` (mode 0600).
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, pem: &str) {
        std::fs::write(self.path(name), pem).expect("write a PEM file");
    }

    fn write_private(&self, name: &str, pem: &str) {
        use std::os::unix::fs::PermissionsExt;
        self.write(name, pem);
        std::fs::set_permissions(self.path(name), std::fs::Permissions::from_mode(0o600))
            .expect("chmod 600");
    }
}

/// A self-signed CA: its certificate, and the issuer that signs with it.
fn ca(name: &str) -> (rcgen::Certificate, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().expect("a CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("a self-signed CA");
    (cert, Issuer::new(params, key))
}

fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    name: &str,
    sans: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = KeyPair::generate().expect("a key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.subject_alt_names = sans;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let cert = params
        .signed_by(&key, issuer)
        .expect("a signed certificate");
    (cert.pem(), key.serialize_pem())
}

/// One private `redis-server` with TLS on a loopback port and no plain port.
pub(crate) struct TlsRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    /// Starts it with the test's server certificate; `require_client_cert` makes it refuse
    /// clients without a certificate from the test's CA (`tls-auth-clients yes`). `None` when the
    /// test is skipped (no `redis-server`, outside CI).
    pub(crate) fn start(pki: &Pki, require_client_cert: bool) -> Option<TlsRedis> {
        let binary = redis_server_binary()?;
        let dir = tempfile::tempdir().expect("a temp dir");
        let port = free_port();
        let child = Command::new(binary)
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--tls-port", &port.to_string()])
            .arg("--tls-cert-file")
            .arg(pki.path("server.pem"))
            .arg("--tls-key-file")
            .arg(pki.path("server.key"))
            .arg("--tls-ca-cert-file")
            .arg(pki.path("ca.pem"))
            .args([
                "--tls-auth-clients",
                if require_client_cert { "yes" } else { "no" },
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let mut redis = TlsRedis {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..500 {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return Some(redis);
            }
            if let Ok(Some(status)) = redis.child.try_wait() {
                panic!("redis-server with TLS exited ({status}): is it built with TLS?");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not listen on 127.0.0.1:{port} (TLS) in 5 s");
    }

    /// Its TLS port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// `rediss://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    listener.local_addr().expect("its address").port()
}
