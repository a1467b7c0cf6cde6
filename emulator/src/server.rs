//! Shared state, the TLS listener (control plane, GetIceServerConfig, WSS) and the admin listener.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::config::{EmulatorConfig, Fault, Operation, Tamper, random_bytes, random_string};
use crate::events::{Event, EventLog};
use crate::http;

/// Poll interval of connection loops (socket read timeout).
pub(crate) const POLL: Duration = Duration::from_millis(5);
/// Bound on a TLS handshake / request head read.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Keep-alive HTTP connections are closed after this long without a request.
const HTTP_IDLE: Duration = Duration::from_secs(30);

/// A signaling channel.
#[derive(Debug, Clone)]
pub(crate) struct Channel {
    pub name: String,
    pub arn: String,
    pub creation_ms: i64,
    pub version: String,
    pub channel_type: String,
    pub message_ttl: u64,
    /// Tags in insertion order (TagResource overwrites a key in place).
    pub tags: Vec<(String, String)>,
}

/// Commands to a connection thread.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// Send a text frame.
    Text(String, &'static str),
    /// Send a binary frame.
    Binary(Vec<u8>),
    /// Close with a close frame.
    Close(u16, String),
    /// GO_AWAY was sent; close after the grace.
    CloseAfter(Duration),
    /// Abrupt close (RST).
    Drop,
    /// Stop reading and answering; drop after the duration (None = never).
    Freeze(Option<Duration>),
}

/// A connection registered in the hub.
#[derive(Debug, Clone)]
pub(crate) struct ConnRef {
    pub id: u64,
    pub tx: Sender<Cmd>,
}

/// Who is connected.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    /// (channel ARN, client id) → viewer connection, in connection order.
    pub viewers: Vec<(String, String, ConnRef)>,
    /// channel ARN → master connection.
    pub masters: HashMap<String, ConnRef>,
    /// channel ARN → viewer messages waiting for a master (deadline, frame).
    pub pending: HashMap<String, VecDeque<(Instant, String)>>,
}

/// Calls accepted in the last second (a sliding window).
#[derive(Debug, Default)]
pub(crate) struct RateWindow(VecDeque<Instant>);

impl RateWindow {
    /// Records a call if fewer than `per_second` were accepted in the last second.
    pub fn admit(&mut self, per_second: u32) -> bool {
        let now = Instant::now();
        while self
            .0
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            self.0.pop_front();
        }
        if self.0.len() >= per_second as usize {
            return false;
        }
        self.0.push_back(now);
        true
    }
}

/// The exception every rate limit answers with.
pub(crate) fn limit_exceeded(what: &str) -> ApiError {
    ApiError::new(
        400,
        "ClientLimitExceededException",
        format!("Your request has been throttled because you have exceeded the limit of {what}."),
    )
}

/// A pending `FailNext`.
#[derive(Debug, Clone)]
pub(crate) struct FailRule {
    pub operation: Operation,
    pub status: u16,
    pub error_type: String,
    pub message: String,
    pub remaining: u32,
}

/// An error answer.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: u16,
    pub error_type: String,
    pub message: String,
    /// Body key: `message` (auth layer, InvalidClient, SessionExpired) or `Message` (modelled).
    pub lower_key: bool,
}

impl ApiError {
    pub fn new(status: u16, error_type: &str, message: impl Into<String>) -> ApiError {
        let lower_key = matches!(
            error_type,
            "InvalidClientException" | "SessionExpiredException"
        );
        ApiError {
            status,
            error_type: error_type.into(),
            message: message.into(),
            lower_key,
        }
    }

    /// A refused WebSocket upgrade (ConnectAsViewer / ConnectAsMaster documents 403
    /// `AccessDeniedException` for every auth failure).
    pub fn auth(message: impl Into<String>) -> ApiError {
        ApiError {
            lower_key: true,
            ..ApiError::new(403, "AccessDeniedException", message)
        }
    }

    /// A refused control-plane request: the auth layer's own error type, lower-case `message`.
    pub fn control_plane_auth(e: &crate::sigv4::AuthError) -> ApiError {
        ApiError {
            lower_key: true,
            ..ApiError::new(403, e.control_plane_error_type(), e.message())
        }
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "InvalidArgumentException", message)
    }

    pub fn not_found() -> ApiError {
        ApiError::new(
            404,
            "ResourceNotFoundException",
            "The requested channel is not found or not active.",
        )
    }

    pub fn body(&self) -> String {
        let key = if self.lower_key { "message" } else { "Message" };
        json!({ key: self.message }).to_string()
    }
}

