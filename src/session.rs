//! A connected viewer: one background thread owns the socket, so a thread blocked in `recv`
//! never delays a `send` from another thread, and neither burns CPU while waiting.
//!
//! The connection thread sleeps in `poll(2)` on the socket and a wake-up socket pair;
//! `send` queues a frame and pokes the pair; `recv` waits on a condition variable for the
//! inbound queue. Messages that arrived before the connection ended are still delivered.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message as WsMessage, WebSocket};

use crate::config::ViewerConfig;
use crate::control_plane::Discovery;
use crate::envelope::{self, Message, MessageType};
use crate::error::{Error, ErrorKind, Result};
use crate::sigv4::{self, PresignRequest};
use crate::transport::{self, Stream};
use crate::validate::WssEndpoint;
use native_tls::TlsConnector;

/// Stack of the connection thread: TLS records and JSON frames, nothing deep.
const IO_THREAD_STACK: usize = 256 * 1024;
/// The service allows 5 minutes of skew; beyond one minute a 403 is worth one corrected retry.
const SKEW_WORTH_CORRECTING_S: i64 = 60;

/// Counters a firmware engineer can log to see what the connection went through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub frames_received: u64,
    /// Frames that were not protocol messages (not JSON, binary, bad base64, ...).
    pub frames_skipped: u64,
    pub last_skip_reason: Option<String>,
    pub frames_sent: u64,
    pub pings_sent: u64,
    /// Clock offset (server − local, seconds) learnt from a 403 and applied to signing.
    pub clock_offset_s: i64,
    /// Threads blocked in `recv` right now (a diagnostic for stuck pipelines).
    pub waiting_receivers: u32,
    /// Successful `reconnect` calls.
    pub reconnects: u64,
}

struct Outgoing {
    frame: String,
    done: SyncSender<Result<()>>,
}

#[derive(Default)]
struct State {
    inbound: VecDeque<Message>,
    outbound: VecDeque<Outgoing>,
    /// Why the connection is gone; set once, by the connection thread.
    ended: Option<Error>,
    close_requested: bool,
    stats: Stats,
}

struct Shared {
    state: Mutex<State>,
    arrived: Condvar,
    wake_tx: UnixStream,
    wake_rx: UnixStream,
}

