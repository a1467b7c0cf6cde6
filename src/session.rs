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
use std::time::{Duration, Instant, SystemTime};

use native_tls::TlsConnector;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message as WsMessage, WebSocket};

use crate::clock::Clock;
use crate::config::ViewerConfig;
use crate::control_plane::{ChannelDirectory, ControlPlane, Endpoints};
use crate::deadline::Deadline;
use crate::diag::{self, CauseCounts, Disconnect, DisconnectCause, MessageCounts, Step, diag};
use crate::envelope::{self, Message, MessageType};
use crate::error::{Error, ErrorKind, Result};
use crate::ice::IceServer;
use crate::sigv4::{self, PresignRequest};
use crate::transport::{self, Stream};
use crate::validate::{self, Endpoint};

/// Stack of the connection thread: TLS records and JSON frames, nothing deep.
const IO_THREAD_STACK: usize = 256 * 1024;

/// Counters a firmware engineer can log to see what the connection went through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Text frames received (protocol messages and skipped frames alike).
    pub frames_received: u64,
    /// Frames that were not protocol messages (not JSON, binary, bad base64, ...).
    pub frames_skipped: u64,
    /// Why the last skipped frame was skipped.
    pub last_skip_reason: Option<String>,
    /// Messages handed to the socket.
    pub frames_sent: u64,
    /// Keepalive pings sent.
    pub pings_sent: u64,
    /// Clock offset (server − local, seconds) learnt from a 403 and applied to signing.
    pub clock_offset_s: i64,
    /// Threads blocked in `recv` right now (a diagnostic for stuck pipelines).
    pub waiting_receivers: u32,
    /// Successful `reconnect` calls.
    pub reconnects: u64,
    /// Messages handed to the socket, by type.
    pub sent: MessageCounts,
    /// Messages received and queued for `recv`, by type.
    pub received: MessageCounts,
    /// Bytes of WebSocket messages sent (frame payloads; TLS and framing not counted).
    pub bytes_sent: u64,
    /// Bytes of WebSocket messages received, skipped frames included.
    pub bytes_received: u64,
    /// Round trip of the last answered keepalive ping.
    pub last_ping_rtt: Option<Duration>,
    /// `reconnects` by the cause of the disconnect before them.
    pub reconnects_by_cause: CauseCounts,
    /// When the current connection opened (device clock); None while disconnected.
    pub connected_since: Option<SystemTime>,
    /// How long the current connection has been open; None while disconnected.
    pub connected_for: Option<Duration>,
    /// How the last connection ended, once one has.
    pub last_disconnect: Option<Disconnect>,
    /// TURN server sets fetched again after the first.
    pub ice_refreshes: u64,
    /// Messages skipped because their payload was larger than `max_message_len` (also
    /// counted in `frames_skipped`). They never block the queue.
    pub messages_oversized: u64,
}

struct Outgoing {
    frame: String,
    message_type: MessageType,
    done: SyncSender<Result<()>>,
}

#[derive(Default)]
struct State {
    inbound: VecDeque<Message>,
    outbound: VecDeque<Outgoing>,
    /// Why the connection is gone; set once, by the connection thread.
    ended: Option<EndReason>,
    close_requested: bool,
    stats: Stats,
}

struct Shared {
    state: Mutex<State>,
    arrived: Condvar,
    wake_tx: UnixStream,
    wake_rx: UnixStream,
    /// When this connection opened, for `Stats::connected_*`.
    opened_at: (Instant, SystemTime),
}

