//! One WebSocket connection, served by the viewer's I/O thread: queued frames out, received
//! messages in, keepalive, the close handshake. It ends with an [`End`] saying why; the
//! supervisor in `session` decides what comes next (reconnect, hand over, stop).

use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message as WsMessage, WebSocket};

use crate::config::ViewerConfig;
use crate::diag::{DisconnectCause, Step, diag};
use crate::envelope::{self, MessageType};
use crate::error::{Error, ErrorKind, Result};
use crate::session::{Outgoing, Shared, Stop};
use crate::transport::{self, Stream};

/// Why one connection ended.
#[derive(Debug)]
pub(crate) enum End {
    /// The app asked (close or reconnect) and the close handshake is over; `error` says why it
    /// did not complete cleanly, if it did not.
    Stopped { stop: Stop, error: Option<Error> },
    /// The service sent `GO_AWAY`: the connection still works; open the next one first.
    GoAway,
    /// The credentials that signed this connection are due for a refresh: open the next one
    /// first, signed anew, as for `GO_AWAY`.
    Renew,
    /// The server, the network or a failure ended it.
    Lost(Error),
}

/// What the timers ask of the loop.
enum Next {
    /// Sleep until the socket or a caller needs us, at most this long.
    Sleep(Duration),
    /// A ping went out: flush it before sleeping.
    Flush,
}

pub(crate) struct Connection {
    ws: WebSocket<Stream>,
    shared: Arc<Shared>,
    ping_interval: Duration,
    /// How long a keepalive ping may go unanswered.
    pong_timeout: Duration,
    close_timeout: Duration,
    /// Largest payload delivered; larger ones are skipped and counted.
    max_message_len: usize,
    /// GO_AWAY ends `serve` (to hand over to a new connection) instead of only being surfaced.
    hand_over_on_go_away: bool,
    /// Last time anything came from the server.
    last_heard: Instant,
    /// A keepalive ping is out, unanswered, since then.
    ping_sent_at: Option<Instant>,
    /// The app asked to stop; our close frame went out then.
    closing_since: Option<(Stop, Instant)>,
    /// The server's close frame (code, reason), once it sent one.
    server_close: Option<(u16, String)>,
    /// Frames written while the socket buffer was full: tungstenite holds them until a flush
    /// succeeds, and their senders are released only then.
    held: Vec<Outgoing>,
    go_away: bool,
    /// When to hand over to a connection signed with fresh credentials.
    renew_at: Option<Instant>,
    ice_refresh_asked: bool,
    refresh_ice: Option<Box<dyn Fn() + Send>>,
}

impl Connection {
    /// Takes over a freshly opened socket: non-blocking, kernel dead-peer detection on.
    pub(crate) fn new(
        ws: WebSocket<Stream>,
        shared: Arc<Shared>,
        config: &ViewerConfig,
    ) -> Result<Connection> {
        let setup =
            |e: io::Error| Error::new(ErrorKind::Internal, format!("connection setup: {e}"));
        let tcp = ws.get_ref().get_ref().tcp();
        transport::detect_dead_peer(tcp, config.dead_peer_bound()).map_err(setup)?;
        tcp.set_read_timeout(None).map_err(setup)?;
        tcp.set_write_timeout(None).map_err(setup)?;
        tcp.set_nonblocking(true).map_err(setup)?;
        Ok(Connection {
            ws,
            shared,
            ping_interval: config.ping_interval,
            pong_timeout: config.pong_deadline(),
            close_timeout: config.connect_timeout,
            max_message_len: config.max_message_len,
            hand_over_on_go_away: config.auto_reconnect,
            last_heard: Instant::now(),
            ping_sent_at: None,
            closing_since: None,
            server_close: None,
            held: Vec::new(),
            go_away: false,
            renew_at: None,
            ice_refresh_asked: false,
            refresh_ice: None,
        })
    }

