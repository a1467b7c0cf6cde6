//! The signaling WebSocket: ConnectAsViewer / ConnectAsMaster upgrade, relay, the built-in
//! master, and the per-connection loop.

use std::collections::VecDeque;
use std::io;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, STANDARD_NO_PAD as B64_NO_PAD};
use native_tls::TlsStream;
use serde_json::{Map, Value, json};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

use crate::config::{Operation, RawFrame};
use crate::control::{valid_arn, valid_name};
use crate::events::Event;
use crate::http::{self, Head, WsIo};
use crate::sdp;
use crate::server::{
    ApiError, Cmd, CmdRx, ConnRef, POLL, RateWindow, Shared, cmd_channel, limit_exceeded, lock,
    request_id,
};
use crate::sigv4::SignedRequest;

/// Role of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Viewer,
    Master,
}

/// Who an accepted upgrade is.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub role: Role,
    pub channel_arn: String,
    /// Viewer client id (None for the master).
    pub client_id: Option<String>,
    /// Unix seconds at which the presigned URL expires.
    pub presign_expires_at: i64,
}

impl Target {
    fn label(&self) -> String {
        self.client_id.clone().unwrap_or_else(|| "MASTER".into())
    }
    fn role_name(&self) -> &'static str {
        match self.role {
            Role::Viewer => "VIEWER",
            Role::Master => "MASTER",
        }
    }
}

type Ws = WebSocket<WsIo<TlsStream<TcpStream>>>;

/// A frame for `SendRaw`.
pub(crate) fn raw_frame(frame: &RawFrame, max_payload: usize) -> Cmd {
    match frame {
        RawFrame::Text(t) => Cmd::Text(t.clone(), "RAW_TEXT"),
        RawFrame::Binary(b) => Cmd::Binary(b.clone()),
        RawFrame::Oversized => {
            let payload = "A".repeat((128 * 1024).max(max_payload + 1));
            Cmd::Text(
                json!({"messageType": "ICE_CANDIDATE", "messagePayload": payload}).to_string(),
                "RAW_OVERSIZED",
            )
        }
        RawFrame::NonJson => Cmd::Text("this is not JSON {".into(), "RAW_NON_JSON"),
        RawFrame::InvalidBase64 => Cmd::Text(
            json!({"messageType": "SDP_ANSWER", "messagePayload": "%%%not*base64%%%"}).to_string(),
            "RAW_INVALID_BASE64",
        ),
    }
}

/// Sleeps `ms` in small steps, returning early on shutdown.
fn wait_ms(shared: &Shared, ms: u64) {
    let end = Instant::now() + Duration::from_millis(ms);
    while !shared.is_shutdown() {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(POLL * 10));
    }
}

