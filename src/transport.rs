//! Opens secure connections: TCP and TLS through the platform's OpenSSL (system roots plus an
//! optional CA bundle, never downgraded), bounded by one deadline on every read and write;
//! then, for the WebSocket, the RFC 6455 upgrade (`upgrade`), whose rejections become service
//! errors with status, exception name and message. The HTTPS calls (`http`) use the same
//! connector and the same streams.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Mutex;

use openssl::ssl::SslStream;
use openssl::x509::X509;
use time::OffsetDateTime;
use tungstenite::WebSocket;
use tungstenite::protocol::WebSocketConfig;

use crate::deadline::Deadline;
use crate::diag::{Step, diag};
use crate::error::{Error, ErrorKind, Result};
use crate::tls::{Connector as TlsConnector, HandshakeError as TlsHandshakeError};
use crate::upgrade;
use crate::validate::Endpoint;

pub(crate) type Stream = SslStream<Socket>;

/// Frames larger than this end the connection; the service sends at most ~14 KB.
const MAX_MESSAGE_SIZE: usize = 1 << 20;
const READ_BUFFER_SIZE: usize = 16 * 1024;

/// What the server said when it refused the upgrade, beyond the error itself.
pub(crate) struct Rejection {
    pub error: Error,
    /// The server's clock (`Date` header), for clock-skew correction.
    pub server_date: Option<OffsetDateTime>,
}

/// Connectors already built, keyed by the extra CA bundle's bytes: a bundle is parsed once per
/// process, not once per connect (the system store is looked up lazily, see `tls`).
static CONNECTORS: Mutex<Vec<(Option<Vec<u8>>, TlsConnector)>> = Mutex::new(Vec::new());
/// Distinct CA bundles kept; a process uses one or two in practice.
const MAX_CACHED_CONNECTORS: usize = 4;

/// The TLS connector trusting the system roots plus the PEM bundle at `ca_file`, if any.
/// The bundle is re-read on every call, so replacing the file takes effect at the next connect.
pub(crate) fn connector_for(ca_file: Option<&Path>) -> Result<TlsConnector> {
    let pem = match ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            Error::invalid("ca_file", format!("cannot read {}: {e}", path.display()))
        })?),
        None => None,
    };
    let mut cache = CONNECTORS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, c)) = cache.iter().find(|(k, _)| *k == pem) {
        return Ok(c.clone());
    }
    let roots = match (&pem, ca_file) {
        (Some(pem), Some(path)) => parse_ca_bundle(pem, path)?,
        _ => Vec::new(),
    };
    let connector = tls_connector(&roots)?;
    if cache.len() >= MAX_CACHED_CONNECTORS {
        cache.remove(0);
    }
    cache.push((pem, connector.clone()));
    Ok(connector)
}

fn parse_ca_bundle(pem: &[u8], path: &Path) -> Result<Vec<X509>> {
    let certs = X509::stack_from_pem(pem).map_err(|e| {
        Error::invalid(
            "ca_file",
            format!("{} is not a PEM bundle: {e}", path.display()),
        )
    })?;
    if certs.is_empty() {
        return Err(Error::invalid(
            "ca_file",
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(certs)
}

fn tls_connector(extra_roots: &[X509]) -> Result<TlsConnector> {
    TlsConnector::new(extra_roots, None).map_err(|e| Error::new(ErrorKind::Tls, e))
}

/// The TCP socket under TLS. While a deadline is set (during a connect), every read and write
/// first sets the socket timeout to the time left, so a server that trickles one byte a second
/// cannot stretch the bound; once connected the deadline is cleared and the socket is driven
/// non-blocking by the connection thread.
#[derive(Debug)]
pub(crate) struct Socket {
    tcp: TcpStream,
    deadline: Option<Deadline>,
}

impl Socket {
    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Bounds every later read and write by `deadline` (None = no bound).
    pub(crate) fn set_deadline(&mut self, deadline: Option<Deadline>) {
        self.deadline = deadline;
    }

    /// Sets the socket timeout to what is left; `WouldBlock` (what a socket timeout gives)
    /// once nothing is.
    fn arm(&self, read: bool) -> io::Result<()> {
        let Some(deadline) = &self.deadline else {
            return Ok(());
        };
        let left = deadline.left();
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the connect deadline elapsed",
            ));
        }
        if read {
            self.tcp.set_read_timeout(Some(left))
        } else {
            self.tcp.set_write_timeout(Some(left))
        }
    }
}