    /// Frames that never fully reached the socket, in order: for the next connection, or to
    /// fail.
    pub(crate) fn take_held(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.held)
    }

    /// Hands over (`End::Renew`) at `at`; only with automatic reconnect, which does the hand-over.
    pub(crate) fn renew_at(&mut self, at: Instant) {
        if self.hand_over_on_go_away {
            self.renew_at = Some(at);
        }
    }

    /// What to run (without blocking) when the service sends `RECONNECT_ICE_SERVER`.
    pub(crate) fn on_reconnect_ice_server(&mut self, refresh: Box<dyn Fn() + Send>) {
        self.refresh_ice = Some(refresh);
    }

    /// Runs until the connection ends or hands over; returns why.
    pub(crate) fn serve(&mut self) -> End {
        let sock: RawFd = self.ws.get_ref().get_ref().tcp().as_raw_fd();
        let wake: RawFd = self.shared.wake_rx.as_raw_fd();
        loop {
            if let Err(e) = self.send_queued() {
                return End::Lost(e);
            }
            if let Err(end) = self.read_available() {
                return end;
            }
            let want_write = match self.flush() {
                Ok(w) => w,
                Err(end) => return end,
            };
            if self.go_away && self.closing_since.is_none() {
                self.go_away = false;
                return End::GoAway;
            }
            if self.closing_since.is_none() && self.renew_at.is_some_and(|t| Instant::now() >= t) {
                self.renew_at = None;
                return End::Renew;
            }
            if std::mem::take(&mut self.ice_refresh_asked) {
                if let Some(refresh) = &self.refresh_ice {
                    refresh();
                }
            }
            let wait = match self.timers() {
                Ok(Next::Sleep(wait)) => match self.renew_at {
                    Some(at) => wait.min(at.saturating_duration_since(Instant::now())),
                    None => wait,
                },
                Ok(Next::Flush) => continue,
                Err(end) => return end,
            };
            if let Err(e) = poll_two(sock, want_write, wake, wait) {
                return End::Lost(Error::new(ErrorKind::Internal, format!("poll: {e}")));
            }
            self.drain_wake_ups();
        }
    }

    /// After a hand-over: says goodbye and delivers what the old connection still brings,
    /// until the server confirms the close or `close_timeout` passes.
    pub(crate) fn drain_and_close(&mut self) {
        self.start_close(Stop::Close);
        let sock: RawFd = self.ws.get_ref().get_ref().tcp().as_raw_fd();
        let until = Instant::now() + self.close_timeout;
        loop {
            if self.read_available().is_err() {
                return;
            }
            let want_write = match self.ws.flush() {
                Ok(()) => false,
                Err(e) if is_would_block(&e) => true,
                Err(_) => return,
            };
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || poll_one(sock, want_write, left).is_err() {
                return;
            }
        }
    }

    /// Hands the queued frames to the socket, in order. While stopping, frames stay queued
    /// (for the next connection, or to fail at the end).
    fn send_queued(&mut self) -> Result<()> {
        let (batch, stop) = {
            let mut state = self.shared.lock();
            let stop = state.stop;
            if stop.is_some() {
                (Default::default(), stop)
            } else {
                (std::mem::take(&mut state.outbound), stop)
            }
        };
        if let Some(stop) = stop {
            self.start_close(stop);
        }
        for out in batch {
            match self.ws.write(WsMessage::text(out.frame.clone())) {
                // Written through to the socket, and so was everything held before it.
                Ok(()) => {
                    self.held.push(out);
                    self.acknowledge_held();
                }
                // Kept by tungstenite behind a full socket buffer: released by a later flush.
                Err(e) if is_would_block(&e) => self.held.push(out),
                Err(e) => {
                    let e = ws_error(e, &self.server_close);
                    // Never reached the socket: it goes out on the next connection, if any.
                    self.held.push(out);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Everything written so far reached the socket: release those senders.
    fn acknowledge_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        // Counted before the callers are released, so stats never lag a send.
        {
            let mut state = self.shared.lock();
            state.stats.frames_sent += self.held.len() as u64;
            for out in &self.held {
                state.stats.sent.add(out.message_type);
                state.stats.bytes_sent += out.frame.len() as u64;
            }
        }
        for out in self.held.drain(..) {
            let _ = out.done.send(Ok(()));
            let (t, len) = (out.message_type.name(), out.frame.len());
            diag!(Debug, Step::Send, "{t} frame, {len} bytes");
        }
    }

    /// Sends our close frame, once.
    fn start_close(&mut self, stop: Stop) {
        if self.closing_since.is_some() {
            return;
        }
        self.closing_since = Some((stop, Instant::now()));
        let _ = self.ws.close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "viewer closing".into(),
        }));
    }

    /// Reads everything the socket has. TLS may hold decrypted bytes poll cannot see, so this
    /// reads until `WouldBlock` rather than trusting poll alone.
    fn read_available(&mut self) -> std::result::Result<(), End> {
        loop {
            match self.ws.read() {
                Ok(msg) => {
                    self.last_heard = Instant::now();
                    if let (WsMessage::Pong(_), Some(at)) = (&msg, self.ping_sent_at) {
                        let rtt = at.elapsed();
                        self.shared.lock().stats.last_ping_rtt = Some(rtt);
                        diag!(Debug, Step::Recv, "pong after {} µs", rtt.as_micros());
                    }
                    self.ping_sent_at = None;
                    self.on_message(msg);
                }
                Err(e) if is_would_block(&e) => return Ok(()),
                Err(e) => return Err(self.ended_by(e)),
            }
        }
    }

    /// The end a socket error means: the close handshake we asked for, or a loss.
    fn ended_by(&self, e: tungstenite::Error) -> End {
        match self.closing_since {
            Some((stop, _)) => End::Stopped { stop, error: None },
            None => End::Lost(ws_error(e, &self.server_close)),
        }
    }

    /// Flushes queued frames, automatic pongs and close replies. Returns whether bytes are
    /// still waiting for the socket to become writable.
    fn flush(&mut self) -> std::result::Result<bool, End> {
        match self.ws.flush() {
            Ok(()) => {
                self.acknowledge_held();
                Ok(false)
            }
            Err(e) if is_would_block(&e) => Ok(true),
            Err(e) => Err(self.ended_by(e)),
        }
    }

    /// The close-handshake bound and the keepalive: what to do next, or why to stop.
    fn timers(&mut self) -> std::result::Result<Next, End> {
        let now = Instant::now();
        if let Some((stop, since)) = self.closing_since {
            let left = self.close_timeout.saturating_sub(now - since);
            if left.is_zero() {
                let error = Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "close: the server did not confirm the close within {:?}; \
                         the connection was dropped",
                        self.close_timeout
                    ),
                );
                return Err(End::Stopped {
                    stop,
                    error: Some(error),
                });
            }
            return Ok(Next::Sleep(left));
        }
        let idle_wait = Duration::from_secs(3600);
        if self.ping_interval.is_zero() {
            return Ok(Next::Sleep(idle_wait));
        }
        match self.ping_sent_at {
            Some(at) if now - at >= self.pong_timeout => Err(End::Lost(Error::closed(
                None,
                format!(
                    "connection lost: no answer to a keepalive ping within {:?}",
                    self.pong_timeout
                ),
            ))),
            Some(at) => Ok(Next::Sleep(self.pong_timeout - (now - at))),
            None if now - self.last_heard >= self.ping_interval => {
                // Counted before the write, so the count never lags what the peer saw.
                self.shared.lock().stats.pings_sent += 1;
                diag!(
                    Debug,
                    Step::Send,
                    "keepalive ping after {} ms of silence",
                    (now - self.last_heard).as_millis()
                );
                match self.ws.write(WsMessage::Ping(Vec::new().into())) {
                    Err(e) if !is_would_block(&e) => {
                        Err(End::Lost(ws_error(e, &self.server_close)))
                    }
                    _ => {
                        self.ping_sent_at = Some(now);
                        Ok(Next::Flush)
                    }
                }
            }
            None => Ok(Next::Sleep(self.ping_interval - (now - self.last_heard))),
        }
    }

    /// Empties the wake-up pair: one pass of the loop serves every poke so far.
    fn drain_wake_ups(&self) {
        let mut sink = [0u8; 64];
        while matches!((&self.shared.wake_rx).read(&mut sink), Ok(n) if n > 0) {}
    }

    /// Why this connection ended with `e`, for stats and lines.
    pub(crate) fn cause_of(&self, e: &Error) -> DisconnectCause {
        let ping_overdue = self
            .ping_sent_at
            .is_some_and(|at| at.elapsed() >= self.pong_timeout);
        if self.server_close.is_some() {
            DisconnectCause::ServerClose
        } else if ping_overdue {
            DisconnectCause::DeadPeer
        } else if e.kind == ErrorKind::Protocol {
            DisconnectCause::Protocol
        } else {
            DisconnectCause::Network
        }
    }

    /// The close code the server sent, if it sent one.
    pub(crate) fn server_close_code(&self) -> Option<u16> {
        self.server_close.as_ref().map(|(code, _)| *code)
    }

    fn on_message(&mut self, msg: WsMessage) {
        let len = match &msg {
            WsMessage::Text(t) => t.len(),
            WsMessage::Binary(b) => b.len(),
            _ => 0,
        };
        let decoded = match msg {
            WsMessage::Text(text) => envelope::decode_incoming(text.as_str()),
            WsMessage::Binary(_) => Err(Error::new(
                ErrorKind::Protocol,
                "binary frame (the protocol uses text frames only)",
            )),
            WsMessage::Close(frame) => {
                self.server_close = Some(match frame {
                    Some(f) => (u16::from(f.code), f.reason.as_str().to_owned()),
                    None => (1005, String::new()),
                });
                return;
            }
            WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => return,
        };
        let mut state = self.shared.lock();
        state.stats.frames_received += 1;
        state.stats.bytes_received += len as u64;
        match decoded {
            Ok(Some(message)) if message.payload.len() > self.max_message_len => {
                state.stats.frames_skipped += 1;
                state.stats.messages_oversized += 1;
                state.stats.last_skip_reason = Some(format!(
                    "{} with a {}-byte payload, over max_message_len {}",
                    message.message_type.name(),
                    message.payload.len(),
                    self.max_message_len
                ));
            }
            // The app ended the connection and `recv` may have said so already: a message
            // queued now would come after that final `Closed`.
            Ok(Some(message)) if state.stop == Some(Stop::Close) => {
                drop(state);
                diag!(
                    Debug,
                    Step::Recv,
                    "{} frame after the app ended the connection, not delivered",
                    message.message_type.name()
                );
            }
            Ok(Some(message)) => {
                match message.message_type {
                    MessageType::GoAway if self.hand_over_on_go_away => self.go_away = true,
                    MessageType::ReconnectIceServer if self.hand_over_on_go_away => {
                        self.ice_refresh_asked = true
                    }
                    _ => {}
                }
                let message_type = message.message_type;
                state.stats.received.add(message_type);
                state.inbound.push_back(message);
                self.shared.sync_ready(&mut state);
                drop(state);
                self.shared.arrived.notify_all();
                diag!(
                    Debug,
                    Step::Recv,
                    "{} frame, {len} bytes",
                    message_type.name()
                );
            }
            Ok(None) => {
                state.stats.frames_skipped += 1;
                state.stats.last_skip_reason = Some("JSON frame without messageType".into());
                drop(state);
                diag!(
                    Debug,
                    Step::Recv,
                    "skipped a frame of {len} bytes: JSON without messageType"
                );
            }
            Err(e) => {
                state.stats.frames_skipped += 1;
                state.stats.last_skip_reason = Some(e.message.clone());
                drop(state);
                diag!(
                    Debug,
                    Step::Recv,
                    "skipped a frame of {len} bytes: {}",
                    e.message
                );
            }
        }
    }
}