/// Everything the threads share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub cfg: EmulatorConfig,
    pub events: EventLog,
    pub clock_offset: AtomicI64,
    pub stop_pongs: Arc<AtomicBool>,
    pub candidates_before_answer: AtomicBool,
    pub handshake_delay_ms: AtomicU64,
    pub stall_next_ms: AtomicU64,
    /// 0 = no idle timeout.
    pub idle_timeout_secs: AtomicU64,
    /// 0 = no lifetime cap.
    pub max_lifetime_secs: AtomicU64,
    pub fail_rules: Mutex<Vec<FailRule>>,
    /// Pending `TamperNext` faults, applied in order.
    pub tampers: Mutex<Vec<Tamper>>,
    /// Per-channel rate windows: (limit name, channel ARN) → accepted calls in the last second.
    pub rates: Mutex<HashMap<(&'static str, String), RateWindow>>,
    /// `ServerDown`: until then new TCP connections are cut at once.
    pub down_until: Mutex<Option<Instant>>,
    pub channels: Mutex<Vec<Channel>>,
    pub hub: Mutex<Hub>,
    pub shutdown: AtomicBool,
    pub next_conn: AtomicU64,
    pub threads: Mutex<Vec<JoinHandle<()>>>,
    /// VIEWER WSS endpoint.
    pub wss_endpoint: String,
    /// MASTER WSS endpoint.
    pub master_wss_endpoint: String,
    pub https_endpoint: String,
    /// Credentials issued by the IoT credentials provider (iot.rs), accepted until they expire.
    pub iot_issued: Mutex<Vec<crate::config::Credential>>,
    /// The TLS listener's address (re-bound after `ServerDown`).
    pub tls_addr: std::net::SocketAddr,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn system_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A random request id shaped like a UUID.
pub(crate) fn request_id() -> String {
    let b = random_bytes(16);
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

impl Shared {
    /// The emulator's clock (system clock + offset), Unix seconds.
    pub fn now(&self) -> i64 {
        system_secs() + self.clock_offset.load(Ordering::SeqCst)
    }

    /// Checks a per-channel rate limit (None = unlimited); records a `limit_exceeded` event
    /// when over it.
    pub fn admit_channel(
        &self,
        limit: &'static str,
        per_second: Option<u32>,
        channel_arn: &str,
        client: &str,
    ) -> bool {
        let Some(n) = per_second else { return true };
        let ok = lock(&self.rates)
            .entry((limit, channel_arn.to_string()))
            .or_default()
            .admit(n);
        if !ok {
            self.emit(Event::LimitExceeded {
                limit: limit.into(),
                channel_arn: channel_arn.into(),
                client: client.into(),
            });
        }
        ok
    }

    /// Whether the server plays dead (`Fault::ServerDown`).
    pub fn server_down(&self) -> bool {
        lock(&self.down_until).is_some_and(|t| Instant::now() < t)
    }

    pub fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    pub fn emit(&self, event: Event) {
        self.events.emit(event);
    }

    /// Headers every answer carries.
    pub fn common_headers(&self, request_id: &str) -> Vec<(String, String)> {
        vec![
            ("Content-Type".into(), "application/json".into()),
            ("x-amzn-RequestId".into(), request_id.into()),
            ("Date".into(), http::http_date(self.now())),
        ]
    }

    pub fn error_type_value(&self, t: &str) -> String {
        match &self.cfg.error_type_suffix {
            Some(s) => format!("{t}:{s}"),
            None => t.to_string(),
        }
    }

    /// Consumes one matching `FailNext`, if any.
    pub fn take_failure(&self, op: Operation) -> Option<ApiError> {
        let err = {
            let mut rules = lock(&self.fail_rules);
            let idx = rules.iter().position(|r| {
                r.remaining > 0 && (r.operation == op || r.operation == Operation::Any)
            })?;
            let r = &mut rules[idx];
            r.remaining -= 1;
            let err = ApiError::new(r.status, &r.error_type, r.message.clone());
            if r.remaining == 0 {
                rules.remove(idx);
            }
            err
        };
        self.emit(Event::FaultApplied {
            operation: op.name().into(),
            status: err.status,
            error_type: err.error_type.clone(),
        });
        Some(err)
    }

    /// Every credential accepted now: the configured ones and those the IoT credentials
    /// provider issued (iot.rs).
    pub fn accepted_credentials(&self) -> Vec<crate::config::Credential> {
        let mut all = self.cfg.credentials.clone();
        all.extend(lock(&self.iot_issued).iter().cloned());
        all
    }

    /// The SigV4 verifier over `credentials` (see `accepted_credentials`) with this emulator's
    /// region, clock and tolerances.
    pub fn verifier<'a>(
        &'a self,
        credentials: &'a [crate::config::Credential],
    ) -> crate::sigv4::Verifier<'a> {
        crate::sigv4::Verifier {
            credentials,
            region: &self.cfg.region,
            service: crate::sigv4::SERVICE,
            now: self.now(),
            max_skew_secs: self.cfg.max_skew_secs,
            accept_host_without_port: self.cfg.accept_host_without_port,
        }
    }

    /// Consumes one pending `TamperNext` for `op`, if any.
    pub fn take_tamper(&self, op: Operation) -> Option<Tamper> {
        let mut tampers = lock(&self.tampers);
        let idx = tampers.iter().position(|t| t.operation() == op)?;
        Some(tampers.remove(idx))
    }

    pub fn channel_by_name(&self, name: &str) -> Option<Channel> {
        lock(&self.channels)
            .iter()
            .find(|c| c.name == name)
            .cloned()
    }

    pub fn channel_by_arn(&self, arn: &str) -> Option<Channel> {
        lock(&self.channels).iter().find(|c| c.arn == arn).cloned()
    }

    /// A fresh channel `Version` (the service changes it on every update).
    pub fn new_version() -> String {
        random_string(
            20,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        )
    }

    pub fn new_channel(&self, name: &str, channel_type: &str, ttl: u64) -> Channel {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Channel {
            name: name.into(),
            arn: format!(
                "arn:aws:kinesisvideo:{}:{}:channel/{}/{}",
                self.cfg.region, self.cfg.account_id, name, ms
            ),
            creation_ms: ms,
            version: Shared::new_version(),
            channel_type: channel_type.into(),
            message_ttl: ttl,
            tags: Vec::new(),
        }
    }

    /// Viewers matching `client_id` (all when None), with their channel.
    pub fn targets(&self, client_id: Option<&str>) -> Result<Vec<(String, ConnRef)>, String> {
        let hub = lock(&self.hub);
        let list: Vec<(String, ConnRef)> = hub
            .viewers
            .iter()
            .filter(|(_, id, _)| client_id.is_none_or(|c| c == id))
            .map(|(_, id, c)| (id.clone(), c.clone()))
            .collect();
        if let Some(c) = client_id
            && list.is_empty()
        {
            return Err(format!("no connected viewer with client id '{c}'"));
        }
        Ok(list)
    }

    /// Applies a fault.
    pub fn inject(&self, fault: Fault) -> Result<(), String> {
        self.emit(Event::Fault {
            fault: fault.clone(),
        });
        match fault {
            Fault::GoAway {
                client_id,
                grace_ms,
            } => {
                for (_, c) in self.targets(client_id.as_deref())? {
                    let _ = c.tx.send(Cmd::Text(
                        json!({"messageType": "GO_AWAY"}).to_string(),
                        "GO_AWAY",
                    ));
                    let _ = c.tx.send(Cmd::CloseAfter(Duration::from_millis(grace_ms)));
                }
            }
            Fault::ReconnectIceServer { client_id } => {
                for (_, c) in self.targets(client_id.as_deref())? {
                    let _ = c.tx.send(Cmd::Text(
                        json!({"messageType": "RECONNECT_ICE_SERVER"}).to_string(),
                        "RECONNECT_ICE_SERVER",
                    ));
                }
            }
            Fault::DropConnection { client_id } => {
                for (_, c) in self.targets(client_id.as_deref())? {
                    let _ = c.tx.send(Cmd::Drop);
                }
            }
            Fault::FailNext {
                operation,
                status,
                error_type,
                message,
                count,
            } => {
                if !(100..=599).contains(&status) || status == 101 || (200..300).contains(&status) {
                    return Err(format!(
                        "FailNext status must be an error status, not {status}"
                    ));
                }
                lock(&self.fail_rules).push(FailRule {
                    operation,
                    status,
                    error_type,
                    message,
                    remaining: count,
                });
            }
            Fault::StallHandshake { ms } => self.stall_next_ms.store(ms.max(1), Ordering::SeqCst),
            Fault::HandshakeDelay { ms } => self.handshake_delay_ms.store(ms, Ordering::SeqCst),
            Fault::StopPongs(b) => self.stop_pongs.store(b, Ordering::SeqCst),
            Fault::ClockOffset { secs } => self.clock_offset.store(secs, Ordering::SeqCst),
            Fault::CandidatesBeforeAnswer(b) => {
                self.candidates_before_answer.store(b, Ordering::SeqCst)
            }
            Fault::SendRaw { client_id, frame } => {
                let cmd = crate::signaling::raw_frame(&frame, self.cfg.max_payload_len);
                for (_, c) in self.targets(client_id.as_deref())? {
                    let _ = c.tx.send(match &cmd {
                        Cmd::Text(t, k) => Cmd::Text(t.clone(), k),
                        Cmd::Binary(b) => Cmd::Binary(b.clone()),
                        _ => unreachable!("raw frames are text or binary"),
                    });
                }
            }
            Fault::IdleTimeout { secs } => self.idle_timeout_secs.store(secs, Ordering::SeqCst),
            Fault::MaxLifetime { secs } => self.max_lifetime_secs.store(secs, Ordering::SeqCst),
            Fault::TamperNext(t) => lock(&self.tampers).push(t),
            Fault::Close {
                client_id,
                code,
                reason,
            } => {
                if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
                    return Err(format!("Close code {code} cannot be sent in a close frame"));
                }
                for (_, c) in self.targets(client_id.as_deref())? {
                    let _ = c.tx.send(Cmd::Close(code, reason.clone()));
                }
            }
            Fault::Freeze { client_id, ms } => {
                let d = (ms > 0).then(|| Duration::from_millis(ms));
                for (_, c) in self.targets(client_id.as_deref())? {
                    let _ = c.tx.send(Cmd::Freeze(d));
                }
            }
            Fault::ServerDown { ms } => {
                *lock(&self.down_until) = Some(Instant::now() + Duration::from_millis(ms));
                {
                    let hub = lock(&self.hub);
                    for c in hub
                        .viewers
                        .iter()
                        .map(|(_, _, c)| c)
                        .chain(hub.masters.values())
                    {
                        let _ = c.tx.send(Cmd::Drop);
                    }
                }
                // Wake the accept loop so it closes the listener now.
                let _ = TcpStream::connect_timeout(&self.tls_addr, Duration::from_secs(1));
            }
        }
        Ok(())
    }

    pub fn spawn(self: &Arc<Self>, name: &str, f: impl FnOnce() + Send + 'static) {
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .expect("spawn thread");
        let mut threads = lock(&self.threads);
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
    }
}

