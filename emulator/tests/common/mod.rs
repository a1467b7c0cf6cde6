//! Test helpers: an independent SigV4 signer/presigner (not the emulator's verifier code), a TLS
//! WebSocket client and an HTTPS POST client, all over real loopback TLS.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use kvs_signaling_emulator::{Emulator, EmulatorConfig, EmulatorEnv};
use native_tls::TlsStream;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

pub type Ws = WebSocket<TlsStream<TcpStream>>;

/// Bound on every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

fn sha_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Percent-encoding per RFC 3986 (unreserved kept).
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn amz_date(t: i64) -> String {
    let dt = time::OffsetDateTime::from_unix_timestamp(t).unwrap();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        dt.year(),
        dt.month() as u8,
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

fn sign(secret: &str, date8: &str, region: &str, sts: &str) -> String {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date8);
    let k = hmac(&k, region);
    let k = hmac(&k, "kinesisvideo");
    let k = hmac(&k, "aws4_request");
    hex::encode(hmac(&k, sts))
}

/// Knobs of the presigner (defaults = a correct URL).
#[derive(Debug, Clone, Default)]
pub struct Opts {
    pub date: Option<i64>,
    pub expires: Option<i64>,
    pub secret: Option<String>,
    pub access_key_id: Option<String>,
    pub token: Option<Option<String>>,
    pub sign_host: Option<String>,
    pub arn: Option<String>,
    pub client_id: Option<String>,
    pub master: bool,
    pub tamper: bool,
}

fn host_of(url: &str) -> String {
    url.split("://")
        .nth(1)
        .unwrap()
        .trim_end_matches('/')
        .to_string()
}

/// Presigned ConnectAsViewer (or ConnectAsMaster with `o.master`) URL for the emulator.
pub fn presign(env: &EmulatorEnv, o: &Opts) -> String {
    let t = o.date.unwrap_or_else(now);
    let date = amz_date(t);
    let date8 = &date[..8];
    let akid = o
        .access_key_id
        .clone()
        .unwrap_or_else(|| env.access_key_id.clone());
    let token = o.token.clone().unwrap_or_else(|| env.session_token.clone());
    let mut params: Vec<(String, String)> = vec![
        ("X-Amz-Algorithm".into(), "AWS4-HMAC-SHA256".into()),
        (
            "X-Amz-ChannelARN".into(),
            o.arn.clone().unwrap_or_else(|| env.channel_arn.clone()),
        ),
        (
            "X-Amz-Credential".into(),
            format!("{akid}/{date8}/{}/kinesisvideo/aws4_request", env.region),
        ),
        ("X-Amz-Date".into(), date.clone()),
        ("X-Amz-Expires".into(), o.expires.unwrap_or(299).to_string()),
        ("X-Amz-SignedHeaders".into(), "host".into()),
    ];
    if !o.master {
        params.push((
            "X-Amz-ClientId".into(),
            o.client_id.clone().unwrap_or_else(|| env.client_id.clone()),
        ));
    }
    if let Some(tok) = token {
        params.push(("X-Amz-Security-Token".into(), tok));
    }
    let mut encoded: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    encoded.sort();
    let query = encoded.join("&");
    let host = o
        .sign_host
        .clone()
        .unwrap_or_else(|| host_of(&env.wss_endpoint));
    let creq = format!("GET\n/\n{query}\nhost:{host}\n\nhost\n{}", sha_hex(b""));
    let sts = format!(
        "AWS4-HMAC-SHA256\n{date}\n{date8}/{}/kinesisvideo/aws4_request\n{}",
        env.region,
        sha_hex(creq.as_bytes())
    );
    let secret = o
        .secret
        .clone()
        .unwrap_or_else(|| env.secret_access_key.clone());
    let mut sig = sign(&secret, date8, &env.region, &sts);
    if o.tamper {
        let last = if sig.ends_with('0') { '1' } else { '0' };
        sig.pop();
        sig.push(last);
    }
    format!("{}/?{query}&X-Amz-Signature={sig}", env.wss_endpoint)
}

/// TLS connection to the emulator trusting only its CA.
pub fn tls_connect(env: &EmulatorEnv) -> TlsStream<TcpStream> {
    tls_connect_to(env, &env.https_endpoint)
}