fn is_would_block(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Maps the end of a connection to `Closed` (with the server's close code when it sent one)
/// or to the error that ended it.
fn ws_error(e: tungstenite::Error, server_close: &Option<(u16, String)>) -> Error {
    use tungstenite::Error as WsError;
    if let Some((code, reason)) = server_close {
        let reason = if reason.is_empty() {
            String::new()
        } else {
            format!(" ({reason})")
        };
        return Error::closed(Some(*code), format!("closed by the server{reason}"));
    }
    match e {
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            Error::closed(None, "closed by the server")
        }
        WsError::Io(e) => Error::closed(None, format!("connection lost: {e}")),
        WsError::Protocol(p) => Error::closed(None, format!("connection lost: {p}")),
        WsError::Capacity(c) => Error::new(
            ErrorKind::Protocol,
            format!("the server sent a frame over the size limit: {c}"),
        ),
        other => Error::new(ErrorKind::Protocol, format!("WebSocket error: {other}")),
    }
}

/// `poll(2)` on the socket (readable, or writable when `want_write`) and the wake-up pair.
fn poll_two(sock: RawFd, want_write: bool, wake: RawFd, wait: Duration) -> io::Result<()> {
    let mut fds = [
        libc::pollfd {
            fd: sock,
            events: libc::POLLIN | if want_write { libc::POLLOUT } else { 0 },
            revents: 0,
        },
        libc::pollfd {
            fd: wake,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let timeout_ms = wait.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is a valid array of two initialised pollfd structs that outlives the call,
    // and the length passed matches it.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// `poll(2)` on the socket alone (readable, or writable when `want_write`).
fn poll_one(sock: RawFd, want_write: bool, wait: Duration) -> io::Result<()> {
    let mut fds = [libc::pollfd {
        fd: sock,
        events: libc::POLLIN | if want_write { libc::POLLOUT } else { 0 },
        revents: 0,
    }];
    let timeout_ms = wait.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is a valid array of one initialised pollfd that outlives the call, and
    // the length passed matches it.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}
