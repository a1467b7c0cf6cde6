//! Opens the secure WebSocket: TCP with a deadline, TLS through the platform's OpenSSL (system
//! roots plus an optional CA bundle, never downgraded), then the RFC 6455 upgrade. Upgrade
//! rejections are turned into service errors with status, exception name and message.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use native_tls::{Certificate, HandshakeError as TlsHandshakeError, TlsConnector, TlsStream};
use time::OffsetDateTime;
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{WebSocket, client::IntoClientRequest};

use crate::error::{Error, ErrorKind, Result};
use crate::validate::WssEndpoint;

pub(crate) type Stream = TlsStream<TcpStream>;

/// Frames larger than this end the connection; the service sends at most ~14 KB.
const MAX_MESSAGE_SIZE: usize = 1 << 20;
const READ_BUFFER_SIZE: usize = 16 * 1024;

/// What the server said when it refused the upgrade, beyond the error itself.
pub(crate) struct Rejection {
    pub error: Error,
    /// The server's clock (`Date` header), for clock-skew correction.
    pub server_date: Option<OffsetDateTime>,
}

/// Connectors already built, keyed by the extra CA bundle's bytes. Building one parses the
/// whole system trust store (hundreds of KB, tens of ms here, far more on a small ARM core),
/// so it is done once per process and bundle, not once per connect.
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

fn parse_ca_bundle(pem: &[u8], path: &Path) -> Result<Vec<Certificate>> {
    let certs = Certificate::stack_from_pem(pem).map_err(|e| {
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

fn tls_connector(extra_roots: &[Certificate]) -> Result<TlsConnector> {
    let mut builder = TlsConnector::builder();
    for cert in extra_roots {
        builder.add_root_certificate(cert.clone());
    }
    // Same as the official SDKs: TLS 1.2 at least.
    builder.min_protocol_version(Some(native_tls::Protocol::Tlsv12));
    builder
        .build()
        .map_err(|e| Error::new(ErrorKind::Tls, format!("TLS setup failed: {e}")))
}

fn remaining(deadline: Instant, what: &str) -> Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Error::new(
            ErrorKind::Timeout,
            format!("{what}: connect timeout elapsed"),
        ));
    }
    Ok(left)
}

/// TCP connect to the first address that answers, all within the deadline.
pub(crate) fn tcp_connect(host: &str, port: u16, deadline: Instant) -> Result<TcpStream> {
    // Name resolution uses the system resolver, which has its own timeouts (resolv.conf).
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::new(ErrorKind::Network, format!("cannot resolve {host}: {e}")))?
        .collect();
    let mut last = None;
    for addr in &addrs {
        let left = remaining(deadline, "TCP connect")?;
        match TcpStream::connect_timeout(addr, left) {
            Ok(s) => return Ok(s),
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

/// TLS handshake over `tcp`, verifying the certificate against `host`.
pub(crate) fn tls_handshake(
    connector: &TlsConnector,
    host: &str,
    tcp: TcpStream,
    deadline: Instant,
) -> Result<Stream> {
    set_timeouts(&tcp, remaining(deadline, "TLS handshake")?)?;
    match connector.connect(host, tcp) {
        Ok(s) => Ok(s),
        Err(TlsHandshakeError::WouldBlock(_)) => Err(Error::new(
            ErrorKind::Timeout,
            "TLS handshake: the server did not answer in time",
        )),
        Err(TlsHandshakeError::Failure(e)) => Err(Error::new(
            ErrorKind::Tls,
            format!("TLS handshake with {host} failed: {e}"),
        )),
    }
}

fn set_timeouts(tcp: &TcpStream, t: Duration) -> Result<()> {
    tcp.set_read_timeout(Some(t))
        .and_then(|()| tcp.set_write_timeout(Some(t)))
        .map_err(|e| Error::new(ErrorKind::Network, format!("socket setup: {e}")))
}

/// Opens `wss://<endpoint><path>?<query>`, returning a WebSocket over a blocking socket.
pub(crate) fn open(
    endpoint: &WssEndpoint,
    connector: &TlsConnector,
    query: &str,
    deadline: Instant,
) -> std::result::Result<WebSocket<Stream>, Rejection> {
    let plain = |error: Error| Rejection {
        error,
        server_date: None,
    };
    let tcp = tcp_connect(&endpoint.host, endpoint.port, deadline).map_err(plain)?;
    tcp.set_nodelay(true)
        .map_err(|e| plain(Error::new(ErrorKind::Network, format!("socket setup: {e}"))))?;
    let tls = tls_handshake(connector, &endpoint.host, tcp, deadline).map_err(plain)?;
    set_timeouts(
        tls.get_ref(),
        remaining(deadline, "WebSocket upgrade").map_err(plain)?,
    )
    .map_err(plain)?;

    let url = format!("wss://{}{}?{query}", endpoint.host_header, endpoint.path);
    let request = url.into_client_request().map_err(|e| {
        plain(Error::new(
            ErrorKind::Internal,
            format!("building the upgrade request: {e}"),
        ))
    })?;
    let mut config = WebSocketConfig::default();
    // tungstenite's defaults (128 KiB buffers) suit servers; one TLS record (16 KiB) at a
    // time is plenty for signaling and keeps a connected viewer's heap small.
    config.read_buffer_size = READ_BUFFER_SIZE;
    config.write_buffer_size = 0; // frames go to the socket as they are written
    config.max_message_size = Some(MAX_MESSAGE_SIZE);
    config.max_frame_size = Some(MAX_MESSAGE_SIZE);
    match tungstenite::client::client_with_config(request, tls, Some(config)) {
        Ok((ws, _response)) => Ok(ws),
        Err(HandshakeError::Interrupted(_)) => Err(plain(Error::new(
            ErrorKind::Timeout,
            "WebSocket upgrade: no response from the server in time",
        ))),
        Err(HandshakeError::Failure(e)) => Err(upgrade_failure(e)),
    }
}

fn upgrade_failure(e: tungstenite::Error) -> Rejection {
    use tungstenite::Error as WsError;
    let error = match e {
        WsError::Http(response) => {
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let body = response.body().as_deref().unwrap_or_default();
            let (body_type, body_message) = parse_error_body(body);
            let error_type = header("x-amzn-ErrorType").or(body_type);
            let server_date = header("date").and_then(|d| parse_http_date(&d));
            let error = Error::from_service_response(
                response.status().as_u16(),
                error_type.as_deref(),
                body_message.as_deref(),
                header("x-amzn-RequestId").as_deref(),
            );
            return Rejection { error, server_date };
        }
        WsError::Io(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Error::new(
                ErrorKind::Timeout,
                "WebSocket upgrade: no response from the server in time",
            )
        }
        WsError::Io(e) => Error::new(ErrorKind::Network, format!("WebSocket upgrade: {e}")),
        WsError::ConnectionClosed | WsError::AlreadyClosed => Error::new(
            ErrorKind::Network,
            "WebSocket upgrade: the server closed the connection",
        ),
        other => Error::new(ErrorKind::Protocol, format!("WebSocket upgrade: {other}")),
    };
    Rejection {
        error,
        server_date: None,
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
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(value.trim(), format)
        .ok()
        .map(|t| t.assume_utc())
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
}