impl io::Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm(true)?;
        self.tcp.read(buf)
    }
}

impl io::Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm(false)?;
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// Lets the kernel find a dead peer too: TCP keepalive probes on an idle link (after 3 s, every
/// 1 s, 3 probes, as the C SDK) and `TCP_USER_TIMEOUT`, so data left unacknowledged for
/// `bound` fails the connection instead of queueing forever.
pub(crate) fn detect_dead_peer(tcp: &TcpStream, bound: std::time::Duration) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::fd::AsRawFd;
        let fd = tcp.as_raw_fd();
        let set = |level: libc::c_int, name: libc::c_int, value: libc::c_int| -> io::Result<()> {
            // SAFETY: `fd` is an open socket owned by `tcp` for the whole call; the option
            // value is a valid c_int whose size is passed with it.
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    level,
                    name,
                    (&value as *const libc::c_int).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        let ms = libc::c_int::try_from(bound.as_millis().max(1000)).unwrap_or(libc::c_int::MAX);
        set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
        set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 3)?;
        set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 1)?;
        set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3)?;
        set(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, ms)?;
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (tcp, bound);
    }
    Ok(())
}

/// `WouldBlock` and `TimedOut` are what a socket timeout gives on a blocking socket.
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// TCP connect to the first address that answers, all within the deadline.
pub(crate) fn tcp_connect(host: &str, port: u16, deadline: &Deadline) -> Result<TcpStream> {
    deadline.remaining("DNS")?;
    // Name resolution uses the system resolver, which has its own timeouts (resolv.conf).
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::new(ErrorKind::Network, format!("cannot resolve {host}: {e}")))?
        .collect();
    let mut last = None;
    for addr in &addrs {
        let left = deadline.remaining("TCP connect")?;
        let started = std::time::Instant::now();
        match TcpStream::connect_timeout(addr, left) {
            Ok(s) => {
                diag!(
                    Debug,
                    Step::Connect,
                    "TCP to {addr} in {} ms",
                    started.elapsed().as_millis()
                );
                return Ok(s);
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    Err(match last {
        Some((addr, e)) if e.kind() == io::ErrorKind::TimedOut => Error::new(
            ErrorKind::Timeout,
            format!("TCP connect to {addr} timed out"),
        ),
        Some((addr, e)) => Error::new(ErrorKind::Network, format!("TCP connect to {addr}: {e}")),
        None => Error::new(ErrorKind::Network, format!("{host} resolved to no address")),
    })
}

/// TCP connect, then the TLS handshake verifying the certificate against `host`; every read
/// and write bounded by `deadline`, which stays set on the returned stream.
pub(crate) fn connect_tls(
    connector: &TlsConnector,
    host: &str,
    port: u16,
    deadline: &Deadline,
) -> Result<Stream> {
    let tcp = tcp_connect(host, port, deadline)?;
    tcp.set_nodelay(true)
        .map_err(|e| Error::new(ErrorKind::Network, format!("socket setup: {e}")))?;
    let socket = Socket {
        tcp,
        deadline: Some(*deadline),
    };
    let started = std::time::Instant::now();
    match connector.connect(host, socket) {
        Ok(s) => {
            diag!(
                Debug,
                Step::Tls,
                "handshake with {host} in {} ms",
                started.elapsed().as_millis()
            );
            Ok(s)
        }
        Err(TlsHandshakeError::WouldBlock) => Err(deadline.timeout("TLS handshake")),
        Err(TlsHandshakeError::Failed(e)) => Err(Error::new(
            ErrorKind::Tls,
            format!("TLS handshake with {host} failed: {e}"),
        )),
    }
}

/// Opens `wss://<endpoint><path>?<query>`, returning a WebSocket over a blocking socket with
/// no deadline left on it.
pub(crate) fn open(
    endpoint: &Endpoint,
    connector: &TlsConnector,
    query: &str,
    deadline: &Deadline,
) -> std::result::Result<WebSocket<Stream>, Rejection> {
    let plain = |error: Error| Rejection {
        error,
        server_date: None,
    };
    let tls = connect_tls(connector, &endpoint.host, endpoint.port, deadline).map_err(plain)?;
    deadline.remaining("WebSocket upgrade").map_err(plain)?;

    let target = format!("{}?{query}", endpoint.path);
    let mut config = WebSocketConfig::default();
    // tungstenite's defaults (128 KiB buffers) suit servers; one TLS record (16 KiB) at a
    // time is plenty for signaling and keeps a connected viewer's heap small.
    config.read_buffer_size = READ_BUFFER_SIZE;
    config.write_buffer_size = 0; // frames go to the socket as they are written
    config.max_message_size = Some(MAX_MESSAGE_SIZE);
    config.max_frame_size = Some(MAX_MESSAGE_SIZE);
    match upgrade::upgrade(tls, &endpoint.host_header, &target, config, deadline) {
        Ok(mut ws) => {
            ws.get_mut().get_mut().set_deadline(None);
            Ok(ws)
        }
        Err(r) => {
            diag!(Debug, Step::Upgrade, "refused: {}", r.error);
            Err(r)
        }
    }
}

/// The service's error bodies: `{"message": ...}` or `{"Message": ...}`, sometimes with a
/// `__type`/`code`/`Code` naming the exception (the rest-json convention).
pub(crate) fn parse_error_body(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_slice(body) else {
        let text = String::from_utf8_lossy(body).trim().to_owned();
        let text: String = text.chars().take(512).collect();
        return (None, (!text.is_empty()).then_some(text));
    };
    let get = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| obj.get(*k).and_then(|v| v.as_str()))
            .map(|s| s.split('#').next_back().unwrap_or(s).to_owned())
    };
    (
        get(&["__type", "code", "Code"]),
        get(&["message", "Message"]),
    )
}

