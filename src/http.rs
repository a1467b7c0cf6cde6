//! A small HTTP/1.1 client for the control plane: three `POST`s and the ICE call, over the
//! same TLS connector and deadline-bound streams as the WebSocket (`transport`).
//!
//! Requests are written in one piece; responses are parsed with `httparse` and framed by
//! `Content-Length` or chunked transfer coding, both under a size limit. A connection whose
//! answer was complete and not marked `Connection: close` is kept for the next call to the
//! same host, so discovery costs one TLS handshake per host. A kept connection the server
//! has closed meanwhile is replaced once, transparently (the calls are all reads).
//!
//! The response reader (`Reader`: heads, framing, limits) also reads the answer to the
//! WebSocket upgrade (`upgrade`).

use std::io::{self, Read, Write};
use std::sync::{Mutex, MutexGuard};

use crate::tls::Connector as TlsConnector;

use crate::deadline::Deadline;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{self, Stream};
use crate::validate::Endpoint;

/// Status line plus headers; the service sends well under 1 KB.
const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 48;
/// A chunk-size line (hex size plus extensions) longer than this is not HTTP we accept.
const MAX_CHUNK_LINE: usize = 1024;
/// Idle connections kept: the control plane and the channel's HTTPS endpoint.
const MAX_IDLE_CONNECTIONS: usize = 2;
const USER_AGENT: &str = concat!("kvs-viewer/", env!("CARGO_PKG_VERSION"));
const READ_CHUNK: usize = 4096;

/// One request. `headers` are sent as given, in order (they are what was signed); `Host` is
/// added when missing, `Content-Length` for every `POST` and every non-empty body.
pub(crate) struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, String)],
    pub body: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// HTTPS client keeping one idle connection per host. Thread-safe; calls to different hosts
/// run in parallel, a connection is used by one call at a time.
pub(crate) struct Client {
    connector: TlsConnector,
    max_body: usize,
    idle: Mutex<Vec<(String, Stream)>>,
}

