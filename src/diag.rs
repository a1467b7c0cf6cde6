//! Field diagnostics: the library's log lines, where they go, and the counters behind
//! [`Stats`](crate::Stats).
//!
//! Lines go through the `log` crate, so a Rust program sees them in whatever logger it
//! installs (targets `kvs_viewer::<step>`). The C API installs [`Bridge`] instead: it keeps
//! only the library's own lines, hides anything that looks like a signature, rate-limits
//! repeated lines, and hands each line to the application's callback or, by default, to
//! stderr when `KVS_LOG_LEVEL` is set.
//!
//! Every line names the viewer and the step: `viewer-1 connect: connected to wss://…`.
//! The viewer is a thread-local set by the session for the duration of a call and for its
//! connection thread, so the layers below (HTTP, TLS) need no plumbing.
//!
//! A sink is never called while the library holds a lock that a call from inside the sink
//! could need: code that logs while holding one wraps the lock in [`hold`], which defers the
//! lines until the lock is released.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::envelope::MessageType;

/// Where a line comes from; part of every line and of its `log` target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// DescribeSignalingChannel, GetSignalingChannelEndpoint.
    Discovery,
    /// Presign, TCP connect, the whole WebSocket connect.
    Connect,
    /// TLS handshakes.
    Tls,
    /// The WebSocket upgrade request and answer.
    Upgrade,
    /// Replacing a connection.
    Reconnect,
    /// Frames and pings going out.
    Send,
    /// Frames, pongs and the end of a connection coming in.
    Recv,
    /// GetIceServerConfig and TURN refreshes.
    Ice,
    /// Which credentials sign, and the service refusing them.
    Credentials,
    /// Closing the connection.
    Close,
}

impl Step {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Step::Discovery => "discovery",
            Step::Connect => "connect",
            Step::Tls => "tls",
            Step::Upgrade => "upgrade",
            Step::Reconnect => "reconnect",
            Step::Send => "send",
            Step::Recv => "recv",
            Step::Ice => "ice",
            Step::Credentials => "credentials",
            Step::Close => "close",
        }
    }

    /// The `log` target: Rust loggers filter on it (`kvs_viewer::connect=debug`).
    pub(crate) fn target(self) -> &'static str {
        match self {
            Step::Discovery => "kvs_viewer::discovery",
            Step::Connect => "kvs_viewer::connect",
            Step::Tls => "kvs_viewer::tls",
            Step::Upgrade => "kvs_viewer::upgrade",
            Step::Reconnect => "kvs_viewer::reconnect",
            Step::Send => "kvs_viewer::send",
            Step::Recv => "kvs_viewer::recv",
            Step::Ice => "kvs_viewer::ice",
            Step::Credentials => "kvs_viewer::credentials",
            Step::Close => "kvs_viewer::close",
        }
    }
}

/// Logs one line naming the current viewer and the step. Arguments are evaluated and
/// formatted only when the level is enabled (`log::max_level`): a disabled line costs one
/// relaxed atomic load.
macro_rules! diag {
    ($level:ident, $step:expr, $($arg:tt)+) => {{
        let step: $crate::diag::Step = $step;
        log::log!(
            target: step.target(),
            log::Level::$level,
            "{} {}: {}",
            $crate::diag::CurrentViewer,
            step.name(),
            format_args!($($arg)+)
        )
    }};
}
pub(crate) use diag;

// ---------------------------------------------------------------------------------------
// The viewer a line is about.

thread_local! {
    static VIEWER: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
    /// Depth of `hold` guards on this thread, and the lines they deferred.
    static HELD: Cell<u32> = const { Cell::new(0) };
    static DEFERRED: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
    /// Set while this thread runs a sink: lines logged from inside it are dropped.
    static IN_SINK: Cell<bool> = const { Cell::new(false) };
}

/// Formats as the current thread's viewer label, `-` outside any viewer.
pub(crate) struct CurrentViewer;

impl fmt::Display for CurrentViewer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        VIEWER.with(|v| match &*v.borrow() {
            Some(label) => f.write_str(label),
            None => f.write_str("-"),
        })
    }
}