impl Shared {
    fn new(inbound: VecDeque<Message>, stats: Stats) -> Result<Arc<Shared>> {
        let setup =
            |e: io::Error| Error::new(ErrorKind::Internal, format!("connection setup: {e}"));
        let (wake_tx, wake_rx) = UnixStream::pair().map_err(setup)?;
        wake_tx.set_nonblocking(true).map_err(setup)?;
        wake_rx.set_nonblocking(true).map_err(setup)?;
        Ok(Arc::new(Shared {
            state: Mutex::new(State {
                inbound,
                stats,
                ..State::default()
            }),
            arrived: Condvar::new(),
            wake_tx,
            wake_rx,
            opened_at: (Instant::now(), SystemTime::now()),
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

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EndReason {
    /// `close` (or a `reconnect`) asked for it and the close handshake completed.
    ClosedByApp,
    /// The server, the network or a failure ended it.
    Failed(Error),
}

impl EndReason {
    /// What `recv` and `send` report once the connection is gone.
    fn error(&self) -> Error {
        match self {
            EndReason::ClosedByApp => Error::closed(None, "closed by the application"),
            EndReason::Failed(e) => e.clone(),
        }
    }
}

/// A connected viewer. `send` and `recv` may be called from different threads at once.
///
/// Against the project's emulator (what the tests and users' CI run against):
///
/// ```
/// use std::time::Duration;
/// use kvs_viewer::{Credentials, MessageType, Viewer, ViewerConfig};
/// # use kvs_signaling_emulator::{Emulator, EmulatorConfig};
/// # let emu = Emulator::start(EmulatorConfig::default()).unwrap();
/// # let env = emu.env();
///
/// let mut config = ViewerConfig::new(
///     &env.region,
///     &env.channel_arn,
///     "viewer-1",
///     &env.wss_endpoint,
///     Credentials::new(&env.access_key_id, &env.secret_access_key, None),
/// );
/// config.ca_file = Some(env.ca_file.clone());
/// let viewer = Viewer::connect(&config)?;
/// let offer = br#"{"type":"offer","sdp":"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"}"#;
/// viewer.send(MessageType::SdpOffer, offer, None)?;
/// let answer = viewer.recv(Some(Duration::from_secs(10)))?;
/// assert_eq!(answer.message_type, MessageType::SdpAnswer);
/// assert!(viewer.stats().frames_sent >= 1);
/// viewer.close()?;
/// # Ok::<(), kvs_viewer::Error>(())
/// ```
pub struct Viewer {
    /// The current connection's state; replaced by `reconnect`.
    shared: Arc<Shared>,
    io_thread: Option<JoinHandle<()>>,
    link: Link,
}

/// What it takes to (re)open the WebSocket, kept so a reconnect costs one TLS handshake.
struct Link {
    config: ViewerConfig,
    connector: TlsConnector,
    endpoint: Endpoint,
    /// The viewer's one clock, shared with the control plane.
    clock: Arc<Clock>,
    /// The channel's ARN, endpoints and ICE servers, kept for refreshes and reconnects.
    channel: ChannelDirectory,
    /// Names the viewer in log lines (its client id).
    label: Arc<str>,
}

impl Link {
    /// Presigns and opens the WebSocket within `deadline`. On a 403 whose `Date` shows the
    /// viewer's clock is off, corrects the clock and retries once (the official C SDK never
    /// corrects the WSS URL).
    fn open(&self, deadline: &Deadline) -> Result<WebSocket<Stream>> {
        let config = &self.config;
        let endpoint = &self.endpoint;
        let params = [
            ("X-Amz-ChannelARN", self.channel.channel_arn()),
            ("X-Amz-ClientId", config.client_id.as_str()),
        ];
        let open = || {
            let presigned = sigv4::presign(
                &config.credentials,
                &PresignRequest {
                    host: &endpoint.host_header,
                    path: &endpoint.path,
                    region: &config.region,
                    service: sigv4::SERVICE,
                    time: self.clock.now(),
                    expires_s: config.presign_expires_s,
                    params: &params,
                },
            );
            diag!(
                Trace,
                Step::Connect,
                "GET wss://{}{}?{}",
                endpoint.host_header,
                endpoint.path,
                diag::query_for_log(&presigned.query)
            );
            transport::open(endpoint, &self.connector, &presigned.query, deadline).map_err(
                |mut r| {
                    // Service messages may quote the request; never let a credential through.
                    r.error.message = config.credentials.redact(&r.error.message);
                    r
                },
            )
        };
        let rejection = match open() {
            Ok(ws) => return Ok(ws),
            Err(r) => r,
        };
        let retry = self.clock.after_refusal(
            rejection.error.http_status,
            rejection.server_date,
            &rejection.error.message,
        );
        if let Some(offset) = retry {
            diag!(
                Info,
                Step::Connect,
                "the service refused the signature's time (HTTP 403); clock corrected to {offset:+} s \
                 from the device clock, retrying"
            );
        }
        match retry {
            Some(offset) => open().map_err(|r| {
                r.error.in_step(&format!(
                    "connect (retried with the server's clock, {offset} s off)"
                ))
            }),
            None => Err(rejection.error.in_step("connect")),
        }
    }

    /// Hands the socket to a new connection thread.
    fn spawn(&self, ws: WebSocket<Stream>, shared: &Arc<Shared>) -> Result<JoinHandle<()>> {
        let setup =
            |e: io::Error| Error::new(ErrorKind::Internal, format!("connection setup: {e}"));
        let tcp = ws.get_ref().get_ref().tcp();
        transport::detect_dead_peer(tcp, self.config.dead_peer_bound()).map_err(setup)?;
        tcp.set_read_timeout(None).map_err(setup)?;
        tcp.set_write_timeout(None).map_err(setup)?;
        tcp.set_nonblocking(true).map_err(setup)?;
        let label = self.label.clone();
        let conn = Connection {
            ws,
            shared: shared.clone(),
            ping_interval: self.config.ping_interval,
            close_timeout: self.config.connect_timeout,
            max_message_len: self.config.max_message_len,
            pong_timeout: self.config.pong_deadline(),
            unflushed: Vec::new(),
            last_heard: Instant::now(),
            ping_sent_at: None,
            closing_since: None,
            server_close: None,
        };
        std::thread::Builder::new()
            .name("kvs-viewer-io".into())
            .stack_size(IO_THREAD_STACK)
            .spawn(move || {
                let _log = diag::viewer_scope(&label);
                conn.run()
            })
            .map_err(setup)
    }
}

impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer").finish_non_exhaustive()
    }
}

impl Viewer {
    /// Validates `config`, discovers what it leaves out (ARN, endpoints, ICE servers),
    /// presigns, and opens TLS + WebSocket, all within `config.connect_timeout`. On a 403
    /// whose `Date` shows the local clock is off, it corrects the viewer's clock and retries
    /// once (the official C SDK never corrects the WSS URL).
    pub fn connect(config: &ViewerConfig) -> Result<Viewer> {
        let label: Arc<str> = Arc::from(config.client_id.as_str());
        let _log = diag::viewer_scope(&label);
        let started = Instant::now();
        let connected = Viewer::open(config, label);
        let ms = started.elapsed().as_millis();
        match &connected {
            Ok(v) => diag!(
                Info,
                Step::Connect,
                "connected to wss://{}{} in {ms} ms",
                v.link.endpoint.host_header,
                v.link.endpoint.path
            ),
            Err(e) => diag!(Error, Step::Connect, "failed after {ms} ms: {e}"),
        }
        connected
    }

    fn open(config: &ViewerConfig, label: Arc<str>) -> Result<Viewer> {
        let given_endpoint = config.validate()?;
        diag!(
            Debug,
            Step::Credentials,
            "signing as access key id {} ({}), region {}",
            diag::key_id_for_log(&config.credentials.access_key_id),
            if config.credentials.session_token().is_some() {
                "with a session token"
            } else {
                "no session token"
            },
            config.region
        );
        let deadline = Deadline::after(config.connect_timeout);
        let connector = transport::connector_for(config.ca_file.as_deref())?;
        let clock = Arc::new(Clock::new());
        let control = ControlPlane::new(config, connector.clone(), clock.clone())?;
        let channel_arn = if config.channel_arn.is_empty() {
            let name = config.channel_name.as_deref().unwrap_or_default();
            control.describe(name, &deadline)?.arn
        } else {
            config.channel_arn.clone()
        };
        let channel = ChannelDirectory::new(control, channel_arn, config);
        // The session decides: the endpoint given, or the one the control plane names.
        let endpoint = match given_endpoint {
            Some(endpoint) => endpoint,
            None => {
                let endpoints = channel.endpoints(&deadline)?;
                // A viewer discovering its channel needs TURN servers next: fetch them now,
                // on the connection that is already open, as the C SDK does.
                channel.ice_servers(true, &deadline)?;
                validate::wss_endpoint(&endpoints.wss)?
            }
        };
        let link = Link {
            config: config.clone(),
            connector,
            endpoint,
            clock,
            channel,
            label,
        };
        let ws = link.open(&deadline)?;
        let shared = Shared::new(VecDeque::new(), Stats::default())?;
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
        let _log = diag::viewer_scope(&self.link.label);
        let cause = match &*self.shared.lock() {
            State {
                ended: Some(_),
                stats:
                    Stats {
                        last_disconnect: Some(d),
                        ..
                    },
                ..
            } => d.cause,
            _ => DisconnectCause::App,
        };
        diag!(
            Info,
            Step::Reconnect,
            "reconnecting (cause: {})",
            cause.name()
        );
        let started = Instant::now();
        let _ = self.shutdown();
        let (kept, stats) = {
            let mut state = self.shared.lock();
            (std::mem::take(&mut state.inbound), state.stats.clone())
        };
        let deadline = Deadline::after(self.link.config.connect_timeout);
        let opened = self.link.open(&deadline).and_then(|ws| {
            let shared = Shared::new(kept.clone(), stats.clone())?;
            let thread = self.link.spawn(ws, &shared)?;
            Ok((shared, thread))
        });
        match opened {
            Ok((shared, thread)) => {
                self.shared = shared;
                self.io_thread = Some(thread);
                {
                    let mut state = self.shared.lock();
                    state.stats.reconnects += 1;
                    state.stats.reconnects_by_cause.add(cause);
                }
                diag!(
                    Info,
                    Step::Reconnect,
                    "reconnected to wss://{}{} in {} ms (cause: {})",
                    self.link.endpoint.host_header,
                    self.link.endpoint.path,
                    started.elapsed().as_millis(),
                    cause.name()
                );
                Ok(())
            }
            Err(e) => {
                {
                    let mut state = self.shared.lock();
                    state.inbound = kept;
                    state.ended = Some(EndReason::Failed(e.clone()));
                }
                diag!(
                    Warn,
                    Step::Reconnect,
                    "failed after {} ms: {e}",
                    started.elapsed().as_millis()
                );
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
            if let Some(end) = &state.ended {
                return Err(end.error());
            }
            if state.close_requested {
                return Err(Error::closed(None, "the viewer is closing"));
            }
            state.outbound.push_back(Outgoing {
                frame,
                message_type,
                done,
            });
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
            if let Some(end) = &state.ended {
                return Err(end.error());
            }
            if state.close_requested {
                return Err(EndReason::ClosedByApp.error());
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

    /// Counters of the current connection and the ones before it.
    pub fn stats(&self) -> Stats {
        let mut stats = {
            let state = self.shared.lock();
            let mut stats = state.stats.clone();
            if state.ended.is_none() {
                stats.connected_since = Some(self.shared.opened_at.1);
                stats.connected_for = Some(self.shared.opened_at.0.elapsed());
            }
            stats
        };
        stats.clock_offset_s = self.link.clock.offset_s();
        stats.ice_refreshes = self.link.channel.ice_refreshes();
        stats
    }

    /// Why the connection ended, if it has.
    pub fn ended(&self) -> Option<Error> {
        self.shared.lock().ended.as_ref().map(EndReason::error)
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
        let label = self.link.label.clone();
        let _log = diag::viewer_scope(&label);
        let closed = self.shutdown();
        let stats = self.shared.lock().stats.clone();
        let (sent, received) = (stats.sent.total(), stats.received.total());
        match &closed {
            Ok(()) => diag!(
                Info,
                Step::Close,
                "closed ({sent} messages sent, {received} received, {} reconnects)",
                stats.reconnects
            ),
            Err(e) => diag!(Warn, Step::Close, "closed without the server's answer: {e}"),
        }
        closed
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
            Some(EndReason::ClosedByApp) => Ok(()),
            Some(EndReason::Failed(e)) => Err(e.clone()),
            None => Err(Error::internal("connection thread ended without a reason")),
        }
    }

    /// The channel's ARN, as configured or discovered.
    pub fn channel_arn(&self) -> &str {
        self.link.channel.channel_arn()
    }

    /// The channel's viewer endpoints. Known after discovery; a viewer configured with a WSS
    /// endpoint asks once (`GetSignalingChannelEndpoint`) and keeps the answer.
    ///
    /// None of the control-plane calls touch the connection thread: they may run while another
    /// thread is blocked in `recv` or `send`. Each is bounded by `connect_timeout`.
    pub fn endpoints(&self) -> Result<Endpoints> {
        let _log = diag::viewer_scope(&self.link.label);
        self.link.channel.endpoints(&self.control_deadline())
    }

    /// The ICE servers for the peer connection: the regional STUN server first, then the TURN
    /// servers of `GetIceServerConfig`. Fetched again (one call; the endpoints are kept) when
    /// within 30 s of the smallest TTL, so the credentials returned are always usable.
    /// Concurrent callers wait for one fetch.
    pub fn ice_servers(&self) -> Result<Vec<IceServer>> {
        let _log = diag::viewer_scope(&self.link.label);
        self.link
            .channel
            .ice_servers(false, &self.control_deadline())
    }

    /// Fetches the TURN servers now (e.g. on `RECONNECT_ICE_SERVER`) and returns the new list.
    pub fn refresh_ice_servers(&self) -> Result<Vec<IceServer>> {
        let _log = diag::viewer_scope(&self.link.label);
        self.link
            .channel
            .ice_servers(true, &self.control_deadline())
    }

    /// TURN servers dropped from the last answer because it listed more than
    /// [`MAX_TURN_SERVERS`](crate::MAX_TURN_SERVERS).
    pub fn ice_servers_dropped(&self) -> usize {
        self.link.channel.ice_servers_dropped()
    }

    fn control_deadline(&self) -> Deadline {
        Deadline::after(self.link.config.connect_timeout)
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// The connection thread's side.
struct Connection {
    ws: WebSocket<Stream>,
    shared: Arc<Shared>,
    ping_interval: Duration,
    close_timeout: Duration,
    /// Last time anything came from the server.
    last_heard: Instant,
    /// A keepalive ping is out, unanswered, since then.
    ping_sent_at: Option<Instant>,
    /// The app asked to close; our close frame went out then.
    closing_since: Option<Instant>,
    /// The server's close frame (code, reason), once it sent one.
    server_close: Option<(u16, String)>,
    /// Largest payload delivered; larger ones are skipped and counted.
    max_message_len: usize,
    /// How long a keepalive ping may go unanswered.
    pong_timeout: Duration,
    /// Senders of frames written but not yet flushed to the socket.
    unflushed: Vec<(SyncSender<Result<()>>, MessageType, usize)>,
}

/// What the timers ask of the loop.
enum Next {
    /// Sleep until the socket or a caller needs us, at most this long.
    Sleep(Duration),
    /// A ping went out: flush it before sleeping.
    Flush,
}

impl Connection {
    fn run(mut self) {
        let reason = self.serve();
        let error = reason.error();
        let cause = self.disconnect_cause(&reason);
        // Frames tungstenite still held never reached the socket: their senders learn it.
        for (done, _, _) in self.unflushed.drain(..) {
            let _ = done.send(Err(error.clone()));
        }
        let mut state = self.shared.lock();
        for out in state.outbound.drain(..) {
            let _ = out.done.send(Err(error.clone()));
        }
        state.stats.last_disconnect = Some(Disconnect {
            cause,
            close_code: self.server_close.as_ref().map(|(code, _)| *code),
            kind: error.kind,
        });
        state.ended = Some(reason);
        drop(state);
        self.shared.arrived.notify_all();
        match cause {
            DisconnectCause::App => diag!(Debug, Step::Close, "connection closed"),
            _ => diag!(
                Warn,
                Step::Recv,
                "connection ended ({}): {error}",
                cause.name()
            ),
        }
    }

    /// Why the connection ended, for stats and lines.
    fn disconnect_cause(&self, reason: &EndReason) -> DisconnectCause {
        let e = match reason {
            EndReason::ClosedByApp => return DisconnectCause::App,
            EndReason::Failed(e) => e,
        };
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

    /// Runs until the connection ends; returns why.
    fn serve(&mut self) -> EndReason {
        let sock: RawFd = self.ws.get_ref().get_ref().tcp().as_raw_fd();
        let wake: RawFd = self.shared.wake_rx.as_raw_fd();
        loop {
            let close_requested = match self.send_queued() {
                Ok(c) => c,
                Err(e) => return EndReason::Failed(e),
            };
            if close_requested {
                self.start_close();
            }
            if let Err(end) = self.read_available() {
                return end;
            }
            let want_write = match self.flush() {
                Ok(w) => w,
                Err(end) => return end,
            };
            let wait = match self.timers() {
                Ok(Next::Sleep(wait)) => wait,
                Ok(Next::Flush) => continue,
                Err(end) => return end,
            };
            if let Err(e) = poll_two(sock, want_write, wake, wait) {
                return EndReason::Failed(Error::new(ErrorKind::Internal, format!("poll: {e}")));
            }
            self.drain_wake_ups();
        }
    }

    /// Hands the queued frames to the socket, in order, releasing each caller. Returns whether
    /// the app asked to close.
    fn send_queued(&mut self) -> Result<bool> {
        let (batch, close_requested) = {
            let mut state = self.shared.lock();
            (std::mem::take(&mut state.outbound), state.close_requested)
        };
        for out in batch {
            let len = out.frame.len();
            match self.ws.write(WsMessage::text(out.frame)) {
                Err(e) if !is_would_block(&e) => {
                    let e = ws_error(e, &self.server_close);
                    let _ = out.done.send(Err(e.clone()));
                    return Err(e);
                }
                // Written, or kept by tungstenite behind a full socket buffer: the caller is
                // released once a flush has handed it to the socket, never before.
                _ => self.unflushed.push((out.done, out.message_type, len)),
            }
        }
        Ok(close_requested)
    }

    /// Everything written so far reached the socket: release those senders.
    fn acknowledge_flushed(&mut self) {
        if self.unflushed.is_empty() {
            return;
        }
        // Counted before the callers are released, so stats never lag a send.
        {
            let mut state = self.shared.lock();
            state.stats.frames_sent += self.unflushed.len() as u64;
            for (_, message_type, len) in &self.unflushed {
                state.stats.sent.add(*message_type);
                state.stats.bytes_sent += *len as u64;
            }
        }
        for (done, message_type, len) in self.unflushed.drain(..) {
            let _ = done.send(Ok(()));
            diag!(
                Debug,
                Step::Send,
                "{} frame, {len} bytes",
                message_type.name()
            );
        }
    }

    /// Sends our close frame, once.
    fn start_close(&mut self) {
        if self.closing_since.is_some() {
            return;
        }
        self.closing_since = Some(Instant::now());
        let _ = self.ws.close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "viewer closing".into(),
        }));
    }

    /// Reads everything the socket has. TLS may hold decrypted bytes poll cannot see, so this
    /// reads until `WouldBlock` rather than trusting poll alone.
    fn read_available(&mut self) -> std::result::Result<(), EndReason> {
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
                Err(_) if self.closing_since.is_some() => return Err(EndReason::ClosedByApp),
                Err(e) => return Err(EndReason::Failed(ws_error(e, &self.server_close))),
            }
        }
    }

    /// Flushes queued frames, automatic pongs and close replies. Returns whether bytes are
    /// still waiting for the socket to become writable.
    fn flush(&mut self) -> std::result::Result<bool, EndReason> {
        match self.ws.flush() {
            Ok(()) => {
                self.acknowledge_flushed();
                Ok(false)
            }
            Err(e) if is_would_block(&e) => Ok(true),
            Err(_) if self.closing_since.is_some() => Err(EndReason::ClosedByApp),
            Err(e) => Err(EndReason::Failed(ws_error(e, &self.server_close))),
        }
    }

    /// The close-handshake bound and the keepalive: what to do next, or why to stop.
    fn timers(&mut self) -> std::result::Result<Next, EndReason> {
        let now = Instant::now();
        if let Some(since) = self.closing_since {
            let left = self.close_timeout.saturating_sub(now - since);
            if left.is_zero() {
                return Err(EndReason::Failed(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "close: the server did not confirm the close within {:?}; \
                         the connection was dropped",
                        self.close_timeout
                    ),
                )));
            }
            return Ok(Next::Sleep(left));
        }
        let idle_wait = Duration::from_secs(3600);
        if self.ping_interval.is_zero() {
            return Ok(Next::Sleep(idle_wait));
        }
        match self.ping_sent_at {
            Some(at) if now - at >= self.pong_timeout => Err(EndReason::Failed(Error::closed(
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
                        Err(EndReason::Failed(ws_error(e, &self.server_close)))
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
            Ok(Some(message)) => {
                let message_type = message.message_type;
                state.stats.received.add(message_type);
                state.inbound.push_back(message);
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
