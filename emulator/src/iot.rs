//! The AWS IoT credentials provider (protocol.md §8.3, §11.4): a separate mutual-TLS listener
//! that trades a device certificate for temporary credentials.
//!
//! `GET /role-aliases/<alias>/credentials` with header `x-amzn-iot-thingname` answers
//! `{"credentials":{"accessKeyId","secretAccessKey","sessionToken","expiration"}}`. The
//! credentials are added to what the SigV4 verifier accepts and honoured until they expire.
//! Device certificates come from the emulator's own device CA: a certificate from any other CA
//! fails the TLS handshake; one of ours must be registered to the thing named in the header
//! (403 otherwise); an unknown role alias is 404. Errors are `{"message": …}` like the service's.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssl::asn1::Asn1Time;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::ssl::{HandshakeError, SslAcceptor, SslMethod, SslStream, SslVerifyMode, SslVersion};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
use openssl::x509::{X509, X509NameBuilder};
use serde_json::json;

use crate::config::Credential;
use crate::events::Event;
use crate::http;
use crate::server::{Shared, lock};
use crate::tls::TlsMaterial;

/// The header AWS IoT takes the thing name from.
pub const THING_NAME_HEADER: &str = "x-amzn-iot-thingname";
/// Expired credentials are kept this long (so the verifier says "expired", not "unknown").
const KEEP_EXPIRED_SECS: i64 = 3600;
/// Bound on a request: handshake plus head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How the issued device private key is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IotKeyFormat {
    /// RSA 2048, PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`), what AWS IoT hands out.
    RsaPkcs1,
    /// RSA 2048, PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    RsaPkcs8,
    /// EC P-256, SEC1 PEM (`BEGIN EC PRIVATE KEY`).
    Ec,
}

impl IotKeyFormat {
    /// Parses `rsa` / `pkcs8` / `ec`.
    pub fn parse(s: &str) -> Option<IotKeyFormat> {
        match s {
            "rsa" | "pkcs1" => Some(IotKeyFormat::RsaPkcs1),
            "pkcs8" => Some(IotKeyFormat::RsaPkcs8),
            "ec" => Some(IotKeyFormat::Ec),
            _ => None,
        }
    }
}

/// Settings of the IoT credentials endpoint (off unless `EmulatorConfig::iot` is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IotConfig {
    /// Port of the mutual-TLS listener; 0 = a free port.
    pub port: u16,
    /// The role alias that exists.
    pub role_alias: String,
    /// Thing the first device certificate is registered to; None = the channel name (the KVS
    /// convention: thing name = channel name).
    pub thing_name: Option<String>,
    /// Lifetime of the issued credentials (the service: the role alias's
    /// `credentialDurationSeconds`, 900..43200; any value ≥ 1 here, for tests).
    pub credential_seconds: u64,
    /// Encoding of the first device's key.
    pub key_format: IotKeyFormat,
}

impl Default for IotConfig {
    fn default() -> Self {
        IotConfig {
            port: 0,
            role_alias: "kvs-viewer-role-alias".into(),
            thing_name: None,
            credential_seconds: 3600,
            key_format: IotKeyFormat::RsaPkcs1,
        }
    }
}

/// A device certificate and key written to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IotDevice {
    /// The thing the certificate is registered to.
    pub thing_name: String,
    /// PEM certificate.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

/// What a device needs (also the `KVS_IOT_*` env file lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IotEnv {
    /// `KVS_IOT_CREDENTIALS_ENDPOINT`, `https://127.0.0.1:PORT`.
    pub endpoint: String,
    /// `KVS_IOT_ROLE_ALIAS`.
    pub role_alias: String,
    /// `KVS_IOT_THING_NAME`.
    pub thing_name: String,
    /// `KVS_IOT_CERT_FILE`.
    pub cert_file: PathBuf,
    /// `KVS_IOT_KEY_FILE`.
    pub key_file: PathBuf,
    /// `KVS_IOT_CA_FILE`: the CA of the endpoint's server certificate.
    pub ca_file: PathBuf,
    /// The directory holding the device files.
    pub dir: PathBuf,
}

