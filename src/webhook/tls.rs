//! The serving certificate: loading it (at start and on rotation) into a rustls
//! configuration that offers HTTP/2 and HTTP/1.1, and reading its expiry.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum_server::tls_rustls::RustlsConfig;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate/key pair cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: no PEM certificate found")]
    NoCertificate { path: PathBuf },
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("certificate and key do not form a usable pair: {0}")]
    Pair(rustls::Error),
    #[error("{path}: cannot read the certificate's validity: {message}")]
    Validity { path: PathBuf, message: String },
}

/// A parsed, consistent certificate/key pair ready to serve.
pub struct Loaded {
    pub config: Arc<ServerConfig>,
    /// The serving certificate's notAfter, in Unix seconds.
    pub not_after: i64,
}

/// The certificate being served: shared by the listener, which hands it to
/// every new connection, and the reloader, which swaps in a rotated one. Open
/// connections keep the one they started with.
#[derive(Clone)]
pub struct CertStore {
    rustls: RustlsConfig,
    not_after: Arc<AtomicI64>,
}

impl CertStore {
    /// Loads the pair from its PEM files.
    pub fn load(cert: &Path, key: &Path) -> Result<CertStore, TlsError> {
        let pem = read_pair(cert, key)?;
        let loaded = load(cert, &pem.0, key, &pem.1)?;
        Ok(CertStore {
            rustls: RustlsConfig::from_config(loaded.config),
            not_after: Arc::new(AtomicI64::new(loaded.not_after)),
        })
    }

    /// The configuration handed to new connections.
    pub fn rustls(&self) -> &RustlsConfig {
        &self.rustls
    }

    /// The notAfter of the certificate in use, in Unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after.load(Ordering::SeqCst)
    }

    /// Serves a new, already validated pair to new connections.
    pub fn replace(&self, loaded: Loaded) {
        self.rustls.reload_from_config(loaded.config);
        self.not_after.store(loaded.not_after, Ordering::SeqCst);
    }
}

/// Reads a certificate chain and its key from PEM files.
pub fn read_pair(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let read = |path: &Path| std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source });
    Ok((read(cert)?, read(key)?))
}

/// Builds the serving configuration from PEM bytes: the key must match the
/// certificate; TLS 1.2 and 1.3 (rustls supports nothing older); ALPN `h2`
/// and `http/1.1`.
pub fn load(cert_path: &Path, cert_pem: &[u8], key_path: &Path, key_pem: &[u8]) -> Result<Loaded, TlsError> {
    let pem_error =
        |path: &Path, e: rustls::pki_types::pem::Error| TlsError::Pem { path: path.to_owned(), message: e.to_string() };
    let chain =
        CertificateDer::pem_slice_iter(cert_pem).collect::<Result<Vec<_>, _>>().map_err(|e| pem_error(cert_path, e))?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate { path: cert_path.to_owned() });
    };
    let not_after = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| TlsError::Validity { path: cert_path.to_owned(), message: e.to_string() })?
        .1
        .validity()
        .not_after
        .timestamp();
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| pem_error(key_path, e))?;
    let mut config =
        ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key).map_err(TlsError::Pair)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Loaded { config: Arc::new(config), not_after })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn install_crypto() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    #[test]
    fn loads_a_matching_pair_and_reads_its_expiry() {
        install_crypto();
        let bundle = crate::webhook::certs::generate(&["localhost".into()], &[], 10).unwrap();
        let loaded =
            load(Path::new("c"), bundle.cert_pem.as_bytes(), Path::new("k"), bundle.key_pem.as_bytes()).unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!((loaded.not_after - (now + 10 * 86400)).abs() < 120, "{} vs {now}", loaded.not_after);
        assert_eq!(loaded.config.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    }

    #[test]
    fn rejects_a_key_of_another_certificate_and_garbage() {
        install_crypto();
        let one = crate::webhook::certs::generate(&["localhost".into()], &[], 10).unwrap();
        let two = crate::webhook::certs::generate(&["localhost".into()], &[], 10).unwrap();
        let mismatch = load(Path::new("c"), one.cert_pem.as_bytes(), Path::new("k"), two.key_pem.as_bytes());
        assert_eq!(
            mismatch.err().unwrap().to_string(),
            "certificate and key do not form a usable pair: keys may not be consistent: KeyMismatch"
        );
        let empty = load(Path::new("c.pem"), b"nothing here", Path::new("k"), one.key_pem.as_bytes());
        assert_eq!(empty.err().unwrap().to_string(), "c.pem: no PEM certificate found");
    }
}