/// Accept loop of the TLS listener.
pub(crate) fn tls_accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    acceptor: Arc<native_tls::TlsAcceptor>,
) {
    let mut listener = listener;
    loop {
        let stream = listener.accept().map(|(s, _)| s);
        if shared.is_shutdown() {
            break;
        }
        if shared.server_down() {
            // Closing the socket makes the kernel refuse new connections (RST to the SYN).
            drop(stream);
            let addr = shared.tls_addr;
            drop(listener);
            let left = lock(&shared.down_until)
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or_default();
            shared.emit(Event::ServerDown {
                ms: left.as_millis() as u64,
            });
            listener = loop {
                if shared.is_shutdown() {
                    return;
                }
                if !shared.server_down()
                    && let Ok(l) = TcpListener::bind(addr)
                {
                    break l;
                }
                std::thread::sleep(POLL * 4);
            };
            shared.emit(Event::ServerUp {
                addr: addr.to_string(),
            });
            continue;
        }
        let Ok(stream) = stream else { continue };
        shared.emit(Event::TcpAccept {
            peer: stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_default(),
        });
        let s2 = shared.clone();
        let acc = acceptor.clone();
        shared.spawn("emu-conn", move || {
            if let Err(e) = handle_tls_conn(&s2, stream, &acc) {
                s2.emit(Event::ConnectionError {
                    error: e.to_string(),
                });
            }
        });
    }
}

