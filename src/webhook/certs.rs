//! Development and bootstrap certificates (`portcullis certs`): a CA and a
//! serving certificate signed by it, for `make run`, the TLS tests, and
//! clusters without cert-manager (the CA goes into the webhook's `caBundle`).

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use time::{Duration, OffsetDateTime};

/// PEM-encoded CA certificate, serving certificate and serving key.
#[derive(Clone, Debug)]
pub struct Bundle {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Bundle {
    /// The base64 of the CA certificate's PEM, as a webhook's `caBundle` wants it.
    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
    }
}

/// Generates a CA (valid `days` × 2) and a serving certificate for the given
/// DNS names and IP addresses (valid `days`). Keys are ECDSA P-256.
pub fn generate(dns: &[String], ips: &[IpAddr], days: i64) -> Result<Bundle, rcgen::Error> {
    let now = OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(DnType::CommonName, "portcullis CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca.not_before = now - Duration::hours(1);
    ca.not_after = now + Duration::days(days * 2);
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);

    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(dns.to_vec())?;
    leaf.subject_alt_names.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    let common_name = dns.first().map(String::as_str).unwrap_or("portcullis");
    leaf.distinguished_name.push(DnType::CommonName, common_name);
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = now - Duration::hours(1);
    leaf.not_after = now + Duration::days(days);
    let cert = leaf.signed_by(&key, &issuer)?;

    Ok(Bundle { ca_pem: ca_cert.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// Writes `ca.crt`, `tls.crt` and `tls.key` (mode 0600) into `dir`, creating it.
pub fn write(dir: &Path, bundle: &Bundle) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("ca.crt"), &bundle.ca_pem)?;
    std::fs::write(dir.join("tls.crt"), &bundle.cert_pem)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(dir.join("tls.key"))?.write_all(bundle.key_pem.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_ca_and_a_serving_certificate() {
        let bundle =
            generate(&["portcullis.portcullis-system.svc".into()], &["127.0.0.1".parse().unwrap()], 30).unwrap();
        assert!(bundle.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(bundle.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(bundle.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_ne!(bundle.ca_pem, bundle.cert_pem);
        let decoded = base64::engine::general_purpose::STANDARD.decode(bundle.ca_bundle()).unwrap();
        assert_eq!(decoded, bundle.ca_pem.as_bytes());
    }
}
