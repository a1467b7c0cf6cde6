//! A connected viewer: one background thread owns the socket, so a thread blocked in `recv`
//! never delays a `send` from another thread, and neither burns CPU while waiting.
//!
//! The I/O thread sleeps in `poll(2)` on the socket and a wake-up socket pair; `send` queues
//! a frame and pokes the pair; `recv` waits on a condition variable for the inbound queue.
//! The queues outlive connections: when one is lost, the same thread reconnects (backoff with
//! full jitter, fresh presign, endpoints reused, rediscovery when they stop answering), sends
//! made meanwhile wait and go out on the new connection in order, and messages received
//! before the drop are still delivered, followed by a `Reconnected` marker. `GO_AWAY` is
//! make-before-break: the next connection is opened before the old one is drained and closed.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::tls::Connector as TlsConnector;
use tungstenite::WebSocket;

use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::config::ViewerConfig;
use crate::connection::{Connection, End};
use crate::control_plane::{ChannelDirectory, ControlPlane, Endpoints};
use crate::deadline::Deadline;
use crate::diag::{self, CauseCounts, Disconnect, DisconnectCause, MessageCounts, Step, diag};
use crate::envelope::{self, Message, MessageType};
use crate::error::{Error, ErrorKind, Result};
use crate::ice::{IceServer, IceSnapshot};
use crate::sigv4::{self, PresignRequest};
use crate::transport::{self, Stream};
use crate::validate::{self, Endpoint};

/// Stack of the I/O thread: TLS records and JSON frames, nothing deep.
const IO_THREAD_STACK: usize = 256 * 1024;
/// Reconnect attempts that find the endpoint gone (404) or unreachable before the endpoints
/// are discovered again (when they were discovered in the first place).
const REDISCOVER_AFTER: u32 = 3;
/// A renewal whose new connection failed is tried again after this long (the old connection
/// keeps serving meanwhile).
const RENEW_RETRY: Duration = Duration::from_secs(5);

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
    /// Reconnects that succeeded, automatic or by `reconnect`.
    pub reconnects: u64,
    /// Messages skipped because their payload was larger than `max_message_len` (also
    /// counted in `frames_skipped`). They never block the queue.
    pub messages_oversized: u64,
    /// Why the last connection before the current one ended (`GO_AWAY`, a close code, a lost
    /// link, ...); None until one did.
    pub last_disconnect_reason: Option<String>,
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
}

/// A frame waiting for a connection, and the sender waiting for its fate.
pub(crate) struct Outgoing {
    id: u64,
    pub(crate) frame: String,
    pub(crate) message_type: MessageType,
    pub(crate) done: SyncSender<Result<()>>,
}

/// What the app asked the I/O thread to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// `close` / `request_close`: end for good.
    Close,
    /// `reconnect`: close this connection and open the next one now.
    Reconnect,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) inbound: VecDeque<Message>,
    pub(crate) outbound: VecDeque<Outgoing>,
    /// Why the viewer is disconnected for good; set once, by the I/O thread.
    ended: Option<EndReason>,
    pub(crate) stop: Option<Stop>,
    /// The result of the last `reconnect` request, for the caller waiting on it.
    reconnect_result: Option<Result<()>>,
    next_id: u64,
    pub(crate) stats: Stats,
    /// When the current connection opened, for `Stats::connected_*`.
    connected_at: Option<(Instant, SystemTime)>,
    /// Whether the ready pair holds its byte (the fd of `Viewer::ready_fd` is readable).
    ready_signalled: bool,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) arrived: Condvar,
    wake_tx: UnixStream,
    pub(crate) wake_rx: UnixStream,
    /// One byte sits in this pair exactly while `recv` would return at once: the app polls
    /// `ready_rx` (`Viewer::ready_fd`); only `sync_ready`, under the state lock, writes or
    /// reads it.
    ready_tx: UnixStream,
    ready_rx: UnixStream,
}

