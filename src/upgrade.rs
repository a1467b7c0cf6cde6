//! The client side of the RFC 6455 opening handshake, over our own HTTP/1.1 code: the
//! upgrade `GET` written here, the answer read by `http`'s response reader (same limits as
//! the control plane's). A 101 is checked (`Upgrade`, `Connection`, `Sec-WebSocket-Accept`);
//! any other answer becomes the service's error, with the server's clock for skew correction.

use std::io::{Read, Write};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tungstenite::WebSocket;
use tungstenite::protocol::{Role, WebSocketConfig};

use crate::deadline::Deadline;
use crate::diag::{self, Step, diag};
use crate::error::{Error, ErrorKind};
use crate::http::{self, Framing, Head, ReadError, Reader};
use crate::transport::{self, Rejection};

/// Appended to the key before hashing it into `Sec-WebSocket-Accept` (RFC 6455 §1.3).
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The largest refusal body read; the service's are one short JSON object.
const MAX_ERROR_BODY: usize = 16 * 1024;
const STEP: &str = "WebSocket upgrade";

/// Sends the upgrade `GET <target>` (path and query) to `host_header` over `stream` and reads
/// the answer, every read and write bounded by the stream's own timeouts (`deadline` only
/// words the timeout). Bytes the server sent after the 101's headers are kept for the
/// WebSocket.
pub(crate) fn upgrade<S: Read + Write>(
    mut stream: S,
    host_header: &str,
    target: &str,
    config: WebSocketConfig,
    deadline: &Deadline,
) -> Result<WebSocket<S>, Rejection> {
    let plain = |error: Error| Rejection {
        error,
        server_date: None,
    };
    let key = new_key().map_err(plain)?;
    let request = encode_request(host_header, target, &key).map_err(plain)?;
    let started = Instant::now();
    if let Err(e) = stream.write_all(&request).and_then(|()| stream.flush()) {
        return Err(plain(if transport::is_timeout(&e) {
            deadline.timeout(STEP)
        } else {
            Error::new(ErrorKind::Network, format!("{STEP}: {e}"))
        }));
    }
    let mut reader = Reader::new(&mut stream);
    let head = loop {
        let head = reader.head().map_err(|e| plain(read_error(e, deadline)))?;
        // Interim answers other than 101 (we ask for none) precede the real one.
        if head.status == 101 || !(100..200).contains(&head.status) {
            break head;
        }
    };
    diag!(
        Debug,
        Step::Upgrade,
        "HTTP {} in {} ms",
        head.status,
        started.elapsed().as_millis()
    );
    diag!(
        Trace,
        Step::Upgrade,
        "HTTP {} {}",
        head.status,
        diag::headers_for_log(head.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    );
    if head.status != 101 {
        let body = refusal_body(&mut reader, &head);
        return Err(refusal(&head, &body));
    }
    check_switch(&head, &accept_key(&key)).map_err(plain)?;
    let rest = reader.into_buffered();
    Ok(if rest.is_empty() {
        WebSocket::from_raw_socket(stream, Role::Client, Some(config))
    } else {
        WebSocket::from_partially_read(stream, rest, Role::Client, Some(config))
    })
}

/// `Sec-WebSocket-Key`: 16 random bytes, base64.
fn new_key() -> crate::error::Result<String> {
    let mut nonce = [0u8; 16];
    openssl::rand::rand_bytes(&mut nonce)
        .map_err(|e| Error::internal(format!("{STEP}: no random key ({e})")))?;
    Ok(BASE64.encode(nonce))
}

/// The `Sec-WebSocket-Accept` a server must answer to `key`.
fn accept_key(key: &str) -> String {
    let mut input = Vec::with_capacity(key.len() + ACCEPT_GUID.len());
    input.extend_from_slice(key.as_bytes());
    input.extend_from_slice(ACCEPT_GUID.as_bytes());
    BASE64.encode(openssl::sha::sha1(&input))
}

/// The request: the headers tungstenite sent, in its order and spelling, and no others (the
/// presigned query signs only `host`).
fn encode_request(host_header: &str, target: &str, key: &str) -> crate::error::Result<Vec<u8>> {
    let safe = |s: &str| !s.is_empty() && !s.bytes().any(|b| b.is_ascii_control() || b == b' ');
    if !safe(host_header) || !safe(target) || !target.starts_with('/') {
        // Never quote them: the query holds a signature and maybe a session token.
        return Err(Error::internal(format!(
            "building the {STEP} request: bad host or path"
        )));
    }
    Ok(format!(
        "GET {target} HTTP/1.1\r\n\
         Host: {host_header}\r\n\
         Connection: Upgrade\r\n\
         Upgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: {key}\r\n\
         \r\n"
    )
    .into_bytes())
}

/// The checks RFC 6455 §4.1 asks of a client on a 101; a failed one names its header.
fn check_switch(head: &Head, expected_accept: &str) -> crate::error::Result<()> {
    let bad = |what: String| Err(Error::new(ErrorKind::Protocol, format!("{STEP}: {what}")));
    let has_token = |name: &str, token: &str| {
        head.header(name)
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if head.version != 1 {
        return bad("the 101 answer is not HTTP/1.1".into());
    }
    match head.header("upgrade") {
        Some(v) if v.trim().eq_ignore_ascii_case("websocket") => {}
        Some(v) => {
            return bad(format!(
                "the 101 answer's Upgrade header is {v:?}, not websocket"
            ));
        }
        None => return bad("the 101 answer has no Upgrade header".into()),
    }
    if !has_token("connection", "upgrade") {
        return bad(match head.header("connection") {
            Some(v) => format!("the 101 answer's Connection header {v:?} has no upgrade token"),
            None => "the 101 answer has no Connection header".into(),
        });
    }
    match head.header("sec-websocket-accept") {
        Some(v) if v.trim() == expected_accept => {}
        Some(v) => {
            return bad(format!(
                "the 101 answer's Sec-WebSocket-Accept {v:?} does not match the key sent"
            ));
        }
        None => return bad("the 101 answer has no Sec-WebSocket-Accept header".into()),
    }
    // We offer neither, so a server must not pick one.
    for name in ["Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"] {
        if head.header(name).is_some_and(|v| !v.trim().is_empty()) {
            return bad(format!(
                "the 101 answer selects a {name} that was not offered"
            ));
        }
    }
    Ok(())
}

/// The body of a refusal. The status and headers are what matter: a body that cannot be
/// read (too large, badly framed, cut, or never ended by a server holding the connection
/// open) is what came of it, never an error hiding the status.
fn refusal_body<S: Read>(reader: &mut Reader<'_, S>, head: &Head) -> Vec<u8> {
    let framing = match http::framing(head, false, MAX_ERROR_BODY) {
        Ok(framing) => framing,
        Err(e) => {
            diag!(
                Debug,
                Step::Upgrade,
                "refusal body skipped: {}",
                describe(&e)
            );
            return Vec::new();
        }
    };
    match reader.body(framing, MAX_ERROR_BODY) {
        Ok(body) => body,
        Err(e) => {
            diag!(
                Debug,
                Step::Upgrade,
                "refusal body cut short: {}",
                describe(&e)
            );
            if framing == Framing::UntilClose {
                let got = reader.buffered();
                got[..got.len().min(MAX_ERROR_BODY)].to_vec()
            } else {
                Vec::new()
            }
        }
    }
}

fn describe(e: &ReadError) -> String {
    match e {
        ReadError::Io { error, .. } => error.to_string(),
        ReadError::Closed { .. } => "the server closed the connection".into(),
        ReadError::Protocol(what) => what.clone(),
    }
}

/// The service's error for a non-101 answer: the exception name from `x-amzn-ErrorType` or
/// the body, the message from the body, the request id, and the server's `Date`.
fn refusal(head: &Head, body: &[u8]) -> Rejection {
    let (body_type, body_message) = transport::parse_error_body(body);
    let error_type = head
        .header("x-amzn-ErrorType")
        .map(str::to_owned)
        .or(body_type);
    let server_date = head.header("date").and_then(transport::parse_http_date);
    let error = Error::from_service_response(
        head.status,
        error_type.as_deref(),
        body_message.as_deref(),
        head.header("x-amzn-RequestId"),
    );
    Rejection { error, server_date }
}

fn read_error(e: ReadError, deadline: &Deadline) -> Error {
    match e {
        ReadError::Io { error, .. } if transport::is_timeout(&error) => deadline.timeout(STEP),
        ReadError::Io { error, .. } => Error::new(ErrorKind::Network, format!("{STEP}: {error}")),
        ReadError::Closed { .. } => Error::new(
            ErrorKind::Network,
            format!("{STEP}: the server closed the connection"),
        ),
        ReadError::Protocol(what) => Error::new(ErrorKind::Protocol, format!("{STEP}: {what}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::thread::{self, JoinHandle};
    use std::time::Duration;

    use tungstenite::Message;

    /// What the one-shot test server does after writing its answer.
    #[derive(Clone, Copy)]
    enum Then {
        Close,
        /// Keep the connection open until the client hangs up.
        Hold,
    }

    /// A server on a free 127.0.0.1 port for one client: reads the request head, writes
    /// `answer(request)`, then closes or holds. Joining gives the request it read.
    fn serve(
        answer: impl FnOnce(&str) -> Vec<u8> + Send + 'static,
        then: Then,
    ) -> (u16, JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            let (mut tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match tcp.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let request = String::from_utf8(head).unwrap();
            // The client may hang up early on purpose (oversized answers).
            let _ = tcp.write_all(&answer(&request));
            if let Then::Hold = then {
                let mut sink = [0u8; 256];
                while matches!(tcp.read(&mut sink), Ok(n) if n > 0) {}
            }
            request
        });
        (port, server)
    }

    fn sent_key(request: &str) -> String {
        request
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .to_owned()
    }

    /// A 101 answering `request` with `headers`, where `{accept}` stands for the right
    /// `Sec-WebSocket-Accept`.
    fn switching(request: &str, headers: &str) -> Vec<u8> {
        let accept = accept_key(&sent_key(request));
        format!(
            "HTTP/1.1 101 Switching Protocols\r\n{}\r\n",
            headers.replace("{accept}", &accept)
        )
        .into_bytes()
    }

    const GOOD: &str =
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n";

    /// Upgrades against a server answering `answer`; reads time out after `read_timeout`.
    fn run_with(
        answer: impl FnOnce(&str) -> Vec<u8> + Send + 'static,
        then: Then,
        read_timeout: Duration,
    ) -> (Result<WebSocket<TcpStream>, Rejection>, JoinHandle<String>) {
        let (port, server) = serve(answer, then);
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(read_timeout)).unwrap();
        tcp.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let deadline = Deadline::after(read_timeout);
        let host = format!("127.0.0.1:{port}");
        let result = upgrade(
            tcp,
            &host,
            "/?X-Amz-ChannelARN=arn&X-Amz-ClientId=viewer-1",
            WebSocketConfig::default(),
            &deadline,
        );
        (result, server)
    }

    fn run(
        answer: impl FnOnce(&str) -> Vec<u8> + Send + 'static,
        then: Then,
    ) -> Result<WebSocket<TcpStream>, Rejection> {
        run_with(answer, then, Duration::from_secs(5)).0
    }

    fn refused(r: Result<WebSocket<TcpStream>, Rejection>) -> Rejection {
        match r {
            Err(r) => r,
            Ok(_) => panic!("the upgrade was expected to fail"),
        }
    }

    #[test]
    fn accept_key_of_rfc_6455_section_1_3() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn the_request_carries_the_upgrade_headers_and_a_fresh_key() {
        let (ws, server) = run_with(
            |req| switching(req, GOOD),
            Then::Close,
            Duration::from_secs(5),
        );
        assert!(ws.is_ok());
        let request = server.join().unwrap();
        let port = request
            .lines()
            .nth(1)
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .to_owned();
        let key = sent_key(&request);
        assert_eq!(
            request,
            format!(
                "GET /?X-Amz-ChannelARN=arn&X-Amz-ClientId=viewer-1 HTTP/1.1\r\n\
                 Host: 127.0.0.1:{port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
            )
        );
        assert_eq!(BASE64.decode(&key).unwrap().len(), 16);
        assert_ne!(key, new_key().unwrap());

        let bad = encode_request("h", "/?a=b\r\nX-Injected: 1", "k").unwrap_err();
        assert_eq!(bad.kind, ErrorKind::Internal);
        assert!(!bad.message.contains("Injected"), "{}", bad.message);
        assert!(encode_request("h", "no-slash", "k").is_err());
    }

    #[test]
    fn a_frame_right_after_the_101_is_delivered() {
        // One write: the headers and a text frame behind them, read together by the client.
        let mut ws = run(
            |req| {
                let mut answer = switching(req, GOOD);
                answer.extend_from_slice(&[0x81, 5]);
                answer.extend_from_slice(b"hello");
                answer
            },
            Then::Hold,
        )
        .unwrap_or_else(|r| panic!("{}", r.error));
        assert_eq!(ws.read().unwrap(), Message::Text("hello".into()));
    }

    #[test]
    fn a_101_is_read_leniently_where_rfc_6455_allows() {
        let lenient = "upgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n\
                       sec-websocket-accept: {accept}\r\nSec-WebSocket-Extensions:\r\n";
        let interim = move |req: &str| {
            let mut answer = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
            answer.extend_from_slice(&switching(req, lenient));
            answer
        };
        assert!(run(interim, Then::Close).is_ok());
    }

    #[test]
    fn a_bad_101_is_a_protocol_error_naming_the_header() {
        for (headers, named) in [
            (
                "Upgrade: websocket\r\nConnection: Upgrade\r\n",
                "Sec-WebSocket-Accept",
            ),
            (
                "Upgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
                "Sec-WebSocket-Accept",
            ),
            (
                "Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n",
                "Upgrade",
            ),
            (
                "Upgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n",
                "Upgrade",
            ),
            (
                "Upgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Accept: {accept}\r\n",
                "Connection",
            ),
            (
                "Upgrade: websocket\r\nSec-WebSocket-Accept: {accept}\r\n",
                "Connection",
            ),
            (
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\
                 Sec-WebSocket-Protocol: chat\r\n",
                "Sec-WebSocket-Protocol",
            ),
        ] {
            let r = refused(run(move |req| switching(req, headers), Then::Close));
            assert_eq!(r.error.kind, ErrorKind::Protocol, "{}", r.error);
            assert!(
                r.error.message.starts_with("WebSocket upgrade: ")
                    && r.error.message.contains(named),
                "{named}: {}",
                r.error
            );
            assert_eq!(r.error.http_status, None);
        }
    }

    #[test]
    fn oversized_headers_are_refused() {
        let r = refused(run(
            |req| {
                let mut answer = switching(req, GOOD);
                answer.truncate(answer.len() - 2);
                answer.extend_from_slice(b"X-Padding: ");
                answer.extend_from_slice(&vec![b'y'; 20 * 1024]);
                answer.extend_from_slice(b"\r\n\r\n");
                answer
            },
            Then::Hold,
        ));
        assert_eq!(r.error.kind, ErrorKind::Protocol, "{}", r.error);
        assert!(r.error.message.contains("exceed"), "{}", r.error);
        let many = (0..60).map(|i| format!("X-{i}: v\r\n")).collect::<String>();
        let r = refused(run(
            move |req| switching(req, &(GOOD.to_owned() + &many)),
            Then::Hold,
        ));
        assert!(r.error.message.contains("more than"), "{}", r.error);
    }

    #[test]
    fn a_chunked_refusal_keeps_type_message_request_id_and_date() {
        let r = refused(run(
            |_| {
                b"HTTP/1.1 403 Forbidden\r\nx-amzn-ErrorType: AccessDeniedException:http://internal\r\n\
                  x-amzn-RequestId: rid-1\r\nDate: Tue, 24 Nov 2026 09:12:09 GMT\r\n\
                  Transfer-Encoding: chunked\r\n\r\n\
                  c\r\n{\"message\":\"\r\n14;ext=1\r\nSignature expired: x\r\n2\r\n\"}\r\n0\r\n\r\n"
                    .to_vec()
            },
            Then::Hold,
        ));
        assert_eq!(
            (r.error.kind, r.error.http_status),
            (ErrorKind::AccessDenied, Some(403))
        );
        assert_eq!(
            r.error.message,
            "HTTP 403 AccessDeniedException: Signature expired: x"
        );
        assert_eq!(r.error.request_id.as_deref(), Some("rid-1"));
        assert_eq!(r.server_date.unwrap().unix_timestamp(), 1_795_511_529);
    }

    #[test]
    fn refusals_by_content_length_by_close_and_held_open() {
        let body = r#"{"__type":"ClientLimitExceededException","message":"too many viewers"}"#;
        let r = refused(run(
            move |_| {
                format!(
                    "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            },
            Then::Hold,
        ));
        assert_eq!(r.error.kind, ErrorKind::ClientLimitExceeded, "{}", r.error);
        assert!(r.error.message.ends_with("too many viewers"), "{}", r.error);
        assert_eq!(r.server_date, None);

        let unframed = b"HTTP/1.1 404 Not Found\r\n\r\n{\"Message\":\"no channel\"}".to_vec();
        let r = refused(run(move |_| unframed, Then::Close));
        assert_eq!(r.error.kind, ErrorKind::ResourceNotFound, "{}", r.error);
        assert!(r.error.message.ends_with("no channel"), "{}", r.error);

        // Unframed and never closed: the status still comes out once the read times out.
        let held = b"HTTP/1.1 403 Forbidden\r\n\r\n{\"message\":\"denied\"}".to_vec();
        let (r, _) = run_with(move |_| held, Then::Hold, Duration::from_millis(300));
        let r = refused(r);
        assert_eq!(r.error.kind, ErrorKind::AccessDenied, "{}", r.error);
        assert!(r.error.message.ends_with("denied"), "{}", r.error);

        // A body over the limit does not hide the status either.
        let r = refused(run(
            |_| format!("HTTP/1.1 500 Oops\r\nContent-Length: {}\r\n\r\n", 1 << 20).into_bytes(),
            Then::Close,
        ));
        assert_eq!(
            (r.error.kind, r.error.http_status),
            (ErrorKind::HttpStatus, Some(500))
        );
    }

    #[test]
    fn a_server_that_closes_or_says_nothing() {
        let r = refused(run(|_| Vec::new(), Then::Close));
        assert_eq!(r.error.kind, ErrorKind::Network, "{}", r.error);
        assert_eq!(
            r.error.message,
            "WebSocket upgrade: the server closed the connection"
        );
        let r = refused(run(|_| b"HTTP/1.1 101 Switching".to_vec(), Then::Close));
        assert_eq!(r.error.kind, ErrorKind::Network, "{}", r.error);

        let (r, _) = run_with(|_| Vec::new(), Then::Hold, Duration::from_millis(200));
        let r = refused(r);
        assert_eq!(r.error.kind, ErrorKind::Timeout, "{}", r.error);
        assert!(
            r.error.message.starts_with("WebSocket upgrade: "),
            "{}",
            r.error
        );

        let r = refused(run(
            |_| b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec(),
            Then::Close,
        ));
        assert_eq!(r.error.kind, ErrorKind::Protocol, "{}", r.error);
    }
}