/// Lines logged on this thread name `label` until the guard drops (then the previous one).
#[must_use]
pub(crate) struct ViewerScope {
    previous: Option<Arc<str>>,
}

pub(crate) fn viewer_scope(label: &Arc<str>) -> ViewerScope {
    let previous = VIEWER.with(|v| v.replace(Some(label.clone())));
    ViewerScope { previous }
}

impl Drop for ViewerScope {
    fn drop(&mut self) {
        let previous = self.previous.take();
        VIEWER.with(|v| *v.borrow_mut() = previous);
    }
}

/// Most lines a thread defers while it holds a lock; more are counted, not kept.
const MAX_DEFERRED: usize = 64;

/// Defers this thread's lines until the guard drops. Take it *before* the lock it covers, so
/// it drops after the lock guard: `let _quiet = diag::hold(); let cache = lock(&self.ice);`.
#[must_use]
pub(crate) struct Hold(());

pub(crate) fn hold() -> Hold {
    HELD.with(|h| h.set(h.get() + 1));
    Hold(())
}

impl Drop for Hold {
    fn drop(&mut self) {
        let depth = HELD.with(|h| {
            let d = h.get().saturating_sub(1);
            h.set(d);
            d
        });
        if depth == 0 {
            let lines = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
            for (level, line) in lines {
                deliver(level, &line);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sinks and the bridge.

/// Receives finished lines (already redacted and rate-limited).
pub(crate) type Sink = dyn Fn(Level, &str) + Send + Sync;

/// The application's sink; None = the default (stderr when `KVS_LOG_LEVEL` is set).
static SINK: Mutex<Option<Arc<Sink>>> = Mutex::new(None);
static LIMITER: Mutex<Option<Limiter>> = Mutex::new(None);
static BRIDGE: Bridge = Bridge;
static INSTALL: Once = Once::new();

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The level the environment asks the default sink for: `KVS_LOG_LEVEL` =
/// `off|error|warn|info|debug|trace` (any case) or `0`..`5`; unset or unknown = off.
pub(crate) fn env_level() -> LevelFilter {
    std::env::var("KVS_LOG_LEVEL")
        .ok()
        .and_then(|v| parse_level(&v))
        .unwrap_or(LevelFilter::Off)
}

fn parse_level(value: &str) -> Option<LevelFilter> {
    let v = value.trim();
    if let Ok(n) = v.parse::<i64>() {
        return Some(level_from_number(n));
    }
    v.parse::<LevelFilter>().ok()
}

/// `0` off .. `5` trace; above 5 is trace, below 0 off.
pub(crate) fn level_from_number(n: i64) -> LevelFilter {
    match n {
        i64::MIN..=0 => LevelFilter::Off,
        1 => LevelFilter::Error,
        2 => LevelFilter::Warn,
        3 => LevelFilter::Info,
        4 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Makes the bridge the process's `log` logger, once. Returns false when another logger was
/// installed first (a Rust program with its own logger keeps it, and gets the lines there).
fn install_bridge() -> bool {
    let mut ours = false;
    INSTALL.call_once(|| {
        ours = log::set_logger(&BRIDGE).is_ok();
        if ours {
            log::set_max_level(env_level());
        }
    });
    ours || std::ptr::addr_eq(log::logger(), &BRIDGE)
}

/// The C API's first use: the default sink, at the level `KVS_LOG_LEVEL` asks for (off when
/// unset), unless an application sink or another logger came first.
pub(crate) fn use_default_sink_once() {
    install_bridge();
}

/// Sends lines up to `max_level` to `sink` (None = the default sink, whose level is also
/// capped by `KVS_LOG_LEVEL`). Takes effect for lines logged after it returns, on every
/// thread.
pub(crate) fn set_sink(sink: Option<Arc<Sink>>, max_level: LevelFilter) {
    if !install_bridge() {
        return;
    }
    let level = match &sink {
        Some(_) => max_level,
        None => max_level.min(env_level()),
    };
    let previous = std::mem::replace(&mut *lock(&SINK), sink);
    log::set_max_level(level);
    // Calls of the previous sink clone it under the lock, so once only `previous` is left,
    // none is running and none can start. A sink replacing itself cannot wait for itself.
    if let Some(previous) = previous {
        if !IN_SINK.with(Cell::get) {
            while Arc::strong_count(&previous) > 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// The `log` logger of the C API.
struct Bridge;

impl Log for Bridge {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // Only our own lines: dependencies' lines may carry URLs with signatures.
        metadata.target().starts_with("kvs_viewer") && metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) || IN_SINK.with(Cell::get) {
            return;
        }
        let line = hide_hex_runs(&record.args().to_string());
        let site = (record.module_path(), record.line());
        let Some(line) =
            lock(&LIMITER)
                .get_or_insert_with(Limiter::default)
                .admit(site, line, Instant::now())
        else {
            return;
        };
        if HELD.with(Cell::get) > 0 {
            DEFERRED.with(|d| {
                let mut d = d.borrow_mut();
                if d.len() < MAX_DEFERRED {
                    d.push((record.level(), line));
                }
            });
            return;
        }
        deliver(record.level(), &line);
    }

    fn flush(&self) {}
}

/// Calls the sink with no library lock held (the sink is cloned out of its mutex first).
fn deliver(level: Level, line: &str) {
    let sink = lock(&SINK).clone();
    IN_SINK.with(|s| s.set(true));
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            IN_SINK.with(|s| s.set(false));
        }
    }
    let _reset = Reset;
    match sink {
        Some(sink) => sink(level, line),
        None => write_stderr(level, line),
    }
}

/// The default sink: `2026-12-02T00:41:40.123Z kvs-viewer INFO viewer-1 connect: …`, one
/// write per line so threads do not interleave.
fn write_stderr(level: Level, line: &str) {
    let stamp = crate::datetime::format_rfc3339(time::OffsetDateTime::now_utc(), true);
    let text = format!("{stamp} kvs-viewer {level:<5} {line}\n");
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

// ---------------------------------------------------------------------------------------
// Rate limiting.

/// Lines of one shape that always pass before limiting starts.
const BURST: u64 = 20;
/// A shape not seen for this long starts over.
const QUIET: Duration = Duration::from_secs(60);
/// A limited shape still passes once per this long.
const AT_LEAST_EVERY: Duration = Duration::from_secs(3600);
/// Shapes remembered; beyond, the ones gone quiet are forgotten.
const MAX_SHAPES: usize = 256;

/// A plain vector, searched linearly (at most `MAX_SHAPES`): a static hash table's interior
/// pointer reads as a "possibly lost" block to leak checkers at exit.
#[derive(Default)]
struct Limiter {
    shapes: Vec<Shape>,
}

struct Shape {
    key: u64,
    seen: u64,
    next_pass: u64,
    suppressed: u64,
    last_seen: Instant,
    last_pass: Instant,
}

impl Limiter {
    /// The line to emit (with a note of what was suppressed), or None to drop it.
    ///
    /// Lines of one call site whose text differs only in numbers and ids (a reconnect loop's
    /// attempt counts, delays, request ids) are one shape. The first `BURST` pass; after
    /// that only the 40th, 80th, 160th, … (and at least one an hour), each saying how many
    /// were dropped. A shape quiet for `QUIET` starts over.
    fn admit(
        &mut self,
        site: (Option<&str>, Option<u32>),
        line: String,
        now: Instant,
    ) -> Option<String> {
        let mut h = DefaultHasher::new();
        site.hash(&mut h);
        shape_of(&line).hash(&mut h);
        let key = h.finish();
        let index = match self.shapes.iter().position(|s| s.key == key) {
            Some(i) => i,
            None => {
                if self.shapes.len() >= MAX_SHAPES {
                    self.shapes
                        .retain(|s| now.duration_since(s.last_seen) < QUIET);
                    if self.shapes.len() >= MAX_SHAPES {
                        self.shapes.clear();
                    }
                }
                self.shapes.push(Shape {
                    key,
                    seen: 0,
                    next_pass: BURST * 2,
                    suppressed: 0,
                    last_seen: now,
                    last_pass: now,
                });
                self.shapes.len() - 1
            }
        };
        let shape = &mut self.shapes[index];
        if now.duration_since(shape.last_seen) >= QUIET {
            shape.seen = 0;
            shape.next_pass = BURST * 2;
        }
        shape.seen += 1;
        shape.last_seen = now;
        let pass = shape.seen <= BURST
            || shape.seen >= shape.next_pass
            || now.duration_since(shape.last_pass) >= AT_LEAST_EVERY;
        if !pass {
            shape.suppressed += 1;
            return None;
        }
        if shape.seen > BURST {
            shape.next_pass = shape.seen.saturating_mul(2);
        }
        shape.last_pass = now;
        match std::mem::take(&mut shape.suppressed) {
            0 => Some(line),
            n => Some(format!("{line} ({n} similar lines suppressed)")),
        }
    }
}

/// The line with every word that holds a digit replaced by `#`.
fn shape_of(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for word in line.split_inclusive(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        let (body, sep) = match word.char_indices().last() {
            Some((i, c)) if !(c.is_ascii_alphanumeric() || c == '-') => word.split_at(i),
            _ => (word, ""),
        };
        if body.bytes().any(|b| b.is_ascii_digit()) {
            out.push('#');
        } else {
            out.push_str(body);
        }
        out.push_str(sep);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Redaction.

/// What replaces a secret in a line.
pub(crate) const REDACTED: &str = "<redacted>";

/// Replaces every run of 64 or more hex digits (SigV4 signatures, SHA-256 hashes: they look
/// alike, so none is logged) by `<redacted>`.
pub(crate) fn hide_hex_runs(line: &str) -> String {
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if run >= 64 {
            out.push_str(REDACTED);
            i += run;
        } else if run > 0 {
            out.push_str(&line[i..i + run]);
            i += run;
        } else {
            let ch = line[i..].chars().next().unwrap_or('\u{fffd}');
            out.push(ch);
            i += ch.len_utf8().max(1);
        }
    }
    out
}

/// A header as it may appear in a TRACE line: the value of `authorization` keeps the
/// algorithm, the credential scope (date, region, service: what a wrong region shows) and the
/// signed headers, never the access key id or the signature; tokens and unknown
/// `x-amz-*` credentials are replaced whole.
pub(crate) fn header_for_log(name: &str, value: &str) -> String {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "authorization" => redact_authorization(value),
        "x-amz-security-token" | "cookie" | "set-cookie" | "proxy-authorization" => {
            REDACTED.to_owned()
        }
        _ if lower.contains("token") || lower.contains("secret") || lower.contains("password") => {
            REDACTED.to_owned()
        }
        _ => hide_hex_runs(value),
    }
}

/// `AWS4-HMAC-SHA256 Credential=<redacted>/20240101/us-west-2/kinesisvideo/aws4_request,
/// SignedHeaders=…, Signature=<redacted>`.
fn redact_authorization(value: &str) -> String {
    let Some((scheme, params)) = value.split_once(' ') else {
        return REDACTED.to_owned();
    };
    let parts: Vec<String> = params
        .split(',')
        .map(|p| {
            let p = p.trim();
            match p.split_once('=') {
                Some(("Credential", c)) => format!("Credential={}", redact_credential(c, '/')),
                Some(("SignedHeaders", h)) => format!("SignedHeaders={h}"),
                Some((k, _)) => format!("{k}={REDACTED}"),
                None => REDACTED.to_owned(),
            }
        })
        .collect();
    format!("{scheme} {}", parts.join(", "))
}

/// `AKIA…/20240101/us-west-2/kinesisvideo/aws4_request` without the key id.
fn redact_credential(credential: &str, separator: char) -> String {
    match credential.split_once(separator) {
        Some((_, scope)) => format!("{REDACTED}{separator}{scope}"),
        None => REDACTED.to_owned(),
    }
}

/// A presigned query as it may appear in a TRACE line: the signature, the session token and
/// the access key id are replaced; the date, scope, expiry, channel and client id stay.
pub(crate) fn query_for_log(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case("X-Amz-Credential") => {
                let v = v.replace("%2F", "/").replace("%2f", "/");
                format!("{k}={}", redact_credential(&v, '/'))
            }
            Some((k, _))
                if k.eq_ignore_ascii_case("X-Amz-Signature")
                    || k.eq_ignore_ascii_case("X-Amz-Security-Token") =>
            {
                format!("{k}={REDACTED}")
            }
            _ => hide_hex_runs(pair),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Headers as a TRACE line shows them: `name: value; …`, each through [`header_for_log`].
pub(crate) fn headers_for_log<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    headers
        .into_iter()
        .map(|(k, v)| format!("{k}: {}", header_for_log(k, v)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The access key id as lines show it: its last four characters.
pub(crate) fn key_id_for_log(access_key_id: &str) -> String {
    let tail: String = access_key_id
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

// ---------------------------------------------------------------------------------------
// Counters.

/// Messages counted by type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// Types this version does not know.
    pub unknown: u64,
    /// `SDP_OFFER`.
    pub sdp_offer: u64,
    /// `SDP_ANSWER`.
    pub sdp_answer: u64,
    /// `ICE_CANDIDATE`.
    pub ice_candidate: u64,
    /// `STATUS_RESPONSE`.
    pub status_response: u64,
    /// `GO_AWAY`.
    pub go_away: u64,
    /// `RECONNECT_ICE_SERVER`.
    pub reconnect_ice_server: u64,
}

impl MessageCounts {
    /// The count of one type. `RECONNECTED` is made by the library, never counted.
    pub fn get(&self, t: MessageType) -> u64 {
        match t {
            MessageType::Reconnected => 0,
            MessageType::Unknown => self.unknown,
            MessageType::SdpOffer => self.sdp_offer,
            MessageType::SdpAnswer => self.sdp_answer,
            MessageType::IceCandidate => self.ice_candidate,
            MessageType::StatusResponse => self.status_response,
            MessageType::GoAway => self.go_away,
            MessageType::ReconnectIceServer => self.reconnect_ice_server,
        }
    }

    /// All types together.
    pub fn total(&self) -> u64 {
        self.unknown
            + self.sdp_offer
            + self.sdp_answer
            + self.ice_candidate
            + self.status_response
            + self.go_away
            + self.reconnect_ice_server
    }

    pub(crate) fn add(&mut self, t: MessageType) {
        let slot = match t {
            MessageType::Reconnected => return,
            MessageType::Unknown => &mut self.unknown,
            MessageType::SdpOffer => &mut self.sdp_offer,
            MessageType::SdpAnswer => &mut self.sdp_answer,
            MessageType::IceCandidate => &mut self.ice_candidate,
            MessageType::StatusResponse => &mut self.status_response,
            MessageType::GoAway => &mut self.go_away,
            MessageType::ReconnectIceServer => &mut self.reconnect_ice_server,
        };
        *slot += 1;
    }
}

/// Why a connection ended (and so why the next one was opened).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectCause {
    /// The application asked (`reconnect`, `close`).
    App,
    /// The connection dropped: reset, end of stream, a failed write.
    Network,
    /// The server sent a close frame.
    ServerClose,
    /// No answer to a keepalive ping in time.
    DeadPeer,
    /// The service announced maintenance (`GO_AWAY`).
    GoAway,
    /// The presigned URL was about to expire.
    PresignExpiry,
    /// The server broke the protocol (an oversized frame, a bad WebSocket frame).
    Protocol,
    /// The credentials that signed the connection were due for a refresh: replaced,
    /// make-before-break.
    CredentialsRefresh,
}

impl DisconnectCause {
    /// Every cause, in the order of their stable numbers (1, 2, …).
    pub const ALL: [DisconnectCause; 8] = [
        DisconnectCause::App,
        DisconnectCause::Network,
        DisconnectCause::ServerClose,
        DisconnectCause::DeadPeer,
        DisconnectCause::GoAway,
        DisconnectCause::PresignExpiry,
        DisconnectCause::Protocol,
        DisconnectCause::CredentialsRefresh,
    ];

    /// What lines call it.
    pub fn name(self) -> &'static str {
        match self {
            DisconnectCause::App => "application",
            DisconnectCause::Network => "network drop",
            DisconnectCause::ServerClose => "server close",
            DisconnectCause::DeadPeer => "dead peer",
            DisconnectCause::GoAway => "GO_AWAY",
            DisconnectCause::PresignExpiry => "presigned URL expiry",
            DisconnectCause::Protocol => "protocol error",
            DisconnectCause::CredentialsRefresh => "credentials refresh",
        }
    }
}

/// How the last connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// Why.
    pub cause: DisconnectCause,
    /// The close code the server sent, if it sent one.
    pub close_code: Option<u16>,
    /// What `recv` reported for it.
    pub kind: crate::ErrorKind,
}

/// Reconnects counted by the cause of the disconnect before them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CauseCounts {
    counts: [u64; DisconnectCause::ALL.len()],
}

impl CauseCounts {
    /// The count of one cause.
    pub fn get(&self, cause: DisconnectCause) -> u64 {
        self.counts[Self::index(cause)]
    }

    pub(crate) fn add(&mut self, cause: DisconnectCause) {
        self.counts[Self::index(cause)] += 1;
    }

    fn index(cause: DisconnectCause) -> usize {
        DisconnectCause::ALL
            .iter()
            .position(|c| *c == cause)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_hex_runs_are_hidden() {
        let sig = "2173139cbdf969c8afa38948a11fa44c9cc355a9089dd77e3f5e9005b5d6e12d";
        assert_eq!(
            hide_hex_runs(&format!("Signature={sig}, next")),
            "Signature=<redacted>, next"
        );
        assert_eq!(hide_hex_runs(&format!("{sig}{sig}")), "<redacted>");
        let short = "deadbeef 1234 café";
        assert_eq!(hide_hex_runs(short), short);
        assert_eq!(hide_hex_runs(&sig[..63]), &sig[..63]);
    }

    #[test]
    fn headers_keep_what_helps_and_lose_what_signs() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-west-2/kinesisvideo/aws4_request, \
                    SignedHeaders=content-type;host;x-amz-date, \
                    Signature=2173139cbdf969c8afa38948a11fa44c9cc355a9089dd77e3f5e9005b5d6e12d";
        let shown = header_for_log("Authorization", auth);
        assert_eq!(
            shown,
            "AWS4-HMAC-SHA256 Credential=<redacted>/20240101/us-west-2/kinesisvideo/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, Signature=<redacted>"
        );
        assert_eq!(
            header_for_log("x-amz-security-token", "IQoJb3JpZ2lu"),
            REDACTED
        );
        assert_eq!(
            header_for_log("X-Amz-Date", "20240101T120000Z"),
            "20240101T120000Z"
        );
        assert_eq!(header_for_log("x-turn-password", "p"), REDACTED);
    }

    #[test]
    fn presigned_queries_lose_key_signature_and_token() {
        let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-ChannelARN=arn%3Aaws&X-Amz-ClientId=v-1\
                 &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240101%2Fus-west-2%2Fkinesisvideo%2Faws4_request\
                 &X-Amz-Date=20240101T120000Z&X-Amz-Expires=299&X-Amz-Security-Token=IQoJ%2Btoken\
                 &X-Amz-SignedHeaders=host\
                 &X-Amz-Signature=2173139cbdf969c8afa38948a11fa44c9cc355a9089dd77e3f5e9005b5d6e12d";
        let shown = query_for_log(q);
        assert!(!shown.contains("AKIA"), "{shown}");
        assert!(!shown.contains("IQoJ"), "{shown}");
        assert!(!shown.contains("2173139c"), "{shown}");
        assert!(
            shown.contains("X-Amz-Credential=<redacted>/20240101/us-west-2/kinesisvideo"),
            "{shown}"
        );
        assert!(shown.contains("X-Amz-ClientId=v-1&"), "{shown}");
        assert_eq!(key_id_for_log("AKIAIOSFODNN7EXAMPLE"), "…MPLE");
    }

    #[test]
    fn shapes_ignore_numbers_and_ids() {
        assert_eq!(
            shape_of("v-1 reconnect: attempt 7 failed (request 3f2a-9b), next in 3.2 s"),
            shape_of("v-1 reconnect: attempt 12 failed (request 77aa-01), next in 10.0 s")
        );
        assert_ne!(
            shape_of("v-1 send: SDP_OFFER frame"),
            shape_of("v-1 send: ICE_CANDIDATE frame")
        );
    }

    #[test]
    fn a_loop_is_limited_and_says_how_much_it_dropped() {
        let mut limiter = Limiter::default();
        let t0 = Instant::now();
        let site = (Some("kvs_viewer::session"), Some(10));
        let mut passed = Vec::new();
        for i in 0..1000u64 {
            let now = t0 + Duration::from_millis(i * 100);
            if let Some(line) = limiter.admit(site, format!("attempt {i} failed"), now) {
                passed.push(line);
            }
        }
        // 20, then the 40th, 80th, 160th, 320th and 640th.
        assert_eq!(passed.len(), 25, "{passed:?}");
        assert_eq!(passed[19], "attempt 19 failed");
        assert_eq!(
            passed[20],
            "attempt 39 failed (19 similar lines suppressed)"
        );
        assert_eq!(
            passed[24],
            "attempt 639 failed (319 similar lines suppressed)"
        );
        // Another shape on the same site is not affected.
        assert!(limiter.admit(site, "connected".into(), t0).is_some());
        // After a quiet minute the shape starts over, and says what was dropped before.
        let later = t0 + Duration::from_secs(200);
        let line = limiter
            .admit(site, "attempt 1 failed".into(), later)
            .unwrap();
        assert_eq!(line, "attempt 1 failed (360 similar lines suppressed)");
        // Never quiet (a line every 30 s for 5 hours): still one an hour at least.
        let mut limiter = Limiter::default();
        let mut last_pass = t0;
        for i in 1..=600u64 {
            let now = t0 + Duration::from_secs(30 * i);
            if limiter.admit(site, format!("attempt {i}"), now).is_some() {
                assert!(
                    now - last_pass <= AT_LEAST_EVERY,
                    "a gap of {:?}",
                    now - last_pass
                );
                last_pass = now;
            }
        }
        assert!(t0 + Duration::from_secs(30 * 600) - last_pass <= AT_LEAST_EVERY);
    }

    #[test]
    fn levels_from_the_environment_form() {
        assert_eq!(parse_level("debug"), Some(LevelFilter::Debug));
        assert_eq!(parse_level(" TRACE "), Some(LevelFilter::Trace));
        assert_eq!(parse_level("3"), Some(LevelFilter::Info));
        assert_eq!(parse_level("off"), Some(LevelFilter::Off));
        assert_eq!(parse_level("loud"), None);
        assert_eq!(level_from_number(-4), LevelFilter::Off);
        assert_eq!(level_from_number(9), LevelFilter::Trace);
    }

    #[test]
    fn counts_by_type_and_cause() {
        let mut m = MessageCounts::default();
        m.add(MessageType::IceCandidate);
        m.add(MessageType::IceCandidate);
        m.add(MessageType::SdpAnswer);
        assert_eq!(m.get(MessageType::IceCandidate), 2);
        assert_eq!(m.total(), 3);
        let mut c = CauseCounts::default();
        c.add(DisconnectCause::GoAway);
        assert_eq!(c.get(DisconnectCause::GoAway), 1);
        assert_eq!(c.get(DisconnectCause::Network), 0);
    }
}
