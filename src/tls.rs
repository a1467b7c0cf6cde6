//! TLS client contexts over the platform's OpenSSL: TLS 1.2 at least, the peer's certificate
//! verified against the trust anchors and the host name, SNI for names.
//!
//! Trust anchors are loaded once and lazily. The system store is used through OpenSSL's hashed
//! certificate directory, which reads only the root a chain needs when a handshake asks for it;
//! parsing the whole CA bundle (what `SSL_CTX_set_default_verify_paths` and native-tls do, the
//! latter twice) costs ~20 ms and ~0.8 MB per parse before the first byte is sent. A bundle is
//! parsed only when it is all there is: `SSL_CERT_FILE` set, or no hashed directory on the
//! system.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use openssl::error::ErrorStack;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    self, SslContext, SslContextBuilder, SslFiletype, SslMethod, SslMode, SslOptions, SslStream,
    SslVerifyMode, SslVersion,
};
use openssl::x509::store::{X509Lookup, X509StoreBuilder};
use openssl::x509::verify::X509CheckFlags;
use openssl::x509::{X509, X509VerifyResult};

/// A client certificate chain (leaf first) and its private key, for mutual TLS.
pub(crate) struct Identity {
    pub chain: Vec<X509>,
    pub key: PKey<Private>,
}

/// A configured client context; cloning shares it.
#[derive(Clone)]
pub(crate) struct Connector(Arc<SslContext>);

/// Why a handshake did not finish.
pub(crate) enum HandshakeError {
    /// The socket's timeout fired (the connect deadline).
    WouldBlock,
    /// Setup, I/O or verification failed; the text says which, with the verify result.
    Failed(String),
}

impl Connector {
    /// Trusts the system store plus `extra_roots`; presents `identity` when the server asks.
    pub(crate) fn new(extra_roots: &[X509], identity: Option<&Identity>) -> Result<Self, String> {
        context(extra_roots, identity)
            .map(|c| Connector(Arc::new(c)))
            .map_err(|e| format!("TLS setup failed: {e}"))
    }

    /// The handshake with `host` (a name or an IP literal) over `stream`.
    pub(crate) fn connect<S: Read + Write>(
        &self,
        host: &str,
        stream: S,
    ) -> Result<SslStream<S>, HandshakeError> {
        let setup = |e: ErrorStack| HandshakeError::Failed(format!("TLS setup failed: {e}"));
        let mut ssl = ssl::Ssl::new(&self.0).map_err(setup)?;
        let param = ssl.param_mut();
        param.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
        match host.parse::<IpAddr>() {
            Ok(ip) => param.set_ip(ip).map_err(setup)?,
            Err(_) => {
                param.set_host(host).map_err(setup)?;
                // SNI carries names only (RFC 6066).
                ssl.set_hostname(host).map_err(setup)?;
            }
        }
        match ssl.connect(stream) {
            Ok(s) => Ok(s),
            Err(ssl::HandshakeError::WouldBlock(_)) => Err(HandshakeError::WouldBlock),
            Err(ssl::HandshakeError::SetupFailure(e)) => Err(setup(e)),
            Err(ssl::HandshakeError::Failure(mid)) => {
                let verify = mid.ssl().verify_result();
                let mut text = mid.error().to_string();
                if verify != X509VerifyResult::OK {
                    text = format!("{text} (certificate: {})", verify.error_string());
                }
                Err(HandshakeError::Failed(text))
            }
        }
    }
}

fn context(extra_roots: &[X509], identity: Option<&Identity>) -> Result<SslContext, ErrorStack> {
    let mut b = SslContextBuilder::new(SslMethod::tls_client())?;
    // What the openssl crate's connector sets: no compression, no SSLv2/3, partial writes
    // allowed (the socket has a timeout), and record buffers released while a connection is
    // idle (~34 KB per connected viewer otherwise: signaling connections idle most of the time).
    b.set_options(
        SslOptions::ALL | SslOptions::NO_COMPRESSION | SslOptions::NO_SSLV2 | SslOptions::NO_SSLV3,
    );
    b.set_mode(
        SslMode::AUTO_RETRY
            | SslMode::ACCEPT_MOVING_WRITE_BUFFER
            | SslMode::ENABLE_PARTIAL_WRITE
            | SslMode::RELEASE_BUFFERS,
    );
    // Same as the official SDKs: TLS 1.2 at least.
    b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
    b.set_cipher_list("DEFAULT:!aNULL:!eNULL:!MD5:!3DES:!DES:!RC4:!IDEA:!SEED:!aDSS:!SRP:!PSK")?;
    b.set_verify(SslVerifyMode::PEER);

    let mut store = X509StoreBuilder::new()?;
    let roots = system_roots();
    for dir in &roots.hashed_dirs {
        if let Some(dir) = dir.to_str() {
            store
                .add_lookup(X509Lookup::hash_dir())?
                .add_dir(dir, SslFiletype::PEM)?;
        }
    }
    if let Some(file) = &roots.bundle {
        // A missing or unreadable bundle leaves the other anchors; the handshake then says
        // "unable to get local issuer certificate".
        let _ = store
            .add_lookup(X509Lookup::file())?
            .load_cert_file(file, SslFiletype::PEM);
    }
    for cert in extra_roots {
        store.add_cert(cert.clone())?;
    }
    b.set_cert_store(store.build());

    if let Some(id) = identity {
        if let Some((leaf, rest)) = id.chain.split_first() {
            b.set_certificate(leaf)?;
            for c in rest {
                b.add_extra_chain_cert(c.clone())?;
            }
        }
        b.set_private_key(&id.key)?;
        b.check_private_key()?;
    }
    Ok(b.build())
}