/// TLS to the emulator's loopback listener, verifying the certificate for the host of `url`
/// (advertised names need no DNS: the TCP connection goes to 127.0.0.1).
pub fn tls_connect_to(env: &EmulatorEnv, url: &str) -> TlsStream<TcpStream> {
    let host = host_of(url);
    let (name, port) = host.rsplit_once(':').unwrap_or((&host, "443"));
    let port: u16 = port.parse().unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let ca = native_tls::Certificate::from_pem(&std::fs::read(&env.ca_file).unwrap()).unwrap();
    let connector = native_tls::TlsConnector::builder()
        .add_root_certificate(ca)
        .disable_built_in_roots(true)
        .build()
        .unwrap();
    connector.connect(name, tcp).unwrap()
}

/// An upgrade refused by the emulator.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub status: u16,
    pub error_type: Option<String>,
    pub date: Option<String>,
    pub request_id: Option<String>,
    pub body: String,
}

impl Rejection {
    pub fn message(&self) -> String {
        let v: Value = serde_json::from_str(&self.body).unwrap_or(Value::Null);
        v["message"].as_str().unwrap_or("").to_string()
    }
}

/// WebSocket connect with a presigned URL.
pub fn ws_connect(env: &EmulatorEnv, url: &str) -> Result<Ws, Rejection> {
    let stream = tls_connect(env);
    let req = url.into_client_request().unwrap();
    match tungstenite::client::client(req, stream) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            let h = |n: &str| {
                resp.headers()
                    .get(n)
                    .map(|v| v.to_str().unwrap().to_string())
            };
            Err(Rejection {
                status: resp.status().as_u16(),
                error_type: h("x-amzn-errortype"),
                date: h("date"),
                request_id: h("x-amzn-requestid"),
                body: resp
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default(),
            })
        }
        Err(e) => panic!("unexpected handshake error: {e}"),
    }
}

pub fn viewer(emu: &Emulator, client_id: &str) -> Ws {
    let o = Opts {
        client_id: Some(client_id.into()),
        ..Default::default()
    };
    ws_connect(emu.env(), &presign(emu.env(), &o)).expect("viewer connects")
}

pub fn master(emu: &Emulator) -> Ws {
    let o = Opts {
        master: true,
        ..Default::default()
    };
    ws_connect(emu.env(), &presign(emu.env(), &o)).expect("master connects")
}

/// Next text frame as JSON (pings are answered by tungstenite); panics after `WAIT`.
pub fn recv(ws: &mut Ws) -> Value {
    match recv_within(ws, WAIT) {
        Some(v) => v,
        None => panic!("no frame within {WAIT:?}"),
    }
}

/// Next text frame within `d`, or None.
pub fn recv_within(ws: &mut Ws, d: Duration) -> Option<Value> {
    let deadline = Instant::now() + d;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        ws.get_ref().get_ref().set_read_timeout(Some(left)).unwrap();
        match ws.read() {
            Ok(Message::Text(t)) => {
                return Some(
                    serde_json::from_str(t.as_str()).unwrap_or(Value::String(t.to_string())),
                );
            }
            Ok(Message::Close(_)) => return None,
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            Err(_) => return None,
        }
    }
}

/// Reads until the connection ends; returns the close frame code if any.
pub fn wait_closed(ws: &mut Ws) -> Result<Option<u16>, String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("not closed in time".into());
        }
        ws.get_ref().get_ref().set_read_timeout(Some(left)).unwrap();
        match ws.read() {
            Ok(Message::Close(f)) => return Ok(f.map(|f| u16::from(f.code))),
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("not closed in time".into());
            }
            Err(e) => return Err(format!("{e}")),
        }
    }
}

pub fn send(ws: &mut Ws, v: &Value) {
    ws.send(Message::text(v.to_string())).unwrap();
}

pub fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

pub fn unb64(s: &str) -> String {
    use base64::Engine;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    /// Asserts an AWS-style error answer: the status and the `x-amzn-ErrorType` exception.
    pub fn assert_error(&self, status: u16, error_type: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("x-amzn-errortype"),
            Some(error_type),
            "{self:?}"
        );
    }

    pub fn header(&self, n: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

fn read_response<S: Read>(s: &mut S) -> Resp {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "EOF before response");
        buf.extend_from_slice(&chunk[..n]);
        let mut hs = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut hs);
        if let httparse::Status::Complete(len) = r.parse(&buf).unwrap() {
            let headers: Vec<(String, String)> = r
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let status = r.code.unwrap();
            let cl: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = buf[len..].to_vec();
            while body.len() < cl {
                let n = s.read(&mut chunk).unwrap();
                assert!(n > 0, "EOF in body");
                body.extend_from_slice(&chunk[..n]);
            }
            return Resp {
                status,
                headers,
                body: String::from_utf8_lossy(&body[..cl]).into_owned(),
            };
        }
    }
}

