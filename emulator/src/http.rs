//! Minimal HTTP/1.1 plumbing: request heads (parsed with `httparse`), responses, and the stream
//! wrapper that replays already-read bytes to the WebSocket handshake and can drop PONG frames.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use time::OffsetDateTime;
use time::macros::format_description;

/// Largest request head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct Head {
    /// Method.
    pub method: String,
    /// Raw path (before `?`).
    pub path: String,
    /// Raw query (after `?`, without it).
    pub query: String,
    /// Headers as received.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// First value of a header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether this asks for a WebSocket upgrade.
    pub fn is_websocket(&self) -> bool {
        self.header("upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
    }

    /// Whether the client asked to close after this request.
    pub fn wants_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }
}

/// Reads one request head. `buf` holds bytes already read (and keeps the bytes after the head).
/// Returns the head and the raw head bytes; `Ok(None)` on EOF before any byte.
pub fn read_head<S: Read>(s: &mut S, buf: &mut Vec<u8>) -> io::Result<Option<(Head, Vec<u8>)>> {
    let mut chunk = [0u8; 4096];
    loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let target = req.path.unwrap_or("/");
                    let (path, query) = target.split_once('?').unwrap_or((target, ""));
                    let head = Head {
                        method: req.method.unwrap_or("").to_string(),
                        path: path.to_string(),
                        query: query.to_string(),
                        headers: req
                            .headers
                            .iter()
                            .map(|h| {
                                (
                                    h.name.to_string(),
                                    String::from_utf8_lossy(h.value).into_owned(),
                                )
                            })
                            .collect(),
                    };
                    let raw: Vec<u8> = buf.drain(..n).collect();
                    return Ok(Some((head, raw)));
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            }
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "EOF inside request head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads a `Content-Length` body (the start may already be in `buf`).
pub fn read_body<S: Read>(s: &mut S, buf: &mut Vec<u8>, head: &Head) -> io::Result<Vec<u8>> {
    if head
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        return read_chunked(s, buf);
    }
    let len: usize = head
        .header("content-length")
        .map(|v| v.trim().parse().unwrap_or(usize::MAX))
        .unwrap_or(0);
    if len > MAX_BODY {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "body too large"));
    }
    let mut chunk = [0u8; 4096];
    while buf.len() < len {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "EOF inside body",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(buf.drain(..len).collect())
}

fn read_chunked<S: Read>(s: &mut S, buf: &mut Vec<u8>) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut fill = |buf: &mut Vec<u8>| -> io::Result<()> {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "EOF inside chunked body",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        Ok(())
    };
    loop {
        let line_end = loop {
            if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                break p;
            }
            fill(buf)?;
        };
        let line = String::from_utf8_lossy(&buf[..line_end]).to_string();
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        buf.drain(..line_end + 2);
        if out.len() + size > MAX_BODY {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "body too large"));
        }
        while buf.len() < size + 2 {
            fill(buf)?;
        }
        out.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
        if size == 0 {
            // Trailers are not supported; the final CRLF was consumed above.
            return Ok(out);
        }
    }
}

/// RFC 1123 date as in the HTTP `Date` header.
pub fn http_date(unix_secs: i64) -> String {
    let fmt = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    OffsetDateTime::from_unix_timestamp(unix_secs)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(&fmt)
        .unwrap_or_default()
}

/// Reason phrase for a status code.
pub fn reason(status: u16) -> &'static str {
    tungstenite::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown")
}

/// Writes a whole response in one write.
pub fn write_response<W: Write>(
    w: &mut W,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        out.push_str(k);
        out.push_str(": ");
        out.push_str(v);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    w.write_all(&bytes)?;
    w.flush()
}

/// Outbound WebSocket frame tracker that can drop PONG frames (server frames are unmasked).
#[derive(Debug, Default)]
struct OutFilter {
    header: Vec<u8>,
    remaining: u64,
    dropping: bool,
}

impl OutFilter {
    /// Needed header length once the first two bytes are known.
    fn header_len(h: &[u8]) -> Option<usize> {
        if h.len() < 2 {
            return None;
        }
        let masked = h[1] & 0x80 != 0;
        let base = match h[1] & 0x7f {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        Some(base + if masked { 4 } else { 0 })
    }

    fn payload_len(h: &[u8]) -> u64 {
        match h[1] & 0x7f {
            126 => u16::from_be_bytes([h[2], h[3]]) as u64,
            127 => u64::from_be_bytes(h[2..10].try_into().unwrap_or([0; 8])),
            n => n as u64,
        }
    }

    /// Processes outgoing bytes, returning what must really go out.
    fn filter(&mut self, mut data: &[u8], drop_pongs: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len());
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = (self.remaining.min(data.len() as u64)) as usize;
                if !self.dropping {
                    out.extend_from_slice(&data[..n]);
                }
                self.remaining -= n as u64;
                data = &data[n..];
                continue;
            }
            self.header.push(data[0]);
            data = &data[1..];
            if let Some(need) = Self::header_len(&self.header)
                && self.header.len() == need
            {
                let opcode = self.header[0] & 0x0f;
                self.dropping = drop_pongs && opcode == 0x0a;
                self.remaining = Self::payload_len(&self.header);
                if !self.dropping {
                    out.extend_from_slice(&self.header);
                }
                self.header.clear();
            }
        }
        out
    }
}

/// The stream handed to tungstenite: replays the request head already read, then reads from the
/// TLS stream; on the way out it can drop PONG frames (the `StopPongs` fault).
#[derive(Debug)]
pub struct WsIo<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
    out: OutFilter,
    /// Frames are tracked only after the handshake response went out.
    framing: bool,
    stop_pongs: Arc<AtomicBool>,
}

impl<S> WsIo<S> {
    /// Wraps `inner`, replaying `prefix` first.
    pub fn new(inner: S, prefix: Vec<u8>, stop_pongs: Arc<AtomicBool>) -> Self {
        WsIo {
            prefix,
            pos: 0,
            inner,
            out: OutFilter::default(),
            framing: false,
            stop_pongs,
        }
    }

    /// Call once the handshake is done: from now on the output is WebSocket frames.
    pub fn start_framing(&mut self) {
        self.framing = true;
    }
}

impl<S: Read> Read for WsIo<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.prefix.len() {
            let n = (self.prefix.len() - self.pos).min(buf.len());
            buf[..n].copy_from_slice(&self.prefix[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

impl<S: Write> Write for WsIo<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.framing {
            self.inner.write_all(buf)?;
            return Ok(buf.len());
        }
        let out = self.out.filter(buf, self.stop_pongs.load(Ordering::SeqCst));
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_drops_only_pongs_across_split_writes() {
        let text = [0x81u8, 3, b'a', b'b', b'c'];
        let pong = [0x8au8, 2, 9, 9];
        let mut stream: Vec<u8> = Vec::new();
        stream.extend_from_slice(&text);
        stream.extend_from_slice(&pong);
        stream.extend_from_slice(&text);
        let mut f = OutFilter::default();
        let mut out = Vec::new();
        for b in &stream {
            out.extend(f.filter(std::slice::from_ref(b), true));
        }
        assert_eq!(out, [text, text].concat());
        let mut f = OutFilter::default();
        assert_eq!(f.filter(&stream, false), stream);
    }

    #[test]
    fn date_format() {
        assert_eq!(http_date(1_699_332_485), "Tue, 07 Nov 2023 04:48:05 GMT");
    }
}