/// SO_LINGER 0 so that closing the socket sends a TCP RST.
pub(crate) fn set_linger_zero(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is owned by `s` and open for the duration of the call; the option value
    // points to a live `linger` struct of the size passed.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Decides an upgrade: fault, signature, parameters, channel.
fn connect_verdict(shared: &Shared, head: &Head) -> Result<Target, ApiError> {
    if let Some(err) = shared.take_failure(Operation::Connect) {
        return Err(err);
    }
    let accepted = shared.accepted_credentials();
    let verifier = shared.verifier(&accepted);
    let req = SignedRequest {
        method: &head.method,
        path: &head.path,
        query: &head.query,
        headers: &head.headers,
        body: b"",
    };
    let query = crate::sigv4::parse_query(&head.query).unwrap_or_default();
    let get = |n: &str| query.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let arn = get("X-Amz-ChannelARN");
    let client_id = get("X-Amz-ClientId");
    let role = if client_id.is_some() {
        "VIEWER"
    } else {
        "MASTER"
    };
    let presign_expires_at = match verifier.verify_presigned(&req) {
        Ok(v) => {
            shared.emit(Event::Auth {
                operation: "Connect".into(),
                verdict: "accepted".into(),
                access_key_id: Some(v.access_key_id),
                reason: None,
                message: None,
                error_type: None,
                client_id: client_id.clone(),
                channel_arn: arn.clone(),
                role: Some(role.into()),
            });
            v.expires_at.unwrap_or(i64::MAX)
        }
        Err(e) => {
            let err = ApiError::auth(e.message());
            shared.emit(Event::Auth {
                operation: "Connect".into(),
                verdict: "rejected".into(),
                access_key_id: None,
                reason: Some(e.reason().into()),
                message: Some(e.message()),
                error_type: Some(err.error_type.clone()),
                client_id: client_id.clone(),
                channel_arn: arn.clone(),
                role: Some(role.into()),
            });
            return Err(err);
        }
    };
    let Some(arn) = arn else {
        return Err(ApiError::invalid("X-Amz-ChannelARN is required."));
    };
    if !valid_arn(&arn) {
        return Err(ApiError::invalid(format!(
            "1 validation error detected: Value '{arn}' at 'channelARN' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: arn:[a-z\\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+"
        )));
    }
    if let Some(id) = &client_id {
        if !valid_name(id) {
            return Err(ApiError::invalid(format!(
                "1 validation error detected: Value '{id}' at 'clientId' failed to satisfy constraint: \
                 Member must have length between 1 and 256 and satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
            )));
        }
        if id.len() >= 4 && id[..4].eq_ignore_ascii_case("AWS_") {
            return Err(ApiError::invalid(format!(
                "1 validation error detected: Value '{id}' at 'clientId' failed to satisfy constraint: \
                 Member must not start with 'AWS_'"
            )));
        }
    }
    let channel = shared
        .channel_by_arn(&arn)
        .ok_or_else(ApiError::not_found)?;
    let who = client_id.clone().unwrap_or_else(|| "MASTER".into());
    if !shared.admit_channel(
        "connect_rate",
        shared.cfg.limit_connect_tps,
        &channel.arn,
        &who,
    ) {
        return Err(limit_exceeded(
            "ConnectAsViewer/ConnectAsMaster calls per second for this channel",
        ));
    }
    Ok(Target {
        role: if client_id.is_some() {
            Role::Viewer
        } else {
            Role::Master
        },
        channel_arn: channel.arn,
        client_id,
        presign_expires_at,
    })
}

/// Registers an accepted connection in the hub (limit check, same-id replacement).
fn register(shared: &Shared, t: &Target, conn: ConnRef) -> Result<(), ApiError> {
    let mut hub = lock(&shared.hub);
    match &t.client_id {
        Some(id) => {
            let others = hub
                .viewers
                .iter()
                .filter(|(arn, vid, _)| *arn == t.channel_arn && vid != id)
                .count();
            if others >= shared.cfg.max_viewers {
                return Err(ApiError::new(
                    400,
                    "ClientLimitExceededException",
                    format!(
                        "Exceeded the maximum number of concurrent viewer connections ({}) for this channel.",
                        shared.cfg.max_viewers
                    ),
                ));
            }
            if let Some(pos) = hub
                .viewers
                .iter()
                .position(|(arn, vid, _)| *arn == t.channel_arn && vid == id)
            {
                let (_, _, old) = hub.viewers.remove(pos);
                // The newest connection wins; what the service does to the old socket is not
                // documented — we close it with 1000 and say why.
                let _ = old.tx.send(Cmd::Close(
                    1000,
                    "Replaced by a newer connection with the same ClientId".into(),
                ));
                shared.emit(Event::Replaced {
                    client_id: Some(id.clone()),
                    role: None,
                    old_conn: old.id,
                    new_conn: conn.id,
                });
            }
            hub.viewers.push((t.channel_arn.clone(), id.clone(), conn));
        }
        None => {
            if let Some(old) = hub.masters.insert(t.channel_arn.clone(), conn.clone()) {
                let _ = old.tx.send(Cmd::Close(
                    1000,
                    "Replaced by a newer master connection".into(),
                ));
                shared.emit(Event::Replaced {
                    client_id: None,
                    role: Some("MASTER".into()),
                    old_conn: old.id,
                    new_conn: conn.id,
                });
            }
            if let Some(q) = hub.pending.remove(&t.channel_arn) {
                let now = Instant::now();
                for (deadline, frame) in q {
                    if deadline > now {
                        let _ = conn.tx.send(Cmd::Text(frame, "QUEUED"));
                    }
                }
            }
        }
    }
    Ok(())
}

fn unregister(shared: &Shared, t: &Target, conn_id: u64) {
    let mut hub = lock(&shared.hub);
    match t.role {
        Role::Viewer => hub.viewers.retain(|(_, _, c)| c.id != conn_id),
        Role::Master => {
            if hub
                .masters
                .get(&t.channel_arn)
                .is_some_and(|c| c.id == conn_id)
            {
                hub.masters.remove(&t.channel_arn);
            }
        }
    }
}

fn error_response(shared: &Shared, e: &ApiError, rid: &str) -> ErrorResponse {
    // Upgrade rejections: body shape undocumented; we send `{"message": …}` like the auth layer.
    let body = json!({ "message": e.message }).to_string();
    let mut b = tungstenite::http::Response::builder()
        .status(e.status)
        .header("Content-Type", "application/json")
        .header("Content-Length", body.len().to_string())
        .header("x-amzn-RequestId", rid)
        .header("Date", http::http_date(shared.now()))
        .header("Connection", "close");
    if shared.cfg.upgrade_error_type_header {
        b = b.header("x-amzn-ErrorType", shared.error_type_value(&e.error_type));
    }
    b.body(Some(body)).unwrap_or_else(|_| {
        let mut r = ErrorResponse::new(None);
        *r.status_mut() = tungstenite::http::StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

/// Handles a WebSocket upgrade request whose head was already read.
// The callback's error type is fixed by tungstenite.
#[allow(clippy::result_large_err)]
pub(crate) fn handle_upgrade(
    shared: &Arc<Shared>,
    tls: TlsStream<TcpStream>,
    raw_tcp: TcpStream,
    head: Head,
    prefix: Vec<u8>,
) -> io::Result<()> {
    let rid = request_id();
    let stall = shared.stall_next_ms.swap(0, Ordering::SeqCst);
    if stall > 0 {
        shared.emit(Event::HandshakeStalled { ms: stall });
        wait_ms(shared, stall);
        let _ = raw_tcp.shutdown(std::net::Shutdown::Both);
        return Ok(());
    }
    let delay = shared.handshake_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        shared.emit(Event::HandshakeDelayed { ms: delay });
        wait_ms(shared, delay);
    }
    let verdict = connect_verdict(shared, &head);
    let conn_id = shared.next_conn.fetch_add(1, Ordering::SeqCst);
    let (tx, rx) = cmd_channel();
    let conn = ConnRef { id: conn_id, tx };
    let io = WsIo::new(tls, prefix, shared.stop_pongs.clone());
    let outcome: std::cell::RefCell<Result<(), ApiError>> = std::cell::RefCell::new(Ok(()));
    let callback = |_req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let r = verdict
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|t| register(shared, t, conn.clone()));
        match r {
            Ok(()) => {
                // Logged before the 101 goes out: the client acts on the 101 (say, closes the
                // connection it replaces), and the log must show those acts after this one.
                if let Ok(t) = &verdict {
                    shared.emit(Event::Connected {
                        conn: conn_id,
                        role: t.role_name().into(),
                        client_id: t.client_id.clone(),
                        channel_arn: t.channel_arn.clone(),
                        request_id: rid.clone(),
                        presign_expires_at: t.presign_expires_at,
                    });
                }
                Ok(resp)
            }
            Err(e) => {
                let resp = error_response(shared, &e, &rid);
                *outcome.borrow_mut() = Err(e);
                Err(resp)
            }
        }
    };
    let accepted = match tungstenite::accept_hdr(io, callback) {
        Err(tungstenite::HandshakeError::Interrupted(mut mid)) => loop {
            if shared.is_shutdown() {
                break Err(tungstenite::Error::ConnectionClosed);
            }
            match mid.handshake() {
                Err(tungstenite::HandshakeError::Interrupted(m)) => mid = m,
                Err(tungstenite::HandshakeError::Failure(e)) => break Err(e),
                Ok(ws) => break Ok(ws),
            }
        },
        Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
        Ok(ws) => Ok(ws),
    };
    let target = verdict.as_ref().ok().cloned();
    let outcome = outcome.into_inner();
    match (accepted, outcome, target) {
        (Ok(ws), Ok(()), Some(t)) => {
            let mut ws = ws;
            ws.get_mut().start_framing();
            raw_tcp.set_read_timeout(Some(POLL))?;
            let mut c = Conn {
                shared: shared.clone(),
                target: t.clone(),
                id: conn_id,
                ws,
                raw_tcp,
                rx,
                delayed: VecDeque::new(),
                sdp_rate: RateWindow::default(),
                ice_rate: RateWindow::default(),
            };
            let reason = c.run();
            unregister(shared, &t, conn_id);
            shared.emit(Event::Disconnected {
                conn: conn_id,
                role: t.role_name().into(),
                client_id: t.client_id.clone(),
                reason,
            });
        }
        (_, Err(e), _) => {
            shared.emit(Event::ConnectRejected {
                conn: conn_id,
                status: e.status,
                error_type: e.error_type.clone(),
                message: e.message.clone(),
                request_id: rid.clone(),
            });
        }
        (Err(e), Ok(()), t) => {
            if let Some(t) = t {
                unregister(shared, &t, conn_id);
            }
            shared.emit(Event::HandshakeFailed {
                conn: conn_id,
                error: e.to_string(),
            });
        }
        (Ok(_), Ok(()), None) => unreachable!("an accepted upgrade always has a target"),
    }
    Ok(())
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    B64.decode(s).or_else(|_| B64_NO_PAD.decode(s)).ok()
}

fn static_kind(action: &str) -> &'static str {
    match action {
        "SDP_OFFER" => "SDP_OFFER",
        "SDP_ANSWER" => "SDP_ANSWER",
        "ICE_CANDIDATE" => "ICE_CANDIDATE",
        _ => "OTHER",
    }
}