/// Read/write wrapper that retries on read timeouts until shutdown or a deadline, so blocking
/// HTTP parsing can use a short socket timeout.
pub(crate) struct Patient<'a, S> {
    pub inner: S,
    pub shared: &'a Shared,
    pub deadline: Instant,
}

impl<S: Read> Read for Patient<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.shared.is_shutdown() || Instant::now() >= self.deadline {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "idle"));
                    }
                }
                r => return r,
            }
        }
    }
}

impl<S: Write> Write for Patient<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn handle_tls_conn(
    shared: &Arc<Shared>,
    tcp: TcpStream,
    acceptor: &native_tls::TlsAcceptor,
) -> io::Result<()> {
    let _ = tcp.set_nodelay(true);
    tcp.set_read_timeout(Some(Duration::from_millis(50)))?;
    let raw_tcp = tcp.try_clone()?;
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let mut tls = match acceptor.accept(tcp) {
        Ok(s) => s,
        Err(native_tls::HandshakeError::WouldBlock(mut mid)) => loop {
            if shared.is_shutdown() || Instant::now() >= deadline {
                return Ok(());
            }
            match mid.handshake() {
                Ok(s) => break s,
                Err(native_tls::HandshakeError::WouldBlock(m)) => mid = m,
                Err(native_tls::HandshakeError::Failure(e)) => {
                    shared.emit(Event::TlsError {
                        error: e.to_string(),
                    });
                    return Ok(());
                }
            }
        },
        Err(native_tls::HandshakeError::Failure(e)) => {
            shared.emit(Event::TlsError {
                error: e.to_string(),
            });
            return Ok(());
        }
    };
    let mut buf = Vec::new();
    loop {
        let head = {
            let mut p = Patient {
                inner: &mut tls,
                shared,
                deadline: Instant::now() + HTTP_IDLE,
            };
            match http::read_head(&mut p, &mut buf) {
                Ok(Some(h)) => h,
                Ok(None) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(()),
                Err(e) => {
                    let err = ApiError::new(
                        400,
                        "SerializationException",
                        format!("Malformed request: {e}"),
                    );
                    let _ = write_api_error(shared, &mut tls, &err, &request_id(), true);
                    return Ok(());
                }
            }
        };
        let (head, raw) = head;
        if shared.server_down() {
            // ServerDown: a kept-alive connection dies with the server (RST, no answer).
            crate::signaling::set_linger_zero(&raw_tcp);
            return Ok(());
        }
        if head.is_websocket() {
            let mut prefix = raw;
            prefix.extend_from_slice(&buf);
            return crate::signaling::handle_upgrade(shared, tls, raw_tcp, head, prefix);
        }
        let body = {
            let mut p = Patient {
                inner: &mut tls,
                shared,
                deadline: Instant::now() + HANDSHAKE_TIMEOUT,
            };
            http::read_body(&mut p, &mut buf, &head)?
        };
        let close = head.wants_close();
        let rid = request_id();
        let (status, extra, body) = crate::control::handle(shared, &head, &body, &rid);
        let mut headers = shared.common_headers(&rid);
        headers.extend(extra);
        if close {
            headers.push(("Connection".into(), "close".into()));
        }
        http::write_response(&mut tls, status, &headers, body.as_bytes())?;
        if close || shared.is_shutdown() {
            let _ = tls.shutdown();
            return Ok(());
        }
    }
}

/// Writes an AWS-style error response.
pub(crate) fn write_api_error<W: Write>(
    shared: &Shared,
    w: &mut W,
    err: &ApiError,
    rid: &str,
    close: bool,
) -> io::Result<()> {
    let mut headers = shared.common_headers(rid);
    headers.push((
        "x-amzn-ErrorType".into(),
        shared.error_type_value(&err.error_type),
    ));
    if close {
        headers.push(("Connection".into(), "close".into()));
    }
    http::write_response(w, err.status, &headers, err.body().as_bytes())
}

/// Receiving end of a connection's command queue.
pub(crate) type CmdRx = Receiver<Cmd>;

/// A fresh command queue.
pub(crate) fn cmd_channel() -> (Sender<Cmd>, CmdRx) {
    channel()
}