/// Where the system's trust anchors are, found once per process.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct SystemRoots {
    /// Directories of `<subject hash>.<n>` files, read on demand.
    pub hashed_dirs: Vec<PathBuf>,
    /// A PEM bundle parsed whole: only when named by `SSL_CERT_FILE`, or when no directory
    /// is hashed.
    pub bundle: Option<PathBuf>,
}

fn system_roots() -> &'static SystemRoots {
    static ROOTS: OnceLock<SystemRoots> = OnceLock::new();
    let mut found_now = false;
    let roots = ROOTS.get_or_init(|| {
        found_now = true;
        let var = |name| std::env::var_os(name).map(PathBuf::from);
        let probed = openssl_probe::probe();
        choose_roots(
            var("SSL_CERT_FILE"),
            var("SSL_CERT_DIR"),
            probed.cert_file,
            probed.cert_dir,
            is_hashed_dir,
        )
    });
    // Logged outside the initialisation: a log callback may call back into the library.
    if found_now {
        crate::diag::diag!(
            Debug,
            crate::diag::Step::Tls,
            "system trust anchors: hashed directories {:?}, bundle {:?}",
            roots.hashed_dirs,
            roots.bundle
        );
    }
    roots
}

/// The policy, apart from the file system: what the environment names wins (as with OpenSSL's
/// own tools); else the hashed directories found; else the bundle found.
fn choose_roots(
    env_file: Option<PathBuf>,
    env_dir: Option<PathBuf>,
    probed_file: Option<PathBuf>,
    probed_dirs: Vec<PathBuf>,
    hashed: impl Fn(&Path) -> bool,
) -> SystemRoots {
    let env_file = env_file.filter(|p| p.exists());
    let env_dirs: Vec<PathBuf> = env_dir
        .into_iter()
        .flat_map(|v| std::env::split_paths(&v).collect::<Vec<_>>())
        .filter(|d| d.is_dir())
        .collect();
    if env_file.is_some() || !env_dirs.is_empty() {
        return SystemRoots {
            hashed_dirs: env_dirs,
            bundle: env_file,
        };
    }
    let mut hashed_dirs: Vec<PathBuf> = Vec::new();
    for dir in probed_dirs {
        // The same directory under two names (`/usr/lib/ssl/certs` → `/etc/ssl/certs`) is
        // looked in once.
        let real = std::fs::canonicalize(&dir).unwrap_or(dir);
        if !hashed_dirs.contains(&real) && hashed(&real) {
            hashed_dirs.push(real);
        }
    }
    let bundle = if hashed_dirs.is_empty() {
        probed_file
    } else {
        None
    };
    SystemRoots {
        hashed_dirs,
        bundle,
    }
}

/// True when `dir` holds at least one `<8 hex digits>.<digits>` entry (what `c_rehash` and
/// `openssl rehash` make).
fn is_hashed_dir(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries
        .flatten()
        .any(|e| is_hash_name(&e.file_name().to_string_lossy()))
}

fn is_hash_name(name: &str) -> bool {
    let Some((hash, n)) = name.split_once('.') else {
        return false;
    };
    hash.len() == 8
        && hash.bytes().all(|b| b.is_ascii_hexdigit())
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_names() {
        assert!(is_hash_name("002c0b4f.0"));
        assert!(is_hash_name("ABCDEF01.12"));
        assert!(!is_hash_name("ca-certificates.crt"));
        assert!(!is_hash_name("002c0b4f.pem"));
        assert!(!is_hash_name("002c0b4.0"));
        assert!(!is_hash_name("002c0b4f."));
    }

    #[test]
    fn hashed_directories_win_over_the_bundle() {
        let tmp = std::env::temp_dir().join(format!("kvs-tls-roots-{}", std::process::id()));
        let hashed = tmp.join("hashed");
        let plain = tmp.join("plain");
        std::fs::create_dir_all(&hashed).unwrap();
        std::fs::create_dir_all(&plain).unwrap();
        let bundle = tmp.join("bundle.pem");
        std::fs::write(&bundle, b"").unwrap();

        let r = choose_roots(
            None,
            None,
            Some(bundle.clone()),
            vec![plain.clone(), hashed.clone(), hashed.clone()],
            |d| d.ends_with("hashed"),
        );
        let hashed_real = std::fs::canonicalize(&hashed).unwrap();
        assert_eq!(r.hashed_dirs, vec![hashed_real]);
        assert_eq!(
            r.bundle, None,
            "the bundle is not parsed when a directory is hashed"
        );

        let r = choose_roots(
            None,
            None,
            Some(bundle.clone()),
            vec![plain.clone()],
            |_| false,
        );
        assert!(r.hashed_dirs.is_empty());
        assert_eq!(r.bundle.as_deref(), Some(bundle.as_path()));

        // The environment names the store: nothing is probed.
        let r = choose_roots(
            Some(bundle.clone()),
            None,
            None,
            vec![hashed.clone()],
            |_| true,
        );
        assert_eq!(r.bundle.as_deref(), Some(bundle.as_path()));
        assert!(r.hashed_dirs.is_empty());
        let r = choose_roots(None, Some(plain.clone()), None, vec![hashed], |_| true);
        assert_eq!(r.hashed_dirs, vec![plain]);
        assert_eq!(r.bundle, None);
        // A variable naming nothing that exists is ignored.
        let r = choose_roots(
            Some(tmp.join("missing.pem")),
            None,
            Some(bundle.clone()),
            vec![],
            |_| true,
        );
        assert_eq!(r.bundle.as_deref(), Some(bundle.as_path()));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
