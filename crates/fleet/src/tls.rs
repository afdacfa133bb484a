//! TLS to Central's Redis (`rediss://`): the trust anchors (the system's roots, or a private CA
//! from `fleet.ca_file`) and an optional client certificate for mutual TLS (`fleet.cert_file` and
//! `fleet.key_file`). Everything is read and checked before anything connects, so a wrong file is
//! named at start rather than found at the first reconnect.
//!
//! The TLS itself is the `redis` crate's rustls support, with rustls's `ring` provider (the one
//! the rest of the agent already uses), installed as the process default when none is: `redis`
//! builds its TLS settings from that default.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{read_private, FleetConfig, FleetError};

/// The certificates `redis::Client::build_with_tls` takes, from the configured files; `None`
/// when neither a CA nor a client certificate is configured (the system roots are used).
pub(crate) fn certificates(
    config: &FleetConfig,
) -> Result<Option<redis::TlsCertificates>, FleetError> {
    let root_cert = match &config.ca_file {
        Some(path) => Some(read_certificates("fleet.ca_file", path)?),
        None => None,
    };
    let client_tls = match (&config.cert_file, &config.key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(client_identity(cert, key)?),
        (Some(_), None) | (None, Some(_)) => {
            return Err(FleetError::Config(
                "fleet.cert_file and fleet.key_file go together (a client certificate and its key, for mutual TLS)".into(),
            ))
        }
    };
    if root_cert.is_none() && client_tls.is_none() {
        return Ok(None);
    }
    Ok(Some(redis::TlsCertificates {
        client_tls,
        root_cert,
    }))
}

/// Makes rustls's `ring` provider the process default unless one is set already (by this or
/// another part of the agent): `redis` builds every TLS connection from that default, and rustls
/// could not pick one by itself if a second provider were ever compiled in.
pub(crate) fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: a default is then set.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// A PEM file of one or more certificates (a CA, or a client certificate chain).
fn read_certificates(key: &str, path: &Path) -> Result<Vec<u8>, FleetError> {
    let bad = |what: String| FleetError::Config(format!("{key} {}: {what}", path.display()));
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = parse_certificates(&pem).map_err(bad)?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate (BEGIN CERTIFICATE)".into()));
    }
    Ok(pem)
}

fn parse_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate: {e}"))
}

/// The client certificate and its key, checked to belong together.
fn client_identity(cert: &Path, key: &Path) -> Result<redis::ClientTlsConfig, FleetError> {
    let client_cert = read_certificates("fleet.cert_file", cert)?;
    let client_key = read_private("fleet.key_file", key, "the private key")?;
    let bad_key =
        |what: String| FleetError::Config(format!("fleet.key_file {}: {what}", key.display()));
    let parsed_key = PrivateKeyDer::from_pem_slice(client_key.as_bytes())
        .map_err(|e| bad_key(format!("no PEM private key in it ({e})")))?;
    let chain = parse_certificates(client_cert.as_slice())
        .map_err(|e| FleetError::Config(format!("fleet.cert_file {}: {e}", cert.display())))?;
    rustls::sign::CertifiedKey::from_der(
        chain,
        parsed_key,
        &rustls::crypto::ring::default_provider(),
    )
    .map_err(|e| {
        FleetError::Config(format!(
            "fleet.cert_file {} and fleet.key_file {}: not a usable certificate and key pair ({e})",
            cert.display(),
            key.display()
        ))
    })?;
    Ok(redis::ClientTlsConfig {
        client_cert,
        client_key: client_key.into_bytes(),
    })
}