impl Shared {
    fn new(inbound: VecDeque<Message>, stats: Stats, clock_offset_s: i64) -> Result<Arc<Shared>> {
        let setup =
            |e: io::Error| Error::new(ErrorKind::Internal, format!("connection setup: {e}"));
        let (wake_tx, wake_rx) = UnixStream::pair().map_err(setup)?;
        wake_tx.set_nonblocking(true).map_err(setup)?;
        wake_rx.set_nonblocking(true).map_err(setup)?;
        Ok(Arc::new(Shared {
            state: Mutex::new(State {
                inbound,
                stats: Stats {
                    clock_offset_s,
                    ..stats
                },
                ..State::default()
            }),
            arrived: Condvar::new(),
            wake_tx,
            wake_rx,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not turn every later call into a panic too.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake(&self) {
        // Non-blocking: a full pair already holds a pending wake-up, which is all we need.
        let _ = (&self.wake_tx).write(&[1]);
    }
}

/// A connected viewer. `send` and `recv` may be called from different threads at once.
pub struct Viewer {
    /// The current connection's state; replaced by `reconnect`.
    shared: Arc<Shared>,
    io_thread: Option<JoinHandle<()>>,
    pub(crate) link: Link,
}

/// What it takes to (re)open the WebSocket, kept so a reconnect costs one TLS handshake.
pub(crate) struct Link {
    config: ViewerConfig,
    connector: TlsConnector,
    endpoint: WssEndpoint,
    /// The channel's ARN, endpoints and ICE servers, kept for refreshes and reconnects.
    pub(crate) discovery: Arc<Discovery>,
}

impl Link {
    /// Presigns and opens the WebSocket within the connect timeout. On a 403 whose `Date`
    /// shows the local clock is off, retries once with the server's time (the official C SDK
    /// never corrects the WSS URL). Returns the socket and the clock offset it used.
    fn open(&self, clock_offset_s: i64) -> Result<(WebSocket<Stream>, i64)> {
        let config = &self.config;
        let endpoint = &self.endpoint;
        let deadline = Instant::now() + config.connect_timeout;
        let params = [
            ("X-Amz-ChannelARN", self.discovery.channel_arn.as_str()),
            ("X-Amz-ClientId", config.client_id.as_str()),
        ];
        let presign = |offset_s: i64| {
            sigv4::presign(
                &config.credentials,
                &PresignRequest {
                    host: &endpoint.host_header,
                    path: &endpoint.path,
                    region: &config.region,
                    service: sigv4::SERVICE,
                    time: OffsetDateTime::now_utc() + time::Duration::seconds(offset_s),
                    expires_s: config.presign_expires_s,
                    params: &params,
                },
            )
        };
        let open = |offset_s: i64| {
            transport::open(
                endpoint,
                &self.connector,
                &presign(offset_s).query,
                deadline,
            )
            .map_err(|mut r| {
                // Service messages may quote the request; never let a credential through.
                r.error.message = config.credentials.redact(&r.error.message);
                r
            })
        };
        let rejection = match open(clock_offset_s) {
            Ok(ws) => return Ok((ws, clock_offset_s)),
            Err(r) => r,
        };
        let skew = rejection
            .server_date
            .map(|d| (d - OffsetDateTime::now_utc()).whole_seconds())
            .filter(|s| (s - clock_offset_s).abs() >= SKEW_WORTH_CORRECTING_S);
        match (rejection.error.kind, skew) {
            (ErrorKind::AccessDenied, Some(offset)) => {
                let ws = open(offset).map_err(|r| {
                    r.error.in_step(&format!(
                        "connect (retried with the server's clock, {offset} s off)"
                    ))
                })?;
                Ok((ws, offset))
            }
            _ => Err(rejection.error.in_step("connect")),
        }
    }

    /// Hands the socket to a new connection thread.
    fn spawn(&self, ws: WebSocket<Stream>, shared: &Arc<Shared>) -> Result<JoinHandle<()>> {
        let setup =
            |e: io::Error| Error::new(ErrorKind::Internal, format!("connection setup: {e}"));
        let tcp = ws.get_ref().get_ref();
        tcp.set_read_timeout(None).map_err(setup)?;
        tcp.set_write_timeout(None).map_err(setup)?;
        tcp.set_nonblocking(true).map_err(setup)?;
        let conn = Connection {
            ws,
            shared: shared.clone(),
            ping_interval: self.config.ping_interval,
            close_timeout: self.config.connect_timeout,
        };
        std::thread::Builder::new()
            .name("kvs-viewer-io".into())
            .stack_size(IO_THREAD_STACK)
            .spawn(move || conn.run())
            .map_err(setup)
    }
}

impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer").finish_non_exhaustive()
    }
}

impl Viewer {
    /// Validates `config`, discovers what it leaves out (ARN, endpoints, ICE servers; each
    /// control-plane call bounded by `config.connect_timeout`), presigns, and opens TLS +
    /// WebSocket within `config.connect_timeout`. On a 403 whose `Date` shows the local clock
    /// is off, it retries once with the server's time (the official C SDK never corrects the
    /// WSS URL).
    pub fn connect(config: &ViewerConfig) -> Result<Viewer> {
        let given_endpoint = config.validate()?;
        let connector = transport::connector_for(config.ca_file.as_deref())?;
        let (discovery, endpoint) = Discovery::resolve(config, given_endpoint, connector.clone())?;
        let link = Link {
            config: config.clone(),
            connector,
            endpoint,
            discovery,
        };
        // The control plane may already have learnt the clock offset.
        let (ws, clock_offset_s) = link.open(link.discovery.clock_offset_s())?;
        let shared = Shared::new(VecDeque::new(), Stats::default(), clock_offset_s)?;
        let io_thread = link.spawn(ws, &shared)?;
        Ok(Viewer {
            shared,
            io_thread: Some(io_thread),
            link,
        })
    }

    /// Connects again with the same configuration and the endpoints already known (one TLS
    /// handshake, no control-plane call): the answer to `GO_AWAY`, a server close or a lost
    /// connection. The old connection is closed first if it is still up. Messages received
    /// before and not yet taken are kept, ahead of the new connection's.
    ///
    /// On failure the viewer stays disconnected (`recv` reports the reason after the kept
    /// messages) and `reconnect` may be called again; back off between attempts (the official
    /// SDKs wait 100 ms·2ⁿ, capped at 10 s, with full jitter).
    pub fn reconnect(&mut self) -> Result<()> {
        let _ = self.shutdown();
        let (kept, stats) = {
            let mut state = self.shared.lock();
            (std::mem::take(&mut state.inbound), state.stats.clone())
        };
        let opened = self
            .link
            .open(stats.clock_offset_s)
            .and_then(|(ws, offset)| {
                let shared = Shared::new(kept.clone(), stats.clone(), offset)?;
                let thread = self.link.spawn(ws, &shared)?;
                Ok((shared, thread))
            });
        match opened {
            Ok((shared, thread)) => {
                self.shared = shared;
                self.io_thread = Some(thread);
                self.shared.lock().stats.reconnects += 1;
                Ok(())
            }
            Err(e) => {
                let mut state = self.shared.lock();
                state.inbound = kept;
                state.ended = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Sends an `SDP_OFFER` or `ICE_CANDIDATE` (payload: the JSON, not yet base64) to the
    /// master. Returns once the frame is handed to the socket.
    pub fn send(
        &self,
        message_type: MessageType,
        payload: &[u8],
        correlation_id: Option<&str>,
    ) -> Result<()> {
        let frame = envelope::encode_outgoing(message_type, payload, correlation_id)?;
        let send_timeout = self.link.config.send_timeout;
        let (done, result) = sync_channel(1);
        {
            let mut state = self.shared.lock();
            if let Some(e) = &state.ended {
                return Err(e.clone());
            }
            if state.close_requested {
                return Err(Error::closed(None, "the viewer is closing"));
            }
            state.outbound.push_back(Outgoing { frame, done });
        }
        self.shared.wake();
        match result.recv_timeout(send_timeout) {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                "send: the connection did not take the frame in time",
            )),
        }
    }

    /// Waits for the next message (`None` = forever, zero = poll). The message is removed
    /// from the queue only if `take` returns `Ok`, so a caller whose buffer is too small can
    /// grow it and call again without losing anything.
    pub fn recv_with<T>(
        &self,
        timeout: Option<Duration>,
        take: impl FnOnce(&Message) -> Result<T>,
    ) -> Result<T> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = self.shared.lock();
        loop {
            if let Some(front) = state.inbound.front() {
                let value = take(front)?;
                state.inbound.pop_front();
                return Ok(value);
            }
            if let Some(e) = &state.ended {
                return Err(e.clone());
            }
            if state.close_requested {
                return Err(Error::closed(None, CLOSED_BY_APP));
            }
            let left = match deadline {
                None => None,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Error::new(ErrorKind::Timeout, "recv: no message in time"));
                    }
                    Some(left)
                }
            };
            state.stats.waiting_receivers += 1;
            state = match left {
                None => self
                    .shared
                    .arrived
                    .wait(state)
                    .unwrap_or_else(|p| p.into_inner()),
                Some(left) => {
                    self.shared
                        .arrived
                        .wait_timeout(state, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
            state.stats.waiting_receivers -= 1;
        }
    }

    /// Waits for the next message and takes it.
    pub fn recv(&self, timeout: Option<Duration>) -> Result<Message> {
        self.recv_with(timeout, |m| Ok(m.clone()))
    }

    pub fn stats(&self) -> Stats {
        self.shared.lock().stats.clone()
    }

    /// Why the connection ended, if it has.
    pub fn ended(&self) -> Option<Error> {
        self.shared.lock().ended.clone()
    }

    /// Ends the connection from any thread, without waiting: the connection thread sends a
    /// close frame; a blocked or later `recv` returns `Closed` once the messages already
    /// received are taken, and later sends fail. Idempotent. `close` (or `reconnect`) still
    /// joins the thread.
    pub fn request_close(&self) {
        self.shared.lock().close_requested = true;
        self.shared.wake();
        self.shared.arrived.notify_all();
    }

    /// Sends a close frame (so the service frees the viewer slot at once), waits for the
    /// server's reply within the connect timeout, and stops the connection thread.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        let Some(thread) = self.io_thread.take() else {
            return Ok(());
        };
        let already_ended = {
            let mut state = self.shared.lock();
            state.close_requested = true;
            state.ended.is_some()
        };
        self.shared.wake();
        // The thread bounds the close handshake by `close_timeout` itself.
        if thread.join().is_err() {
            return Err(Error::internal("the connection thread panicked"));
        }
        if already_ended {
            // The server or the network ended it earlier; recv reported why.
            return Ok(());
        }
        match &self.shared.lock().ended {
            Some(e) if e.message == CLOSED_BY_APP => Ok(()),
            Some(e) => Err(e.clone()),
            None => Err(Error::internal("connection thread ended without a reason")),
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

const CLOSED_BY_APP: &str = "closed by the application";

/// The connection thread's side.
struct Connection {
    ws: WebSocket<Stream>,
    shared: Arc<Shared>,
    ping_interval: Duration,
    close_timeout: Duration,
}

impl Connection {
    fn run(mut self) {
        let reason = self.serve();
        let mut state = self.shared.lock();
        for out in state.outbound.drain(..) {
            let _ = out.done.send(Err(reason.clone()));
        }
        state.ended = Some(reason);
        drop(state);
        self.shared.arrived.notify_all();
    }

    /// Runs until the connection ends; returns why.
    fn serve(&mut self) -> Error {
        let sock: RawFd = self.ws.get_ref().get_ref().as_raw_fd();
        let wake: RawFd = self.shared.wake_rx.as_raw_fd();
        let mut last_heard = Instant::now();
        let mut ping_sent_at: Option<Instant> = None;
        let mut closing_since: Option<Instant> = None;
        let mut server_close: Option<(u16, String)> = None;
        loop {
            // 1. Hand queued frames to the socket, in order.
            let (batch, close_requested) = {
                let mut state = self.shared.lock();
                (std::mem::take(&mut state.outbound), state.close_requested)
            };
            for out in batch {
                let r = match self.ws.write(WsMessage::text(out.frame)) {
                    Ok(()) => Ok(()),
                    // A full socket buffer: tungstenite keeps the frame and the flush below
                    // (or the next one, once poll reports the socket writable) sends it.
                    Err(e) if is_would_block(&e) => Ok(()),
                    Err(e) => Err(ws_error(e, &server_close)),
                };
                match r {
                    Ok(()) => {
                        // Counted before the caller is released, so stats never lag a send.
                        self.shared.lock().stats.frames_sent += 1;
                        let _ = out.done.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = out.done.send(Err(e.clone()));
                        return e;
                    }
                }
            }
            if close_requested && closing_since.is_none() {
                closing_since = Some(Instant::now());
                let _ = self.ws.close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "viewer closing".into(),
                }));
            }

            // 2. Read everything the socket has (TLS may hold decrypted bytes, so read until
            //    WouldBlock rather than trusting poll alone).
            loop {
                match self.ws.read() {
                    Ok(msg) => {
                        last_heard = Instant::now();
                        ping_sent_at = None;
                        self.on_message(msg, &mut server_close);
                    }
                    Err(e) if is_would_block(&e) => break,
                    Err(e) => {
                        return if closing_since.is_some() {
                            Error::closed(None, CLOSED_BY_APP)
                        } else {
                            ws_error(e, &server_close)
                        };
                    }
                }
            }

            // 3. Flush (queued frames, automatic pongs, close replies).
            let want_write = match self.ws.flush() {
                Ok(()) => false,
                Err(e) if is_would_block(&e) => true,
                Err(_) if closing_since.is_some() => return Error::closed(None, CLOSED_BY_APP),
                Err(e) => return ws_error(e, &server_close),
            };

            // 4. Timers: the close handshake bound and keepalive.
            let now = Instant::now();
            let mut wait = Duration::from_secs(3600);
            if let Some(since) = closing_since {
                let left = self.close_timeout.saturating_sub(now - since);
                if left.is_zero() {
                    return Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "close: the server did not confirm the close within {:?}; \
                             the connection was dropped",
                            self.close_timeout
                        ),
                    );
                }
                wait = wait.min(left);
            } else if !self.ping_interval.is_zero() {
                match ping_sent_at {
                    Some(at) if now - at >= self.ping_interval => {
                        return Error::closed(
                            None,
                            format!(
                                "connection lost: no answer to a keepalive ping within {:?}",
                                self.ping_interval
                            ),
                        );
                    }
                    Some(at) => wait = wait.min(self.ping_interval - (now - at)),
                    None if now - last_heard >= self.ping_interval => {
                        // Counted before the write, so the count never lags what the peer saw.
                        self.shared.lock().stats.pings_sent += 1;
                        match self.ws.write(WsMessage::Ping(Vec::new().into())) {
                            Err(e) if !is_would_block(&e) => return ws_error(e, &server_close),
                            _ => {}
                        }
                        ping_sent_at = Some(now);
                        continue; // flush it now
                    }
                    None => wait = wait.min(self.ping_interval - (now - last_heard)),
                }
            }