impl Shared {
    fn new() -> Result<Arc<Shared>> {
        let setup =
            |e: io::Error| Error::new(ErrorKind::Internal, format!("connection setup: {e}"));
        let (wake_tx, wake_rx) = UnixStream::pair().map_err(setup)?;
        wake_tx.set_nonblocking(true).map_err(setup)?;
        wake_rx.set_nonblocking(true).map_err(setup)?;
        let (ready_tx, ready_rx) = UnixStream::pair().map_err(setup)?;
        ready_tx.set_nonblocking(true).map_err(setup)?;
        ready_rx.set_nonblocking(true).map_err(setup)?;
        Ok(Arc::new(Shared {
            state: Mutex::new(State::default()),
            arrived: Condvar::new(),
            wake_tx,
            wake_rx,
            ready_tx,
            ready_rx,
        }))
    }

    /// Makes the ready fd readable exactly while `recv` would return at once (a message is
    /// queued, or the viewer ended or is closing). Call with the lock held after every change
    /// of those, so the fd never says "readable" for a `recv` that would block.
    pub(crate) fn sync_ready(&self, state: &mut State) {
        let ready =
            !state.inbound.is_empty() || state.ended.is_some() || state.stop == Some(Stop::Close);
        if ready == state.ready_signalled {
            return;
        }
        // Non-blocking, one byte: the pair's buffer never holds more than that one.
        let done = if ready {
            (&self.ready_tx).write(&[1]).is_ok()
        } else {
            io::Read::read(&mut &self.ready_rx, &mut [0u8; 1]).is_ok()
        };
        if done {
            state.ready_signalled = ready;
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not turn every later call into a panic too.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake(&self) {
        // Non-blocking: a full pair already holds a pending wake-up, which is all we need.
        let _ = (&self.wake_tx).write(&[1]);
    }

    /// Sleeps `wait` unless the app asks something meanwhile; returns what it asked.
    fn sleep_unless_asked(&self, wait: Duration) -> Option<Stop> {
        let until = Instant::now() + wait;
        loop {
            if let Some(stop) = self.lock().stop {
                return Some(stop);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut fds = [libc::pollfd {
                fd: self.wake_rx.as_raw_fd() as RawFd,
                events: libc::POLLIN,
                revents: 0,
            }];
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
            // SAFETY: one valid, initialised pollfd that outlives the call; length matches.
            unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
            let mut sink = [0u8; 64];
            while matches!(io::Read::read(&mut &self.wake_rx, &mut sink), Ok(n) if n > 0) {}
        }
    }
}

/// Why the viewer is disconnected for good.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EndReason {
    /// `close` (or `request_close`) asked for it and the close handshake completed.
    ClosedByApp,
    /// The server, the network or a failure ended it, and no reconnect followed.
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
    shared: Arc<Shared>,
    io_thread: Mutex<Option<JoinHandle<()>>>,
    link: Arc<Link>,
}

/// What it takes to (re)open the WebSocket, kept so a reconnect costs one TLS handshake.
struct Link {
    config: ViewerConfig,
    connector: TlsConnector,
    /// Replaced when a rediscovery names another one.
    endpoint: Mutex<Endpoint>,
    /// The endpoint came from the control plane, so it may be asked again.
    discovered: bool,
    /// The viewer's one clock, shared with the control plane.
    clock: Arc<Clock>,
    /// The channel's ARN, endpoints and ICE servers, kept for refreshes and reconnects.
    channel: ChannelDirectory,
    /// Names the viewer in log lines (its client id).
    label: Arc<str>,
}

impl Link {
    /// Presigns (now, with the viewer's clock) and opens the WebSocket within `deadline`. On a
    /// 403 whose `Date` shows the viewer's clock is off, corrects the clock and retries once
    /// (the official C SDK never corrects the WSS URL).
    fn open(&self, deadline: &Deadline) -> Result<WebSocket<Stream>> {
        let config = &self.config;
        let endpoint = self
            .endpoint
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let params = [
            ("X-Amz-ChannelARN", self.channel.channel_arn()),
            ("X-Amz-ClientId", config.client_id.as_str()),
        ];
        // This signature's credentials, refreshed ahead of their expiry (credentials.rs).
        let signing = config
            .credential_provider()
            .current_within(self.clock.now(), deadline.left())?;
        let open = || {
            let presigned = sigv4::presign(
                &signing.credentials,
                &PresignRequest {
                    host: &endpoint.host_header,
                    path: &endpoint.path,
                    region: &config.region,
                    service: sigv4::SERVICE,
                    time: self.clock.now(),
                    // Never longer than the credentials live.
                    expires_s: signing
                        .presign_expires_s(config.presign_expires_s, self.clock.now()),
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
            transport::open(&endpoint, &self.connector, &presigned.query, deadline).map_err(
                |mut r| {
                    // Service messages may quote the request; never let a credential through.
                    r.error.message = signing.credentials.redact(&r.error.message);
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

    /// `host[:port]/path` of the current endpoint, for lines.
    fn endpoint_for_log(&self) -> String {
        let e = self.endpoint.lock().unwrap_or_else(|p| p.into_inner());
        format!("{}{}", e.host_header, e.path)
    }

    /// Asks the control plane for the endpoints again and uses the WSS one from now on.
    fn rediscover(&self, deadline: &Deadline) -> Result<()> {
        let endpoints = self.channel.rediscover_endpoints(deadline)?;
        let wss = validate::wss_endpoint(&endpoints.wss)?;
        *self.endpoint.lock().unwrap_or_else(|p| p.into_inner()) = wss;
        Ok(())
    }
}

/// Starts the I/O thread on an open socket.
fn spawn(link: &Arc<Link>, shared: &Arc<Shared>, ws: WebSocket<Stream>) -> Result<JoinHandle<()>> {
    let conn = connection(link, shared, ws)?;
    let (link, shared) = (link.clone(), shared.clone());
    std::thread::Builder::new()
        .name("kvs-viewer-io".into())
        .stack_size(IO_THREAD_STACK)
        .spawn(move || {
            let _log = diag::viewer_scope(&link.label);
            supervise(&link, &shared, conn)
        })
        .map_err(|e| Error::new(ErrorKind::Internal, format!("connection setup: {e}")))
}

fn connection(link: &Arc<Link>, shared: &Arc<Shared>, ws: WebSocket<Stream>) -> Result<Connection> {
    let mut conn = Connection::new(ws, shared.clone(), &link.config)?;
    // Credentials that expire (IoT, a callback, a session token): the connection they signed
    // is replaced, make-before-break, when they are due for a refresh, not after they lapse.
    if let Some(at) = link.config.credential_provider().refresh_at() {
        let left = at - link.clock.now();
        if left.is_positive() {
            conn.renew_at(Instant::now() + left.unsigned_abs());
        }
    }
    shared.lock().connected_at = Some((Instant::now(), SystemTime::now()));
    let refresher = link.clone();
    conn.on_reconnect_ice_server(Box::new(move || {
        // On its own short-lived thread: the I/O thread never waits for the control plane.
        let link = refresher.clone();
        let _ = std::thread::Builder::new()
            .name("kvs-viewer-ice".into())
            .spawn(move || {
                let _ = link
                    .channel
                    .ice_servers(true, &Deadline::after(link.config.connect_timeout));
            });
    }));
    Ok(conn)
}

/// The I/O thread: serves one connection after another until the app stops it, or a
/// connection ends and no reconnect is allowed or possible.
fn supervise(link: &Arc<Link>, shared: &Arc<Shared>, mut conn: Connection) {
    loop {
        let end = conn.serve();
        // Whether `reconnect` asked for the next connection and waits for it.
        let mut manual = false;
        let mut cause = DisconnectCause::App;
        let next = match end {
            End::GoAway | End::Renew => {
                match link.open(&Deadline::after(link.config.connect_timeout)) {
                    // Make-before-break: the new connection is up; let the old one deliver
                    // what it still has, then close it. Sending moves over with the queue.
                    Ok(ws) => {
                        conn.drain_and_close();
                        let why = match end {
                            End::Renew => {
                                cause = DisconnectCause::CredentialsRefresh;
                                "credentials due for a refresh"
                            }
                            _ => {
                                cause = DisconnectCause::GoAway;
                                "GO_AWAY"
                            }
                        };
                        record_disconnect(shared, cause, None, ErrorKind::Closed);
                        diag!(
                            Info,
                            Step::Reconnect,
                            "{why}: new connection open, old one drained"
                        );
                        disconnected(shared, why.into());
                        requeue(shared, conn.take_held());
                        Ok(ws)
                    }
                    // Keep the old one until it ends (the ordinary reconnect follows then);
                    // a renewal is tried again a little later.
                    Err(_) => {
                        if matches!(end, End::Renew) {
                            conn.renew_at(Instant::now() + RENEW_RETRY);
                        }
                        continue;
                    }
                }
            }
            End::Stopped {
                stop: Stop::Close,
                error,
            } => {
                let held = conn.take_held();
                record_disconnect(shared, DisconnectCause::App, None, ErrorKind::Closed);
                diag!(Debug, Step::Close, "connection closed");
                let reason = error.map_or(EndReason::ClosedByApp, EndReason::Failed);
                return finish(shared, reason, held);
            }
            End::Stopped {
                stop: Stop::Reconnect,
                ..
            } => {
                record_disconnect(shared, DisconnectCause::App, None, ErrorKind::Closed);
                diag!(
                    Info,
                    Step::Reconnect,
                    "reconnecting (cause: {})",
                    cause.name()
                );
                disconnected(shared, "reconnect requested by the application".into());
                requeue(shared, conn.take_held());
                shared.lock().stop = None;
                match link.open(&Deadline::after(link.config.connect_timeout)) {
                    Ok(ws) => {
                        manual = true;
                        Ok(ws)
                    }
                    Err(e) if link.config.auto_reconnect => {
                        // The caller learns this attempt failed; the thread keeps trying.
                        shared.lock().reconnect_result = Some(Err(e.clone()));
                        shared.arrived.notify_all();
                        reconnect_with_backoff(link, shared, e)
                    }
                    Err(e) => Err(EndReason::Failed(e)),
                }
            }
            End::Lost(e) => {
                cause = conn.cause_of(&e);
                record_disconnect(shared, cause, conn.server_close_code(), e.kind);
                diag!(Warn, Step::Recv, "connection ended ({}): {e}", cause.name());
                requeue(shared, conn.take_held());
                if !link.config.auto_reconnect || e.kind == ErrorKind::Internal {
                    return finish(shared, EndReason::Failed(e), Vec::new());
                }
                disconnected(shared, e.to_string());
                diag!(
                    Info,
                    Step::Reconnect,
                    "reconnecting (cause: {})",
                    cause.name()
                );
                reconnect_with_backoff(link, shared, e)
            }
        };
        let ws = match next {
            Ok(ws) => ws,
            Err(reason) => return finish(shared, reason, Vec::new()),
        };
        conn = match connection(link, shared, ws) {
            Ok(c) => c,
            Err(e) => return finish(shared, EndReason::Failed(e), Vec::new()),
        };
        reconnected(shared, !manual);
        shared.lock().stats.reconnects_by_cause.add(cause);
        diag!(
            Info,
            Step::Reconnect,
            "reconnected to wss://{} (cause: {})",
            link.endpoint_for_log(),
            cause.name()
        );
    }
}

/// Tries again and again, with backoff, within the configured budget; the app can stop it.
fn reconnect_with_backoff(
    link: &Link,
    shared: &Shared,
    first: Error,
) -> std::result::Result<WebSocket<Stream>, EndReason> {
    let config = &link.config;
    let mut backoff = Backoff::new(config.reconnect_backoff_base, config.reconnect_backoff_cap);
    let started = Instant::now();
    let mut attempts = 0u32;
    let mut unreachable = 0u32;
    let mut last = first;
    loop {
        let wait = backoff.next_wait();
        let out_of_attempts =
            config.reconnect_max_attempts != 0 && attempts >= config.reconnect_max_attempts;
        let out_of_time = !config.reconnect_max_duration.is_zero()
            && started.elapsed() + wait > config.reconnect_max_duration;
        if out_of_attempts || out_of_time {
            return Err(EndReason::Failed(last.with_note(&format!(
                "gave up reconnecting after {attempts} attempts in {:?}",
                started.elapsed()
            ))));
        }
        match shared.sleep_unless_asked(wait) {
            Some(Stop::Close) => return Err(EndReason::ClosedByApp),
            // `reconnect` while we are at it: try now.
            Some(Stop::Reconnect) => shared.lock().stop = None,
            None => {}
        }
        attempts += 1;
        let deadline = Deadline::after(config.connect_timeout);
        match link.open(&deadline) {
            Ok(ws) => return Ok(ws),
            Err(e) => {
                diag!(Warn, Step::Reconnect, "attempt {attempts} failed: {e}");
                if matches!(
                    e.kind,
                    ErrorKind::ResourceNotFound | ErrorKind::Network | ErrorKind::Timeout
                ) {
                    unreachable += 1;
                }
                if link.discovered && unreachable >= REDISCOVER_AFTER {
                    unreachable = 0;
                    let _ = link.rediscover(&Deadline::after(config.connect_timeout));
                }
                last = e;
            }
        }
    }
}

/// Frames that never fully reached the old socket go out first on the next one.
fn requeue(shared: &Shared, held: Vec<Outgoing>) {
    let mut state = shared.lock();
    for out in held.into_iter().rev() {
        state.outbound.push_front(out);
    }
}

fn disconnected(shared: &Shared, reason: String) {
    shared.lock().stats.last_disconnect_reason = Some(reason);
}

/// How the connection ended, for `Stats::last_disconnect`; it is not connected any more.
fn record_disconnect(
    shared: &Shared,
    cause: DisconnectCause,
    close_code: Option<u16>,
    kind: ErrorKind,
) {
    let mut state = shared.lock();
    state.connected_at = None;
    state.stats.last_disconnect = Some(Disconnect {
        cause,
        close_code,
        kind,
    });
}

/// A new connection serves: counted, and (when automatic) announced in arrival order.
fn reconnected(shared: &Shared, announce: bool) {
    let mut state = shared.lock();
    state.stats.reconnects += 1;
    // For a `reconnect` caller waiting (it clears this before asking).
    state.reconnect_result = Some(Ok(()));
    // Not after `request_close`: `recv` may have reported the end already, and this
    // connection only lives to send its close frame.
    if announce && state.stop != Some(Stop::Close) {
        state.inbound.push_back(Message {
            message_type: MessageType::Reconnected,
            sender_client_id: String::new(),
            payload: Vec::new(),
            status: None,
        });
        shared.sync_ready(&mut state);
    }
    drop(state);
    shared.arrived.notify_all();
    shared.wake();
}

/// The viewer is disconnected for good: every waiting sender and receiver learns why.
fn finish(shared: &Shared, reason: EndReason, held: Vec<Outgoing>) {
    let error = reason.error();
    let mut state = shared.lock();
    for out in held.into_iter().chain(state.outbound.drain(..)) {
        let _ = out.done.send(Err(error.clone()));
    }
    if state.reconnect_result.is_none() && state.stop == Some(Stop::Reconnect) {
        state.reconnect_result = Some(Err(error.clone()));
    }
    state.ended = Some(reason);
    state.connected_at = None;
    shared.sync_ready(&mut state);
    drop(state);
    shared.arrived.notify_all();
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
                "connected to wss://{} in {ms} ms",
                v.link.endpoint_for_log()
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
        let connector = transport::connector_for(config.ca_file.as_deref())?;
        // The bound covers the network, not loading the trust store (once per process).
        let deadline = Deadline::after(config.connect_timeout);
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
        let discovered = given_endpoint.is_none();
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
        let link = Arc::new(Link {
            config: config.clone(),
            connector,
            endpoint: Mutex::new(endpoint),
            discovered,
            clock,
            channel,
            label,
        });
        let ws = link.open(&deadline)?;
        let shared = Shared::new()?;
        let io_thread = spawn(&link, &shared, ws)?;
        Ok(Viewer {
            shared,
            io_thread: Mutex::new(Some(io_thread)),
            link,
        })
    }

    /// Closes the current connection and opens a new one now, with the endpoints already
    /// known (one TLS handshake, no control-plane call). With automatic reconnect on (the
    /// default) this is rarely needed; it also revives a viewer whose automatic reconnect was
    /// off or gave up. Messages received before and not yet taken are kept, ahead of the new
    /// connection's; sends made meanwhile wait (within `send_timeout`) and go out on the new
    /// connection. May run while other threads `send` or `recv`.
    ///
    /// On failure (and with automatic reconnect off) the viewer stays disconnected: `recv`
    /// reports the reason after the kept messages, and `reconnect` may be called again; back
    /// off between attempts (the official SDKs wait 100 ms·2ⁿ, capped at 10 s, with full
    /// jitter).
    pub fn reconnect(&self) -> Result<()> {
        let _log = diag::viewer_scope(&self.link.label);
        let mut thread = self.io_thread.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut state = self.shared.lock();
            // After `request_close` the thread is ending: wait for it below, then revive.
            if state.ended.is_none() && state.stop != Some(Stop::Close) {
                // The I/O thread is up: it reconnects, we wait for its answer.
                state.reconnect_result = None;
                state.stop = Some(Stop::Reconnect);
                drop(state);
                self.shared.wake();
                return self.wait_for_reconnect();
            }
        }
        // Disconnected for good: the old thread is done; start a new one.
        if let Some(old) = thread.take() {
            let _ = old.join();
        }
        let ws = self
            .link
            .open(&Deadline::after(self.link.config.connect_timeout))
            .inspect_err(|e| {
                let mut state = self.shared.lock();
                state.ended = Some(EndReason::Failed(e.clone()));
                self.shared.sync_ready(&mut state);
            })?;
        {
            let mut state = self.shared.lock();
            state.ended = None;
            state.stop = None;
            self.shared.sync_ready(&mut state);
        }
        *thread = Some(spawn(&self.link, &self.shared, ws)?);
        let mut state = self.shared.lock();
        state.stats.reconnects += 1;
        let cause = state
            .stats
            .last_disconnect
            .as_ref()
            .map_or(DisconnectCause::App, |d| d.cause);
        state.stats.reconnects_by_cause.add(cause);
        drop(state);
        diag!(
            Info,
            Step::Reconnect,
            "reconnected to wss://{} (cause: {})",
            self.link.endpoint_for_log(),
            cause.name()
        );
        Ok(())
    }

    fn wait_for_reconnect(&self) -> Result<()> {
        // Close handshake, then one connect: each bounded by connect_timeout.
        let bound = self.link.config.connect_timeout * 3;
        let until = Instant::now() + bound;
        let mut state = self.shared.lock();
        loop {
            if let Some(result) = state.reconnect_result.take() {
                return result;
            }
            if let Some(end) = &state.ended {
                return Err(end.error());
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    "reconnect: no new connection in time",
                ));
            }
            state = self
                .shared
                .arrived
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Sends an `SDP_OFFER` or `ICE_CANDIDATE` (payload: the JSON, not yet base64) to the
    /// master. Returns once the frame is handed to the socket; while reconnecting, waits (up
    /// to `send_timeout`) for the new connection. A send that returns an error was not sent,
    /// except a `Timeout` whose frame had already been written behind a full socket buffer
    /// (the message says so).
    pub fn send(
        &self,
        message_type: MessageType,
        payload: &[u8],
        correlation_id: Option<&str>,
    ) -> Result<()> {
        let frame = envelope::encode_outgoing(message_type, payload, correlation_id)?;
        let send_timeout = self.link.config.send_timeout;
        let (done, result) = sync_channel(1);
        let id = {
            let mut state = self.shared.lock();
            if let Some(end) = &state.ended {
                return Err(end.error());
            }
            if state.stop == Some(Stop::Close) {
                return Err(Error::closed(None, "the viewer is closing"));
            }
            let id = state.next_id;
            state.next_id += 1;
            state.outbound.push_back(Outgoing {
                id,
                frame,
                message_type,
                done,
            });
            id
        };
        self.shared.wake();
        match result.recv_timeout(send_timeout) {
            Ok(r) => r,
            Err(_) => {
                let mut state = self.shared.lock();
                match state.outbound.iter().position(|o| o.id == id) {
                    Some(i) => {
                        state.outbound.remove(i);
                        Err(Error::new(
                            ErrorKind::Timeout,
                            "send: no connection took the frame in time; it was not sent",
                        ))
                    }
                    None => Err(Error::new(
                        ErrorKind::Timeout,
                        "send: the connection did not take the frame in time (it waits \
                         behind a full socket buffer and may still go out)",
                    )),
                }
            }
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
                self.shared.sync_ready(&mut state);
                return Ok(value);
            }
            if let Some(end) = &state.ended {
                return Err(end.error());
            }
            if state.stop == Some(Stop::Close) {
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

    /// A file descriptor that is readable exactly while `recv` would return at once — a
    /// message is queued, or the viewer has ended (then `recv` reports why) — for `poll`,
    /// `epoll` or a GLib main loop instead of a thread blocked in `recv`. Level-triggered:
    /// it stays readable until the queue is empty. Only poll it: never read, write or close
    /// it. Valid until the viewer is closed; the same fd across reconnects.
    pub fn ready_fd(&self) -> BorrowedFd<'_> {
        self.shared.ready_rx.as_fd()
    }

    /// Counters of the current connection and the ones before it.
    pub fn stats(&self) -> Stats {
        let mut stats = {
            let state = self.shared.lock();
            let mut stats = state.stats.clone();
            if let Some((at, wall)) = state.connected_at {
                stats.connected_since = Some(wall);
                stats.connected_for = Some(at.elapsed());
            }
            stats
        };
        stats.clock_offset_s = self.link.clock.offset_s();
        stats.ice_refreshes = self.link.channel.ice_refreshes();
        stats
    }

    /// Why the viewer is disconnected for good, if it is.
    pub fn ended(&self) -> Option<Error> {
        self.shared.lock().ended.as_ref().map(EndReason::error)
    }

    /// Ends the connection from any thread, without waiting: the I/O thread sends a close
    /// frame and no reconnect follows; a blocked or later `recv` returns `Closed` once the
    /// messages already received are taken — and from then on, as frames arriving while the
    /// close handshake runs are dropped — and blocked or later sends fail. Idempotent. The
    /// viewer stays valid: `close` joins the thread, `reconnect` starts a new connection.
    pub fn request_close(&self) {
        {
            let mut state = self.shared.lock();
            if state.stop == Some(Stop::Close) {
                return;
            }
            state.stop = Some(Stop::Close);
            self.shared.sync_ready(&mut state);
        }
        self.shared.wake();
        self.shared.arrived.notify_all();
    }

    /// Sends a close frame (so the service frees the viewer slot at once), waits for the
    /// server's reply within the connect timeout, and stops the I/O thread.
    pub fn close(self) -> Result<()> {
        let label = self.link.label.clone();
        let _log = diag::viewer_scope(&label);
        let closed = self.stop_and_join();
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

    fn stop_and_join(&self) -> Result<()> {
        let Some(thread) = self
            .io_thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return Ok(());
        };
        let already_ended = self.shared.lock().ended.is_some();
        self.request_close();
        // The thread bounds the close handshake by the connect timeout itself.
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

    /// The ICE servers of one fetch, with its generation (a new number: new TURN
    /// credentials). Fetches like [`ice_servers`](Self::ice_servers) when they are near
    /// their TTL.
    pub fn ice_snapshot(&self) -> Result<IceSnapshot> {
        let _log = diag::viewer_scope(&self.link.label);
        self.link
            .channel
            .ice_snapshot(false, &self.control_deadline())
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
        let _ = self.stop_and_join();
    }
}