impl Client {
    /// `max_body`: the largest response body accepted, in bytes.
    pub(crate) fn new(connector: TlsConnector, max_body: usize) -> Client {
        Client {
            connector,
            max_body,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<(String, Stream)>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `request` to `endpoint` and reads the whole answer, all before `deadline`.
    pub(crate) fn send(
        &self,
        endpoint: &Endpoint,
        request: &Request<'_>,
        deadline: &Deadline,
    ) -> Result<Response> {
        let key = format!("{}:{}", endpoint.host, endpoint.port);
        let kept = {
            let mut idle = self.idle();
            let found = idle.iter().position(|(k, _)| *k == key);
            found.map(|i| idle.remove(i).1)
        };
        if let Some(mut stream) = kept {
            stream.get_mut().set_deadline(Some(*deadline));
            match exchange(&mut stream, &endpoint.host_header, request, self.max_body) {
                Ok(answer) => return Ok(self.keep(key, stream, answer)),
                Err(Failure::Stale(_)) => {} // closed by the server while idle: a new one
                Err(Failure::Fatal(e)) => return Err(e),
            }
        }
        let mut stream =
            transport::connect_tls(&self.connector, &endpoint.host, endpoint.port, deadline)?;
        match exchange(&mut stream, &endpoint.host_header, request, self.max_body) {
            Ok(answer) => Ok(self.keep(key, stream, answer)),
            Err(Failure::Stale(e) | Failure::Fatal(e)) => Err(e),
        }
    }

    fn keep(&self, key: String, mut stream: Stream, (response, reusable): Exchanged) -> Response {
        if reusable {
            stream.get_mut().set_deadline(None);
            let mut idle = self.idle();
            if idle.len() >= MAX_IDLE_CONNECTIONS {
                idle.remove(0);
            }
            idle.push((key, stream));
        }
        response
    }
}

/// The response, and whether the connection can carry another request.
type Exchanged = (Response, bool);

#[derive(Debug)]
enum Failure {
    /// Nothing came back on a connection that may have been closed while idle: worth one
    /// retry on a fresh connection.
    Stale(Error),
    Fatal(Error),
}

fn io_error(step: &str, e: &io::Error) -> Error {
    if transport::is_timeout(e) {
        Error::new(
            ErrorKind::Timeout,
            format!("{step}: no answer within the connect timeout"),
        )
    } else if e
        .get_ref()
        .is_some_and(|inner| inner.is::<openssl::ssl::Error>())
    {
        // A TLS alert after the handshake: TLS 1.3 servers check a client certificate
        // (credentials.rs, mutual TLS) only then, so a refusal arrives on the first read.
        Error::new(ErrorKind::Tls, format!("{step}: {e}"))
    } else {
        Error::new(ErrorKind::Network, format!("{step}: {e}"))
    }
}

fn protocol(what: impl std::fmt::Display) -> Failure {
    Failure::Fatal(Error::new(
        ErrorKind::Protocol,
        format!("HTTP response: {what}"),
    ))
}

/// Writes `request` and reads its response from `stream`.
fn exchange<S: Read + Write>(
    stream: &mut S,
    host_header: &str,
    request: &Request<'_>,
    max_body: usize,
) -> std::result::Result<Exchanged, Failure> {
    let bytes = encode_request(host_header, request).map_err(Failure::Fatal)?;
    if let Err(e) = stream.write_all(&bytes).and_then(|()| stream.flush()) {
        let error = io_error("HTTP request", &e);
        return Err(if transport::is_timeout(&e) {
            Failure::Fatal(error)
        } else {
            Failure::Stale(error)
        });
    }
    let mut incoming = Reader::new(stream);
    let head = loop {
        // An interim 1xx answer (we never ask for one) precedes the real one.
        let head = incoming.head()?;
        if !(100..200).contains(&head.status) {
            break head;
        }
    };
    let bodiless = request.method.eq_ignore_ascii_case("HEAD");
    let framing = framing(&head, bodiless, max_body)?;
    let body = incoming.body(framing, max_body)?;
    let reusable = head.version == 1
        && !matches!(framing, Framing::UntilClose)
        && !head
            .header("connection")
            .is_some_and(|c| c.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
        && incoming.buffered().is_empty();
    let response = Response {
        status: head.status,
        headers: head.headers,
        body,
    };
    Ok((response, reusable))
}

impl From<ReadError> for Failure {
    fn from(e: ReadError) -> Failure {
        match e {
            ReadError::Io {
                in_body,
                error,
                fresh,
            } => {
                let step = if in_body {
                    "HTTP response body"
                } else {
                    "HTTP response"
                };
                let mapped = io_error(step, &error);
                // Nothing at all came back: the kept connection was dead already.
                if fresh && !transport::is_timeout(&error) {
                    Failure::Stale(mapped)
                } else {
                    Failure::Fatal(mapped)
                }
            }
            ReadError::Closed { fresh: true } => Failure::Stale(Error::new(
                ErrorKind::Network,
                "HTTP response: the server closed the connection without answering",
            )),
            ReadError::Closed { fresh: false } => {
                protocol("the connection closed in the middle of the headers")
            }
            ReadError::Protocol(what) => protocol(what),
        }
    }
}

fn encode_request(host_header: &str, request: &Request<'_>) -> Result<Vec<u8>> {
    let safe = |s: &str| !s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0);
    if !safe(request.method) || !safe(request.path) || request.path.contains(' ') {
        return Err(Error::internal("HTTP request: bad method or path"));
    }
    let mut out = Vec::with_capacity(512 + request.body.len());
    out.extend_from_slice(format!("{} {} HTTP/1.1\r\n", request.method, request.path).as_bytes());
    let mut line = |name: &str, value: &str| -> Result<()> {
        if name.is_empty() || !safe(name) || name.contains(':') || !safe(value) {
            // Never quote the value: it may be a credential.
            return Err(Error::internal(format!(
                "HTTP request: header {name:?} holds a line break"
            )));
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
        Ok(())
    };
    let has = |name: &str| {
        request
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    if !has("host") {
        line("host", host_header)?;
    }
    for (name, value) in request.headers {
        line(name, value)?;
    }
    if !has("user-agent") {
        line("user-agent", USER_AGENT)?;
    }
    if !request.body.is_empty() || request.method.eq_ignore_ascii_case("POST") {
        line("content-length", &request.body.len().to_string())?;
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(request.body);
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The response reader, shared with the WebSocket upgrade (`upgrade`).

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

/// Why an answer could not be read; each caller words it for its own step.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The stream failed. `fresh`: nothing of this answer had come back yet.
    Io {
        in_body: bool,
        error: io::Error,
        fresh: bool,
    },
    /// The stream ended before the status line and headers were complete.
    Closed { fresh: bool },
    /// Not an answer we accept, or one over a limit (said without a prefix).
    Protocol(String),
}

fn too_large(max_body: usize) -> ReadError {
    ReadError::Protocol(format!("the answer is larger than {max_body} bytes"))
}

/// A status line and its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub status: u16,
    /// Minor version: 1 for HTTP/1.1.
    pub version: u8,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first header named `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `Transfer-Encoding` whose last coding is `chunked`.
    fn is_chunked(&self) -> bool {
        self.header("transfer-encoding").is_some_and(|te| {
            te.rsplit(',')
                .next()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"))
        })
    }
}

/// How the body after `head` is delimited; `bodiless` for the answer to a `HEAD`.
pub(crate) fn framing(
    head: &Head,
    bodiless: bool,
    max_body: usize,
) -> std::result::Result<Framing, ReadError> {
    Ok(if bodiless || head.status == 204 || head.status == 304 {
        Framing::Empty
    } else if head.is_chunked() {
        Framing::Chunked
    } else if let Some(len) = head.header("content-length") {
        let len: usize = len
            .trim()
            .parse()
            .map_err(|_| ReadError::Protocol(format!("bad Content-Length {len:?}")))?;
        if len > max_body {
            return Err(too_large(max_body));
        }
        Framing::Length(len)
    } else {
        Framing::UntilClose
    })
}

/// Reads responses from a stream: heads under `MAX_HEAD_BYTES` and `MAX_HEADERS`, bodies
/// under a caller's limit. Bytes read past the end of an answer stay `buffered`.
pub(crate) struct Reader<'s, S> {
    stream: &'s mut S,
    buf: Vec<u8>,
    /// Where the unparsed part of `buf` starts.
    pos: usize,
}

impl<'s, S: Read> Reader<'s, S> {
    pub(crate) fn new(stream: &'s mut S) -> Reader<'s, S> {
        Reader {
            stream,
            buf: Vec::with_capacity(READ_CHUNK),
            pos: 0,
        }
    }

    /// What was read and not yet parsed.
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// The bytes read past what was parsed, for whoever reads the stream next.
    pub(crate) fn into_buffered(mut self) -> Vec<u8> {
        self.buf.drain(..self.pos);
        self.buf
    }

    /// Reads more; `Ok(false)` at the end of the stream.
    fn fill(&mut self, in_body: bool) -> std::result::Result<bool, ReadError> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let start = self.buf.len();
        self.buf.resize(start + READ_CHUNK, 0);
        let read = loop {
            match self.stream.read(&mut self.buf[start..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match read {
            Ok(n) => {
                self.buf.truncate(start + n);
                Ok(n > 0)
            }
            Err(error) => {
                self.buf.truncate(start);
                Err(ReadError::Io {
                    in_body,
                    error,
                    fresh: self.buf.is_empty(),
                })
            }
        }
    }

    /// The next status line and headers, interim (1xx) ones included.
    pub(crate) fn head(&mut self) -> std::result::Result<Head, ReadError> {
        loop {
            if let Some((len, head)) = parse_head(&self.buf[self.pos..])? {
                self.pos += len;
                return Ok(head);
            }
            if self.buf.len() - self.pos > MAX_HEAD_BYTES {
                return Err(ReadError::Protocol(format!(
                    "the status line and headers exceed {MAX_HEAD_BYTES} bytes"
                )));
            }
            if !self.fill(false)? {
                return Err(ReadError::Closed {
                    fresh: self.buf.is_empty(),
                });
            }
        }
    }

    /// The body delimited by `framing`, at most `max_body` bytes.
    pub(crate) fn body(
        &mut self,
        framing: Framing,
        max_body: usize,
    ) -> std::result::Result<Vec<u8>, ReadError> {
        match framing {
            Framing::Empty => Ok(Vec::new()),
            Framing::Length(n) => self.exactly(n),
            Framing::Chunked => self.chunked(max_body),
            Framing::UntilClose => self.until_close(max_body),
        }
    }

    fn exactly(&mut self, n: usize) -> std::result::Result<Vec<u8>, ReadError> {
        while self.buf.len() - self.pos < n {
            if !self.fill(true)? {
                return Err(ReadError::Protocol(format!(
                    "the body ended after {} of {n} bytes (Content-Length)",
                    self.buf.len() - self.pos
                )));
            }
        }
        let body = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(body)
    }

    /// One line (without its CRLF) of at most `max` bytes.
    fn line(&mut self, max: usize) -> std::result::Result<Vec<u8>, ReadError> {
        loop {
            let rest = &self.buf[self.pos..];
            if let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
                let line = rest[..i].to_vec();
                self.pos += i + 2;
                return Ok(line);
            }
            if rest.len() > max {
                return Err(ReadError::Protocol(
                    "a chunk line or trailer is too long".into(),
                ));
            }
            if !self.fill(true)? {
                return Err(ReadError::Protocol("the chunked body ended early".into()));
            }
        }
    }

    fn chunked(&mut self, max_body: usize) -> std::result::Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        loop {
            let mut line = self.line(MAX_CHUNK_LINE)?;
            line.extend_from_slice(b"\r\n");
            let size = match httparse::parse_chunk_size(&line) {
                Ok(httparse::Status::Complete((_, size))) => size,
                _ => return Err(ReadError::Protocol("bad chunk size line".into())),
            };
            if size == 0 {
                // Trailer fields, if any, up to the empty line.
                while !self.line(MAX_HEAD_BYTES)?.is_empty() {}
                return Ok(body);
            }
            let size = usize::try_from(size).map_err(|_| too_large(max_body))?;
            if size > max_body.saturating_sub(body.len()) {
                return Err(too_large(max_body));
            }
            body.extend_from_slice(&self.exactly(size)?);
            if !self.line(1)?.is_empty() {
                return Err(ReadError::Protocol(
                    "a chunk is longer than its size line says".into(),
                ));
            }
        }
    }

    fn until_close(&mut self, max_body: usize) -> std::result::Result<Vec<u8>, ReadError> {
        while self.fill(true)? {
            if self.buf.len() - self.pos > max_body {
                return Err(too_large(max_body));
            }
        }
        let body = self.buf[self.pos..].to_vec();
        self.pos = self.buf.len();
        Ok(body)
    }
}

/// The head at the start of `buf`, with its length; None until it is complete.
fn parse_head(buf: &[u8]) -> std::result::Result<Option<(usize, Head)>, ReadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ReadError::Protocol(format!(
                "more than {MAX_HEADERS} headers"
            )));
        }
        Err(e) => return Err(ReadError::Protocol(format!("not HTTP/1.1 ({e})"))),
    };
    let head = Head {
        status: response.code.unwrap_or(0),
        version: response.version.unwrap_or(0),
        headers: response
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
    };
    Ok(Some((len, head)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that answers with `input`, `step` bytes per read, and records what was written.
    struct Peer {
        input: Vec<u8>,
        at: usize,
        step: usize,
        written: Vec<u8>,
    }

    impl Peer {
        fn new(input: &[u8], step: usize) -> Peer {
            Peer {
                input: input.to_vec(),
                at: 0,
                step,
                written: Vec::new(),
            }
        }
    }

    impl Read for Peer {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.input.len() - self.at);
            buf[..n].copy_from_slice(&self.input[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    impl Write for Peer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    const POST: Request<'static> = Request {
        method: "POST",
        path: "/describeSignalingChannel",
        headers: &[],
        body: b"{}",
    };

    fn run(answer: &[u8], step: usize, max: usize) -> std::result::Result<Exchanged, Failure> {
        exchange(&mut Peer::new(answer, step), "h:1", &POST, max)
    }

    fn fatal(r: std::result::Result<Exchanged, Failure>) -> Error {
        match r {
            Err(Failure::Fatal(e)) => e,
            other => panic!("expected a fatal failure, got {other:?}"),
        }
    }

    #[test]
    fn writes_the_request_in_order_with_length_and_host() {
        let headers = [("x-amz-date", "20240101T000000Z".to_owned())];
        let req = Request {
            headers: &headers,
            ..POST
        };
        let mut peer = Peer::new(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 64);
        exchange(&mut peer, "h:1", &req, 100).unwrap();
        let text = String::from_utf8(peer.written).unwrap();
        assert_eq!(
            text,
            format!(
                "POST /describeSignalingChannel HTTP/1.1\r\nhost: h:1\r\n\
                 x-amz-date: 20240101T000000Z\r\nuser-agent: {USER_AGENT}\r\n\
                 content-length: 2\r\n\r\n{{}}"
            )
        );
        let bad = [("x-amz-security-token", "a\r\nb".to_owned())];
        let req = Request {
            headers: &bad,
            ..POST
        };
        let e = fatal(exchange(&mut Peer::new(b"", 1), "h", &req, 100));
        assert_eq!(e.kind, ErrorKind::Internal);
        assert!(!e.message.contains("a\r\nb"));
    }

    #[test]
    fn content_length_bodies_one_byte_at_a_time() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Amzn-RequestId: r1\r\n\r\nhello";
        let (r, reusable) = run(answer, 1, 100).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(r.header("x-amzn-requestid"), Some("r1"));
        assert!(reusable);
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers() {
        let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                       4;ext=1\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nX-Trailer: t\r\n\r\n";
        for step in [1, 7, 4096] {
            let (r, reusable) = run(answer, step, 100).unwrap();
            assert_eq!(r.body, b"{\"a\":1}");
            assert!(reusable);
        }
        let bad_size = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(fatal(run(bad_size, 64, 100)).kind, ErrorKind::Protocol);
        let overlong =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n";
        let e = fatal(run(overlong, 64, 100));
        assert!(e.message.contains("longer than its size"), "{}", e.message);
    }

    #[test]
    fn bodies_over_the_limit_are_refused() {
        let declared = b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n";
        let e = fatal(run(declared, 64, 100));
        assert_eq!(e.kind, ErrorKind::Protocol);
        assert!(e.message.contains("larger than 100 bytes"), "{}", e.message);
        let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..11 {
            chunked.extend_from_slice(b"a\r\n0123456789\r\n");
        }
        assert!(
            fatal(run(&chunked, 64, 100))
                .message
                .contains("larger than")
        );
        let mut unframed = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        unframed.extend_from_slice(&[b'x'; 5000]);
        assert!(
            fatal(run(&unframed, 4096, 100))
                .message
                .contains("larger than")
        );
        let huge = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n";
        assert!(fatal(run(huge, 64, 100)).message.contains("larger than"));
        let mut long_head = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        long_head.extend_from_slice(&[b'y'; MAX_HEAD_BYTES + 10]);
        assert!(fatal(run(&long_head, 4096, 100)).message.contains("exceed"));
    }

    #[test]
    fn truncated_answers_are_protocol_errors_and_silence_is_stale() {
        for cut in [
            &b"HTTP/1.1 200 OK\r\nContent-Le"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
        ] {
            let e = fatal(run(cut, 3, 100));
            assert_eq!(e.kind, ErrorKind::Protocol, "{}", e.message);
        }
        assert!(matches!(run(b"", 1, 100), Err(Failure::Stale(_))));
        assert_eq!(
            fatal(run(b"SSH-2.0-OpenSSH\r\n\r\n", 64, 100)).kind,
            ErrorKind::Protocol
        );
    }

    #[test]
    fn keep_alive_only_when_the_answer_allows_it() {
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 403 Forbidden\r\n\
                    Content-Length: 2\r\n\r\nno";
        // Read in fives, the first answer comes with a byte of the next: a connection
        // holding bytes no request asked for is not reused.
        let mut peer = Peer::new(two, 5);
        let (first, reusable) = exchange(&mut peer, "h", &POST, 100).unwrap();
        assert_eq!((first.body.as_slice(), reusable), (&b"a"[..], false));
        let mut peer = Peer::new(two, 1);
        let (first, reusable) = exchange(&mut peer, "h", &POST, 100).unwrap();
        assert_eq!((first.status, reusable), (200, true));
        let (second, reusable) = exchange(&mut peer, "h", &POST, 100).unwrap();
        assert_eq!((second.status, second.body.as_slice()), (403, &b"no"[..]));
        assert!(reusable);
        assert_eq!(
            peer.written.len(),
            2 * encode_request("h", &POST).unwrap().len()
        );

        let close =
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n";
        assert!(!run(close, 64, 100).unwrap().1);
        let old = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(!run(old, 64, 100).unwrap().1);
        let (r, reusable) = run(b"HTTP/1.1 200 OK\r\n\r\nto the end", 4, 100).unwrap();
        assert_eq!((r.body.as_slice(), reusable), (&b"to the end"[..], false));
        let interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        let (r, reusable) = run(interim, 64, 100).unwrap();
        assert_eq!((r.status, reusable), (204, true));
    }
}