            // 5. Sleep until the socket or a caller needs us.
            if let Err(e) = poll_two(sock, want_write, wake, wait) {
                return Error::new(ErrorKind::Internal, format!("poll: {e}"));
            }
            let mut sink = [0u8; 64];
            while matches!((&self.shared.wake_rx).read(&mut sink), Ok(n) if n > 0) {}
        }
    }

    fn on_message(&mut self, msg: WsMessage, server_close: &mut Option<(u16, String)>) {
        let decoded = match msg {
            WsMessage::Text(text) => envelope::decode_incoming(text.as_str()),
            WsMessage::Binary(_) => Err(Error::new(
                ErrorKind::Protocol,
                "binary frame (the protocol uses text frames only)",
            )),
            WsMessage::Close(frame) => {
                *server_close = Some(match frame {
                    Some(f) => (u16::from(f.code), f.reason.as_str().to_owned()),
                    None => (1005, String::new()),
                });
                return;
            }
            WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => return,
        };
        let mut state = self.shared.lock();
        state.stats.frames_received += 1;
        match decoded {
            Ok(Some(message)) => {
                state.inbound.push_back(message);
                drop(state);
                self.shared.arrived.notify_all();
            }
            Ok(None) => {
                state.stats.frames_skipped += 1;
                state.stats.last_skip_reason = Some("JSON frame without messageType".into());
            }
            Err(e) => {
                state.stats.frames_skipped += 1;
                state.stats.last_skip_reason = Some(e.message);
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