/// Knobs of the header signer.
#[derive(Debug, Clone, Default)]
pub struct PostOpts {
    pub date: Option<i64>,
    pub secret: Option<String>,
    pub access_key_id: Option<String>,
    /// Some(None) = no token header at all.
    pub token: Option<Option<String>>,
    pub tamper: bool,
    pub unsigned: bool,
}

/// Raw bytes of a SigV4-signed (C-SDK style: host;user-agent;x-amz-date, token unsigned) JSON
/// POST; `close` adds `Connection: close`.
pub fn signed_request(
    env: &EmulatorEnv,
    base: &str,
    path: &str,
    body: &str,
    o: &PostOpts,
    close: bool,
) -> String {
    let host = host_of(base);
    let date = amz_date(o.date.unwrap_or_else(now));
    let date8 = &date[..8];
    let ua = "emulator-tests/1.0";
    let creq = format!(
        "POST\n{path}\n\nhost:{host}\nuser-agent:{ua}\nx-amz-date:{date}\n\nhost;user-agent;x-amz-date\n{}",
        sha_hex(body.as_bytes())
    );
    let scope = format!("{date8}/{}/kinesisvideo/aws4_request", env.region);
    let sts = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        sha_hex(creq.as_bytes())
    );
    let secret = o
        .secret
        .clone()
        .unwrap_or_else(|| env.secret_access_key.clone());
    let mut sig = sign(&secret, date8, &env.region, &sts);
    if o.tamper {
        let last = if sig.ends_with('0') { '1' } else { '0' };
        sig.pop();
        sig.push(last);
    }
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Amz-Date: {date}\r\n",
        body.len()
    );
    let token = o.token.clone().unwrap_or_else(|| env.session_token.clone());
    if let Some(t) = &token {
        req.push_str(&format!("x-amz-security-token: {t}\r\n"));
    }
    if !o.unsigned {
        req.push_str(&format!(
            "Authorization: AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;user-agent;x-amz-date, Signature={sig}\r\n",
            o.access_key_id.as_deref().unwrap_or(&env.access_key_id)
        ));
    }
    if close {
        req.push_str("Connection: close\r\n");
    }
    req.push_str("\r\n");
    req.push_str(body);
    req
}

/// SigV4-signed JSON POST on a fresh TLS connection.
/// A correctly signed POST to the control plane with default options.
pub fn post_cp(env: &EmulatorEnv, path: &str, body: &str) -> Resp {
    post(
        env,
        &env.control_plane_url,
        path,
        body,
        &PostOpts::default(),
    )
}

pub fn post(env: &EmulatorEnv, base: &str, path: &str, body: &str, o: &PostOpts) -> Resp {
    let req = signed_request(env, base, path, body, o, true);
    let mut s = tls_connect(env);
    s.write_all(req.as_bytes()).unwrap();
    read_response(&mut s)
}

/// Reads one HTTP response from `s`.
pub fn read_one_response<S: Read>(s: &mut S) -> Resp {
    read_response(s)
}

/// Plain HTTP request to the admin listener.
pub fn admin(env: &EmulatorEnv, method: &str, path: &str, body: &str) -> Resp {
    let host = host_of(&env.admin_url);
    let mut s = TcpStream::connect(&host).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    read_response(&mut s)
}

pub fn start() -> Emulator {
    Emulator::start(EmulatorConfig::default()).unwrap()
}

pub fn start_with(f: impl FnOnce(&mut EmulatorConfig)) -> Emulator {
    let mut cfg = EmulatorConfig::default();
    f(&mut cfg);
    Emulator::start(cfg).unwrap()
}

/// A small browser-like offer.
pub const OFFER_SDP: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\na=msid-semantic: WMS\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11\r\na=setup:actpass\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:96 H264/90000\r\na=rtpmap:97 rtx/90000\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sctp-port:5000\r\n";

pub fn offer_frame() -> Value {
    let payload = serde_json::json!({"type": "offer", "sdp": OFFER_SDP}).to_string();
    serde_json::json!({"action": "SDP_OFFER", "messagePayload": b64(&payload)})
}
