//! TLS client settings for managed Postgres and Redis: rustls with the ring
//! provider, trusting either the CA bundle a setting names or the
//! operating system's roots. Certificates and host names are always
//! verified (`sslmode=require` here means what libpq calls `verify-full`).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// A client configuration trusting the PEM certificates in `ca_file`, or,
/// without one, the system's roots.
pub fn client_config(ca_file: Option<&Path>) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no certificate in it", path.display()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A Postgres URL with libpq's verifying modes (`verify-ca`,
/// `verify-full`), which the driver does not parse, as `require`: this
/// node verifies the certificate and host name in every TLS mode.
pub fn postgres_url(url: &str) -> String {
    url.replace("sslmode=verify-full", "sslmode=require")
        .replace("sslmode=verify-ca", "sslmode=require")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifying_modes_become_require_and_bad_bundles_are_refused() {
        assert_eq!(
            postgres_url("postgres://u@h/db?sslmode=verify-full"),
            "postgres://u@h/db?sslmode=require"
        );
        assert!(client_config(Some(Path::new("/nonexistent.pem"))).is_err());
        let dir = std::env::temp_dir().join(format!("matchd-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, b"no certificate here").expect("write");
        assert!(client_config(Some(&empty)).is_err());
        let _ = std::fs::remove_dir_all(dir);
        assert!(client_config(None).is_ok(), "the system roots");
    }
}
