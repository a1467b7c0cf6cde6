//! TLS material: a throw-away CA and a server certificate for `localhost` / `127.0.0.1` and the
//! advertised host names.

use std::path::Path;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509NameBuilder};

/// PEM-encoded TLS material.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// The CA certificate clients must trust (None when the cert was supplied by the user).
    pub ca_pem: Option<Vec<u8>>,
    /// Server certificate chain PEM.
    pub cert_pem: Vec<u8>,
    /// Server private key PEM (PKCS#8).
    pub key_pem: Vec<u8>,
}

pub(crate) fn new_key() -> Result<PKey<Private>, openssl::error::ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    PKey::from_ec_key(EcKey::generate(&group)?)
}

pub(crate) fn serial() -> Result<openssl::asn1::Asn1Integer, openssl::error::ErrorStack> {
    let mut bn = BigNum::new()?;
    bn.rand(120, MsbOption::MAYBE_ZERO, false)?;
    bn.to_asn1_integer()
}

/// Generates a CA (valid 30 days) and a server certificate signed by it with SAN `localhost`,
/// `127.0.0.1`, `::1` and `extra_names` (DNS names, `*.` wildcards, or IP literals).
pub fn generate(extra_names: &[String]) -> Result<TlsMaterial, openssl::error::ErrorStack> {
    let ca_key = new_key()?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("O", "kvs-signaling-emulator")?;
    name.append_entry_by_text("CN", "kvs-signaling-emulator test CA")?;
    let ca_name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let sn = serial()?;
    b.set_serial_number(&sn)?;
    b.set_subject_name(&ca_name)?;
    b.set_issuer_name(&ca_name)?;
    b.set_pubkey(&ca_key)?;
    let nb = Asn1Time::days_from_now(0)?;
    b.set_not_before(&nb)?;
    let na = Asn1Time::days_from_now(30)?;
    b.set_not_after(&na)?;
    b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()?,
    )?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
    b.append_extension(ski)?;
    b.sign(&ca_key, MessageDigest::sha256())?;
    let ca = b.build();

    let key = new_key()?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("O", "kvs-signaling-emulator")?;
    name.append_entry_by_text("CN", "localhost")?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let sn = serial()?;
    b.set_serial_number(&sn)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(ca.subject_name())?;
    b.set_pubkey(&key)?;
    // A day back, so a client whose clock is behind (clock-skew tests) still accepts it.
    let nb = Asn1Time::from_unix(time_now() - 86_400)?;
    b.set_not_before(&nb)?;
    let na = Asn1Time::days_from_now(30)?;
    b.set_not_after(&na)?;
    b.append_extension(BasicConstraints::new().build()?)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_agreement()
            .build()?,
    )?;
    b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    let mut san = SubjectAlternativeName::new();
    san.dns("localhost").ip("127.0.0.1").ip("::1");
    for n in extra_names {
        if n.parse::<std::net::IpAddr>().is_ok() {
            san.ip(n);
        } else {
            san.dns(n);
        }
    }
    let san = san.build(&b.x509v3_context(Some(&ca), None))?;
    b.append_extension(san)?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(&ca), None))?;
    b.append_extension(ski)?;
    let aki = AuthorityKeyIdentifier::new()
        .keyid(false)
        .build(&b.x509v3_context(Some(&ca), None))?;
    b.append_extension(aki)?;
    b.sign(&ca_key, MessageDigest::sha256())?;
    let cert = b.build();

    Ok(TlsMaterial {
        ca_pem: Some(ca.to_pem()?),
        cert_pem: cert.to_pem()?,
        key_pem: key.private_key_to_pem_pkcs8()?,
    })
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Loads user-supplied PEM files.
pub fn load(cert: &Path, key: &Path) -> std::io::Result<TlsMaterial> {
    Ok(TlsMaterial {
        ca_pem: None,
        cert_pem: std::fs::read(cert)?,
        key_pem: std::fs::read(key)?,
    })
}

/// A server-side acceptor for the material (HTTP/1.1 only, like the C SDK pins).
pub fn acceptor(m: &TlsMaterial) -> Result<native_tls::TlsAcceptor, native_tls::Error> {
    let id = native_tls::Identity::from_pkcs8(&m.cert_pem, &m.key_pem)?;
    native_tls::TlsAcceptor::builder(id)
        .min_protocol_version(Some(native_tls::Protocol::Tlsv12))
        .build()
}