impl IotEnv {
    /// `(name, value)` pairs for the env file.
    pub fn vars(&self) -> Vec<(String, String)> {
        vec![
            ("KVS_IOT_CREDENTIALS_ENDPOINT".into(), self.endpoint.clone()),
            ("KVS_IOT_ROLE_ALIAS".into(), self.role_alias.clone()),
            ("KVS_IOT_THING_NAME".into(), self.thing_name.clone()),
            (
                "KVS_IOT_CERT_FILE".into(),
                self.cert_file.display().to_string(),
            ),
            (
                "KVS_IOT_KEY_FILE".into(),
                self.key_file.display().to_string(),
            ),
            ("KVS_IOT_CA_FILE".into(), self.ca_file.display().to_string()),
        ]
    }
}

/// The provider's state: its device CA, the registered certificates, the issued credentials.
pub(crate) struct IotProvider {
    cfg: IotConfig,
    ca: X509,
    ca_key: PKey<Private>,
    dir: PathBuf,
    /// SHA-256 of a registered certificate (DER) → thing name.
    registered: Mutex<Vec<(Vec<u8>, String)>>,
    next_device: AtomicU64,
    acceptor: SslAcceptor,
}

impl std::fmt::Debug for IotProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IotProvider")
            .field("cfg", &self.cfg)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn name(cn: &str) -> Result<openssl::x509::X509Name, openssl::error::ErrorStack> {
    let mut n = X509NameBuilder::new()?;
    n.append_entry_by_text("O", "kvs-signaling-emulator")?;
    n.append_entry_by_text("CN", cn)?;
    Ok(n.build())
}

/// A new device CA (valid 30 days), distinct from the server CA like AWS IoT's.
fn device_ca() -> Result<(X509, PKey<Private>), openssl::error::ErrorStack> {
    let key = crate::tls::new_key()?;
    let n = name("kvs-signaling-emulator IoT device CA")?;
    let mut b = X509::builder()?;
    b.set_version(2)?;
    b.set_serial_number(&*crate::tls::serial()?)?;
    b.set_subject_name(&n)?;
    b.set_issuer_name(&n)?;
    b.set_pubkey(&key)?;
    b.set_not_before(&*Asn1Time::days_from_now(0)?)?;
    b.set_not_after(&*Asn1Time::days_from_now(30)?)?;
    b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()?,
    )?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok((b.build(), key))
}

/// A client certificate for `cn` signed by `ca`, with a key of the given form; returns the PEMs.
pub(crate) fn client_certificate(
    ca: &X509,
    ca_key: &PKey<Private>,
    cn: &str,
    format: IotKeyFormat,
) -> Result<(X509, Vec<u8>), openssl::error::ErrorStack> {
    let (key, key_pem) = match format {
        IotKeyFormat::RsaPkcs1 | IotKeyFormat::RsaPkcs8 => {
            let rsa = Rsa::generate(2048)?;
            let pem = match format {
                IotKeyFormat::RsaPkcs1 => rsa.private_key_to_pem()?,
                _ => PKey::from_rsa(rsa.clone())?.private_key_to_pem_pkcs8()?,
            };
            (PKey::from_rsa(rsa)?, pem)
        }
        IotKeyFormat::Ec => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
            let ec = EcKey::generate(&group)?;
            let pem = ec.private_key_to_pem()?;
            (PKey::from_ec_key(ec)?, pem)
        }
    };
    let mut b = X509::builder()?;
    b.set_version(2)?;
    b.set_serial_number(&*crate::tls::serial()?)?;
    b.set_subject_name(&*name(cn)?)?;
    b.set_issuer_name(ca.subject_name())?;
    b.set_pubkey(&key)?;
    b.set_not_before(&*Asn1Time::days_from_now(0)?)?;
    b.set_not_after(&*Asn1Time::days_from_now(30)?)?;
    b.append_extension(BasicConstraints::new().build()?)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .build()?,
    )?;
    b.append_extension(ExtendedKeyUsage::new().client_auth().build()?)?;
    b.sign(ca_key, MessageDigest::sha256())?;
    Ok((b.build(), key_pem))
}