/// One live WebSocket connection.
struct Conn {
    shared: Arc<Shared>,
    target: Target,
    id: u64,
    ws: Ws,
    raw_tcp: TcpStream,
    rx: CmdRx,
    /// Own messages scheduled for later (built-in master, STATUS_RESPONSE): (due, frame, kind).
    delayed: VecDeque<(Instant, String, &'static str)>,
    /// SendSdpOffer/SendSdpAnswer calls in the last second (`limit_sdp_tps`).
    sdp_rate: RateWindow,
    /// SendIceCandidate calls in the last second (`limit_ice_tps`).
    ice_rate: RateWindow,
}

impl Conn {
    fn send_text(&mut self, text: String, kind: &'static str) -> bool {
        let len = text.len();
        match self.ws.send(Message::text(text)) {
            Ok(()) => {
                self.shared.emit(Event::FrameOut {
                    conn: self.id,
                    to: self.target.label(),
                    message_type: kind.into(),
                    len,
                });
                true
            }
            Err(e) => {
                self.shared.emit(Event::WriteError {
                    conn: self.id,
                    error: e.to_string(),
                });
                false
            }
        }
    }

    fn start_close(
        &mut self,
        code: u16,
        reason: &str,
        closing: &mut Option<Instant>,
        why: &mut String,
    ) {
        if closing.is_some() {
            return;
        }
        unregister(&self.shared, &self.target, self.id);
        self.shared.emit(Event::ServerClose {
            conn: self.id,
            client_id: self.target.client_id.clone(),
            role: self.target.role_name().into(),
            code,
            reason: reason.into(),
        });
        let _ = self.ws.close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_string().into(),
        }));
        // Wait a little for the client's close reply; less when the whole emulator stops.
        let wait = if self.shared.is_shutdown() {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(2)
        };
        *closing = Some(Instant::now() + wait);
        *why = format!("server_close: {reason}");
    }

    /// A frozen peer: reads nothing, writes nothing (no PONG, no close), until `d` passes, a
    /// newer connection replaces it, another fault ends it, or the emulator stops; then RST.
    fn frozen(&mut self, d: Option<Duration>) -> String {
        self.shared.emit(Event::Frozen {
            conn: self.id,
            client_id: self.target.client_id.clone(),
            ms: d.map_or(0, |d| d.as_millis() as u64),
        });
        let until = d.map(|d| Instant::now() + d);
        let why = loop {
            if self.shared.is_shutdown() {
                break "frozen, then the emulator stopped";
            }
            if until.is_some_and(|u| Instant::now() >= u) {
                break "frozen, then dropped";
            }
            // Replacement (Close) and DropConnection end it; everything else is ignored.
            if self
                .rx
                .try_iter()
                .any(|c| matches!(c, Cmd::Close(..) | Cmd::Drop))
            {
                break "frozen, then replaced or dropped";
            }
            std::thread::sleep(POLL * 4);
        };
        unregister(&self.shared, &self.target, self.id);
        self.shared.emit(Event::Dropped {
            conn: self.id,
            client_id: self.target.client_id.clone(),
            role: self.target.role_name().into(),
        });
        set_linger_zero(&self.raw_tcp);
        why.into()
    }

    /// Runs until the connection ends; returns why.
    fn run(&mut self) -> String {
        let start = Instant::now();
        let mut last_activity = start;
        let mut go_away_at: Option<Instant> = None;
        let mut closing: Option<Instant> = None;
        let mut why = String::from("eof");
        loop {
            let now = Instant::now();
            if let Some(deadline) = closing {
                if now >= deadline {
                    return why;
                }
            } else {
                if self.shared.is_shutdown() {
                    self.start_close(1001, "Emulator shutting down", &mut closing, &mut why);
                    continue;
                }
                while let Ok(cmd) = self.rx.try_recv() {
                    match cmd {
                        Cmd::Text(t, kind) => {
                            if !self.send_text(t, kind) {
                                return "write_error".into();
                            }
                        }
                        Cmd::Binary(b) => {
                            let len = b.len();
                            if self.ws.send(Message::binary(b)).is_err() {
                                return "write_error".into();
                            }
                            self.shared.emit(Event::FrameOut {
                                conn: self.id,
                                to: self.target.label(),
                                message_type: "RAW_BINARY".into(),
                                len,
                            });
                        }
                        Cmd::Close(code, reason) => {
                            self.start_close(code, &reason, &mut closing, &mut why);
                            break;
                        }
                        Cmd::CloseAfter(d) => {
                            let at = now + d;
                            go_away_at = Some(go_away_at.map_or(at, |g| g.min(at)));
                        }
                        Cmd::Drop => {
                            unregister(&self.shared, &self.target, self.id);
                            self.shared.emit(Event::Dropped {
                                conn: self.id,
                                client_id: self.target.client_id.clone(),
                                role: self.target.role_name().into(),
                            });
                            set_linger_zero(&self.raw_tcp);
                            return "dropped".into();
                        }
                        Cmd::Freeze(d) => return self.frozen(d),
                    }
                }
                if closing.is_some() {
                    continue;
                }
                while self.delayed.front().is_some_and(|(due, _, _)| *due <= now) {
                    if let Some((_, t, kind)) = self.delayed.pop_front()
                        && !self.send_text(t, kind)
                    {
                        return "write_error".into();
                    }
                }
                let idle = self.shared.idle_timeout_secs.load(Ordering::SeqCst);
                let life = self.shared.max_lifetime_secs.load(Ordering::SeqCst);
                let code = self.shared.cfg.close_code;
                if idle > 0 && now.duration_since(last_activity) >= Duration::from_secs(idle) {
                    self.start_close(code, "Idle timeout", &mut closing, &mut why);
                    continue;
                }
                let grace = self.shared.cfg.go_away_grace_secs;
                if life > 0
                    && self.shared.cfg.go_away_before_max_lifetime
                    && go_away_at.is_none()
                    && now.duration_since(start) + Duration::from_secs(grace)
                        >= Duration::from_secs(life)
                {
                    // Warn, then the lifetime close (or the grace, whichever is first) ends it.
                    if !self.send_text(json!({"messageType": "GO_AWAY"}).to_string(), "GO_AWAY") {
                        return "write_error".into();
                    }
                    go_away_at = Some(now + Duration::from_secs(grace));
                }
                if life > 0 && now.duration_since(start) >= Duration::from_secs(life) {
                    self.start_close(
                        code,
                        "Maximum connection duration reached",
                        &mut closing,
                        &mut why,
                    );
                    continue;
                }
                if self.shared.cfg.close_on_presign_expiry
                    && self.shared.now() >= self.target.presign_expires_at
                {
                    self.start_close(code, "Presigned URL expired", &mut closing, &mut why);
                    continue;
                }
                if go_away_at.is_some_and(|g| now >= g) {
                    self.start_close(code, "Going away", &mut closing, &mut why);
                    continue;
                }
            }
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    if closing.is_none() {
                        last_activity = Instant::now();
                        self.on_text(t.as_str());
                    }
                }
                Ok(Message::Binary(b)) => {
                    last_activity = Instant::now();
                    // The service's reaction to binary frames is undocumented; we ignore them.
                    self.shared.emit(Event::FrameIn {
                        conn: self.id,
                        from: self.target.label(),
                        role: None,
                        action: None,
                        correlation_id: None,
                        recipient_client_id: None,
                        payload_len: None,
                        binary: true,
                        len: Some(b.len()),
                        verdict: Some("ignored".into()),
                    });
                }
                Ok(Message::Ping(_)) => {
                    if self.shared.cfg.pings_reset_idle {
                        last_activity = Instant::now();
                    }
                    self.shared.emit(Event::Ping {
                        conn: self.id,
                        from: self.target.label(),
                        pong: !self.shared.stop_pongs.load(Ordering::SeqCst),
                    });
                }
                Ok(Message::Pong(_)) | Ok(Message::Frame(_)) => {}
                Ok(Message::Close(f)) => {
                    self.shared.emit(Event::ClientClose {
                        conn: self.id,
                        client_id: self.target.client_id.clone(),
                        role: self.target.role_name().into(),
                        code: f.as_ref().map(|f| u16::from(f.code)),
                        reason: f.as_ref().map(|f| f.reason.to_string()),
                    });
                    if closing.is_none() {
                        why = format!(
                            "client_close: {}",
                            f.as_ref().map(|f| u16::from(f.code)).unwrap_or(1005)
                        );
                        unregister(&self.shared, &self.target, self.id);
                        closing = Some(Instant::now() + Duration::from_secs(2));
                    }
                }
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    let _ = self.ws.flush();
                }
                Err(tungstenite::Error::ConnectionClosed)
                | Err(tungstenite::Error::AlreadyClosed) => return why,
                Err(e) => {
                    if closing.is_none() {
                        why = format!("error: {e}");
                    }
                    return why;
                }
            }
        }
    }

    fn status_response(
        &mut self,
        corr: Option<&str>,
        status: u16,
        error_type: &str,
        description: &str,
    ) {
        let kind = "STATUS_RESPONSE";
        self.shared.emit(Event::FrameRejected {
            conn: self.id,
            from: self.target.label(),
            reason: None,
            len: None,
            status: Some(status),
            error_type: Some(error_type.into()),
            description: Some(description.into()),
            correlation_id: corr.map(str::to_string),
            status_response_sent: corr.is_some(),
        });
        // Only on failure, and only when a correlationId was given.
        if let Some(c) = corr {
            let frame = json!({
                "messageType": kind,
                "statusResponse": {
                    "correlationId": c,
                    "errorType": error_type,
                    "statusCode": status.to_string(),
                    "description": description,
                    "success": false,
                }
            });
            self.delayed
                .push_back((Instant::now(), frame.to_string(), kind));
        }
    }

    fn on_text(&mut self, text: &str) {
        let obj: Map<String, Value> = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(o)) => o,
            _ => {
                // Undocumented: we drop frames that are not a JSON object (no correlationId to
                // answer to).
                self.shared.emit(Event::FrameRejected {
                    conn: self.id,
                    from: self.target.label(),
                    reason: Some("not_a_json_object".into()),
                    len: Some(text.len()),
                    status: None,
                    error_type: None,
                    description: None,
                    correlation_id: None,
                    status_response_sent: false,
                });
                return;
            }
        };
        // camelCase (JS) and PascalCase (C SDK) keys both work; unknown keys are ignored.
        let get = |name: &str| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.as_str())
                .filter(|s| !s.is_empty())
        };
        let action = get("action").map(str::to_string);
        let payload = get("messagePayload").map(str::to_string);
        let corr = get("correlationId").map(str::to_string);
        let recipient = get("recipientClientId").map(str::to_string);
        self.shared.emit(Event::FrameIn {
            conn: self.id,
            from: self.target.label(),
            role: Some(self.target.role_name().into()),
            action: action.clone(),
            correlation_id: corr.clone(),
            recipient_client_id: recipient.clone(),
            payload_len: payload.as_ref().map(String::len),
            binary: false,
            len: None,
            verdict: None,
        });
        let corr_ref = corr.as_deref();
        if let Some(c) = corr_ref
            && !valid_name(c)
        {
            self.status_response(
                corr_ref,
                400,
                "InvalidArgumentException",
                "correlationId must match [a-zA-Z0-9_.-]{1,256}",
            );
            return;
        }
        let allowed: &[&str] = match self.target.role {
            Role::Viewer => &["SDP_OFFER", "ICE_CANDIDATE"],
            Role::Master => &["SDP_OFFER", "SDP_ANSWER", "ICE_CANDIDATE"],
        };
        let Some(action) = action.filter(|a| allowed.contains(&a.as_str())) else {
            self.status_response(
                corr_ref,
                400,
                "InvalidArgumentException",
                "Invalid or missing action.",
            );
            return;
        };
        let Some(payload) = payload else {
            self.status_response(
                corr_ref,
                400,
                "InvalidArgumentException",
                "messagePayload is required.",
            );
            return;
        };
        if payload.len() > self.shared.cfg.max_payload_len {
            let d = format!(
                "messagePayload length {} exceeds the maximum of {}.",
                payload.len(),
                self.shared.cfg.max_payload_len
            );
            self.status_response(corr_ref, 400, "InvalidArgumentException", &d);
            return;
        }
        // The payload is documented as base64 (SendAlexaOfferToMaster's model: [a-zA-Z0-9+/=]+);
        // the service validates it (protocol.md §11.2).
        if !payload
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            self.status_response(
                corr_ref,
                400,
                "InvalidArgumentException",
                "1 validation error detected: Value at 'messagePayload' failed to satisfy constraint: \
                 Member must satisfy regular expression pattern: [a-zA-Z0-9+/=]+",
            );
            return;
        }
        if decode_b64(&payload).is_none() {
            self.status_response(
                corr_ref,
                400,
                "InvalidArgumentException",
                "messagePayload is not valid base64.",
            );
            return;
        }
        let kind = static_kind(&action);
        let (limit, per_second, window) = if kind == "ICE_CANDIDATE" {
            (
                "ice_rate",
                self.shared.cfg.limit_ice_tps,
                &mut self.ice_rate,
            )
        } else {
            (
                "sdp_rate",
                self.shared.cfg.limit_sdp_tps,
                &mut self.sdp_rate,
            )
        };
        if let Some(n) = per_second
            && !window.admit(n)
        {
            self.shared.emit(Event::LimitExceeded {
                limit: limit.into(),
                channel_arn: self.target.channel_arn.clone(),
                client: self.target.label(),
            });
            let e = limit_exceeded(&format!(
                "{n} {action} messages per second on this connection"
            ));
            self.status_response(corr_ref, e.status, &e.error_type, &e.message);
            return;
        }
        match self.target.role {
            Role::Viewer => self.relay_from_viewer(kind, &payload),
            Role::Master => {
                let Some(rcpt) = recipient else {
                    self.status_response(
                        corr_ref,
                        400,
                        "InvalidArgumentException",
                        "recipientClientId is required.",
                    );
                    return;
                };
                if !valid_name(&rcpt) {
                    self.status_response(
                        corr_ref,
                        400,
                        "InvalidArgumentException",
                        "1 validation error detected: Value at 'recipientClientId' failed to satisfy \
                         constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
                    );
                    return;
                }
                self.relay_from_master(kind, &payload, &rcpt);
            }
        }
    }

    fn relay_from_viewer(&mut self, kind: &'static str, payload: &str) {
        let client_id = self.target.client_id.clone().unwrap_or_default();
        let decoded: Option<Value> =
            decode_b64(payload).and_then(|b| serde_json::from_slice(&b).ok());
        if kind == "ICE_CANDIDATE" {
            let cand = decoded
                .as_ref()
                .and_then(|v| v.get("candidate"))
                .and_then(Value::as_str);
            self.shared.emit(Event::ViewerCandidate {
                client_id: client_id.clone(),
                candidate: cand.map(str::to_string),
                sdp_mid: decoded.as_ref().and_then(|v| v.get("sdpMid")).cloned(),
            });
        }
        let envelope =
            json!({"senderClientId": client_id, "messageType": kind, "messagePayload": payload})
                .to_string();
        let master = lock(&self.shared.hub)
            .masters
            .get(&self.target.channel_arn)
            .cloned();
        if let Some(m) = master {
            let _ = m.tx.send(Cmd::Text(envelope, kind));
            return;
        }
        if self.shared.cfg.auto_answer {
            if kind == "SDP_OFFER" {
                self.auto_answer(decoded.as_ref());
            }
            return;
        }
        let ttl = self
            .shared
            .channel_by_arn(&self.target.channel_arn)
            .map(|c| c.message_ttl)
            .unwrap_or(self.shared.cfg.message_ttl_secs);
        let mut hub = lock(&self.shared.hub);
        let q = hub
            .pending
            .entry(self.target.channel_arn.clone())
            .or_default();
        let now = Instant::now();
        q.retain(|(d, _)| *d > now);
        if q.len() < 1000 {
            q.push_back((now + Duration::from_secs(ttl), envelope));
        }
        drop(hub);
        self.shared.emit(Event::QueuedForMaster {
            client_id,
            message_type: kind.into(),
            ttl_secs: ttl,
        });
    }

    fn relay_from_master(&mut self, kind: &'static str, payload: &str, recipient: &str) {
        let viewer = lock(&self.shared.hub)
            .viewers
            .iter()
            .find(|(arn, id, _)| *arn == self.target.channel_arn && id == recipient)
            .map(|(_, _, c)| c.clone());
        match viewer {
            // Messages from the master carry no senderClientId.
            Some(v) => {
                let _ = v.tx.send(Cmd::Text(
                    json!({"messageType": kind, "messagePayload": payload}).to_string(),
                    kind,
                ));
            }
            // Undocumented; we drop it and record the fact.
            None => self.shared.emit(Event::Undeliverable {
                from: "MASTER".into(),
                recipient_client_id: recipient.into(),
                message_type: kind.into(),
            }),
        }
    }

    /// The built-in master: an answer matching the offer plus N candidates.
    fn auto_answer(&mut self, offer: Option<&Value>) {
        let client_id = self.target.client_id.clone().unwrap_or_default();
        let sdp_text = offer
            .filter(|v| v.get("type").and_then(Value::as_str) == Some("offer"))
            .and_then(|v| v.get("sdp"))
            .and_then(Value::as_str);
        let Some(offer_sdp) = sdp_text else {
            self.shared.emit(Event::AutoAnswerSkipped {
                client_id,
                reason: "payload is not base64 of {\"type\":\"offer\",\"sdp\":…}".into(),
            });
            return;
        };
        let answer = sdp::answer_for(offer_sdp);
        let mid = sdp::first_mid(offer_sdp);
        let answer_frame = json!({
            "messageType": "SDP_ANSWER",
            "messagePayload": B64.encode(json!({"type": "answer", "sdp": answer}).to_string()),
        })
        .to_string();
        let n = self.shared.cfg.answer_candidates;
        let cands: Vec<String> = (0..n)
            .map(|i| {
                let c = json!({"candidate": sdp::candidate(i), "sdpMid": mid, "sdpMLineIndex": 0});
                json!({"messageType": "ICE_CANDIDATE", "messagePayload": B64.encode(c.to_string())})
                    .to_string()
            })
            .collect();
        let before = self.shared.candidates_before_answer.load(Ordering::SeqCst);
        let mut frames: Vec<(String, &'static str)> = Vec::new();
        if before {
            frames.extend(cands.into_iter().map(|c| (c, "ICE_CANDIDATE")));
            frames.push((answer_frame, "SDP_ANSWER"));
        } else {
            frames.push((answer_frame, "SDP_ANSWER"));
            frames.extend(cands.into_iter().map(|c| (c, "ICE_CANDIDATE")));
        }
        self.shared.emit(Event::AutoAnswer {
            client_id,
            m_sections: sdp::media_sections(offer_sdp).len(),
            candidates: n,
            candidates_before_answer: before,
        });
        let step = Duration::from_millis(self.shared.cfg.candidate_delay_ms);
        let base = self
            .delayed
            .back()
            .map_or(Instant::now(), |(d, _, _)| *d)
            .max(Instant::now());
        for (i, (f, kind)) in frames.into_iter().enumerate() {
            self.delayed.push_back((base + step * i as u32, f, kind));
        }
    }
}