/// RFC 7231 IMF-fixdate, e.g. `Tue, 24 Nov 2026 09:12:09 GMT`.
pub(crate) fn parse_http_date(value: &str) -> Option<OffsetDateTime> {
    crate::datetime::parse_http(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies() {
        assert_eq!(
            parse_error_body(br#"{"message":"Signature expired: x"}"#),
            (None, Some("Signature expired: x".into()))
        );
        assert_eq!(
            parse_error_body(
                br#"{"__type":"com.amazon#ClientLimitExceededException","Message":"m"}"#
            ),
            (
                Some("ClientLimitExceededException".into()),
                Some("m".into())
            )
        );
        assert_eq!(
            parse_error_body(b"plain text\n"),
            (None, Some("plain text".into()))
        );
        assert_eq!(parse_error_body(b""), (None, None));
    }

    #[test]
    fn http_dates() {
        let t = parse_http_date("Tue, 24 Nov 2026 09:12:09 GMT").unwrap();
        assert_eq!(t.unix_timestamp(), 1_795_511_529);
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn dead_peer_options_are_set_on_the_socket() {
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        detect_dead_peer(&tcp, std::time::Duration::from_secs(15)).unwrap();
        let get = |level, name| {
            let mut value: libc::c_int = -1;
            let mut len = size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: valid socket, value and length pointers to live locals.
            let rc = unsafe {
                libc::getsockopt(
                    tcp.as_raw_fd(),
                    level,
                    name,
                    (&mut value as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            assert_eq!(rc, 0);
            value
        };
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT), 15_000);
        assert_eq!(get(libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1);
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), 3);
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPCNT), 3);
    }
}