fn acceptor(server: &TlsMaterial, ca: &X509) -> Result<SslAcceptor, openssl::error::ErrorStack> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
    let chain = X509::stack_from_pem(&server.cert_pem)?;
    let key = PKey::private_key_from_pem(&server.key_pem)?;
    b.set_private_key(&key)?;
    if let Some((leaf, rest)) = chain.split_first() {
        b.set_certificate(leaf)?;
        for c in rest {
            b.add_extra_chain_cert(c.clone())?;
        }
    }
    b.check_private_key()?;
    // Mutual TLS: no certificate, or one not from the device CA, fails the handshake.
    b.cert_store_mut().add_cert(ca.clone())?;
    b.add_client_ca(ca)?;
    b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    Ok(b.build())
}

impl IotProvider {
    /// Creates the device CA in `dir` and issues the first device certificate.
    pub(crate) fn new(
        cfg: IotConfig,
        server: &TlsMaterial,
        dir: &Path,
        default_thing: &str,
    ) -> io::Result<(IotProvider, IotDevice)> {
        std::fs::create_dir_all(dir)?;
        let (ca, ca_key) = device_ca().map_err(other)?;
        std::fs::write(dir.join("device-ca.pem"), ca.to_pem().map_err(other)?)?;
        let acceptor = acceptor(server, &ca).map_err(other)?;
        let provider = IotProvider {
            cfg: cfg.clone(),
            ca,
            ca_key,
            dir: dir.to_path_buf(),
            registered: Mutex::new(Vec::new()),
            next_device: AtomicU64::new(1),
            acceptor,
        };
        let thing = cfg.thing_name.as_deref().unwrap_or(default_thing);
        let device = provider.issue_device(thing, cfg.key_format)?;
        Ok((provider, device))
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Issues and registers a certificate for `thing`, written (key mode 0600) into the
    /// provider's directory.
    pub(crate) fn issue_device(&self, thing: &str, format: IotKeyFormat) -> io::Result<IotDevice> {
        let (cert, key_pem) =
            client_certificate(&self.ca, &self.ca_key, thing, format).map_err(other)?;
        let n = self.next_device.fetch_add(1, Ordering::SeqCst);
        let base = if n == 1 {
            "device".to_string()
        } else {
            format!("device-{n}")
        };
        let cert_file = self.dir.join(format!("{base}-certificate.pem.crt"));
        let key_file = self.dir.join(format!("{base}-private.pem.key"));
        std::fs::write(&cert_file, cert.to_pem().map_err(other)?)?;
        write_private(&key_file, &key_pem)?;
        let fp = cert
            .digest(MessageDigest::sha256())
            .map_err(other)?
            .to_vec();
        lock(&self.registered).push((fp, thing.to_string()));
        Ok(IotDevice {
            thing_name: thing.to_string(),
            cert_file,
            key_file,
        })
    }

    fn thing_of(&self, cert: &X509) -> Option<String> {
        let fp = cert.digest(MessageDigest::sha256()).ok()?.to_vec();
        lock(&self.registered)
            .iter()
            .find(|(f, _)| *f == fp)
            .map(|(_, t)| t.clone())
    }
}

#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

#[cfg(not(unix))]
fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    std::fs::write(path, data)
}

/// Accept loop of the IoT listener.
pub(crate) fn accept_loop(shared: Arc<Shared>, provider: Arc<IotProvider>, listener: TcpListener) {
    for stream in listener.incoming() {
        if shared.is_shutdown() {
            break;
        }
        let Ok(stream) = stream else { continue };
        let (s2, p2) = (shared.clone(), provider.clone());
        shared.spawn("emu-iot-conn", move || {
            if let Err(e) = handle(&s2, &p2, stream) {
                s2.emit(Event::ConnectionError {
                    error: format!("IoT credentials provider: {e}"),
                });
            }
        });
    }
}

/// Binds the listener on the emulator's address.
pub(crate) fn bind(bind: std::net::IpAddr, port: u16) -> io::Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind((bind, port))?;
    let a = l.local_addr()?;
    Ok((l, a))
}

fn respond(
    shared: &Shared,
    tls: &mut SslStream<TcpStream>,
    status: u16,
    body: &serde_json::Value,
) -> io::Result<()> {
    let mut headers = shared.common_headers(&crate::server::request_id());
    headers.push(("Connection".into(), "close".into()));
    http::write_response(tls, status, &headers, body.to_string().as_bytes())
}

/// After the alert went out: read what the client still sends (its request, under TLS 1.3)
/// until it closes, so closing does not reset the connection before the client read the alert.
fn linger(tcp: &mut TcpStream) {
    let _ = tcp.shutdown(std::net::Shutdown::Write);
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(1)));
    let mut sink = [0u8; 4096];
    while matches!(tcp.read(&mut sink), Ok(n) if n > 0) {}
}

fn handle(shared: &Shared, provider: &IotProvider, tcp: TcpStream) -> io::Result<()> {
    tcp.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    tcp.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut tls = match provider.acceptor.accept(tcp) {
        Ok(s) => s,
        Err(e) => {
            shared.emit(Event::IotRefused {
                reason: "tls_handshake".into(),
                status: None,
                path: None,
                error: Some(e.to_string()),
            });
            if let HandshakeError::Failure(mut mid) = e {
                linger(mid.get_mut());
            }
            return Ok(());
        }
    };
    let Some(cert) = tls.ssl().peer_certificate() else {
        return Ok(()); // FAIL_IF_NO_PEER_CERT makes this unreachable
    };
    let mut buf = Vec::new();
    let Some((head, _)) = http::read_head(&mut tls, &mut buf)? else {
        return Ok(());
    };
    let refuse = |tls: &mut SslStream<TcpStream>, status: u16, reason: &str, message: String| {
        shared.emit(Event::IotRefused {
            reason: reason.into(),
            status: Some(status),
            path: Some(head.path.clone()),
            error: None,
        });
        respond(shared, tls, status, &json!({ "message": message }))
    };
    let alias = head
        .path
        .strip_prefix("/role-aliases/")
        .and_then(|r| r.strip_suffix("/credentials"))
        .and_then(crate::sigv4::percent_decode);
    let Some(alias) = alias.filter(|_| head.method == "GET") else {
        return refuse(&mut tls, 404, "unknown_path", "Not Found".into());
    };
    let Some(registered_thing) = provider.thing_of(&cert) else {
        return refuse(
            &mut tls,
            403,
            "unknown_certificate",
            "Access Denied: the certificate is not registered".into(),
        );
    };
    if alias != provider.cfg.role_alias {
        return refuse(
            &mut tls,
            404,
            "unknown_role_alias",
            format!("Role alias {alias} does not exist"),
        );
    }
    match head.header(THING_NAME_HEADER) {
        None => {
            return refuse(
                &mut tls,
                400,
                "missing_thing_name",
                format!("Missing header {THING_NAME_HEADER}"),
            );
        }
        Some(t) if t != registered_thing => {
            return refuse(
                &mut tls,
                403,
                "thing_name_mismatch",
                "Access Denied: the certificate is not attached to that thing".into(),
            );
        }
        Some(_) => {}
    }
    let now = shared.now();
    let expires_at = now + provider.cfg.credential_seconds as i64;
    let mut cred = Credential::random_session();
    cred.expires_at = Some(expires_at);
    let expiration = time::OffsetDateTime::from_unix_timestamp(expires_at)
        .map_err(other)?
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(other)?;
    let body = json!({"credentials": {
        "accessKeyId": cred.access_key_id,
        "secretAccessKey": cred.secret_access_key,
        "sessionToken": cred.session_token,
        "expiration": expiration,
    }});
    shared.emit(Event::IotCredentials {
        thing_name: registered_thing,
        role_alias: alias,
        access_key_id: cred.access_key_id.clone(),
        expiration: expiration.clone(),
    });
    {
        let mut issued = lock(&shared.iot_issued);
        issued.retain(|c| c.expires_at.is_none_or(|e| e + KEEP_EXPIRED_SECS > now));
        issued.push(cred);
    }
    respond(shared, &mut tls, 200, &body)?;
    let _ = tls.shutdown();
    Ok(())
}
