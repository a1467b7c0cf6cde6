//! Connection counters to C: `kvs_viewer_get_stats` into a caller-owned, size-versioned
//! `KvsViewerStats`.

use crate::diag::{Disconnect, DisconnectCause, MessageCounts};
use crate::envelope::MessageType;
use crate::session::Stats;

use super::status::code_of;
use super::types::message_type_to_c;
use super::versioned::zero_init;
use super::versioned::{frozen_size, read_prefix, struct_size_of, usable_size, write_prefix};
use super::{KvsStatus, KvsViewer, fail, null_pointer, with_viewer};

/// Slots of the per-message-type arrays of `KvsViewerStats`, indexed by `KvsMessageType`
/// (`KVS_MSG_*`); room for types added later without a layout change.
pub const KVS_STATS_MESSAGE_TYPES: usize = 16;
/// Slots of `KvsViewerStats::reconnects_by_cause`, indexed by `KvsDisconnectCause`; room for
/// causes added later.
pub const KVS_STATS_CAUSES: usize = 16;

/// Why a connection ended (`KvsViewerStats::last_disconnect_cause`, and the index of
/// `reconnects_by_cause`). Append-only; carried as `int32_t`.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)] // the C names, so C and Rust grep alike
pub enum KvsDisconnectCause {
    /// No connection has ended yet.
    KVS_DISCONNECT_NONE = 0,
    /// The application asked: `kvs_viewer_reconnect`, `kvs_viewer_close`.
    KVS_DISCONNECT_APP = 1,
    /// The connection dropped: reset, end of stream, a failed write.
    KVS_DISCONNECT_NETWORK = 2,
    /// The server sent a WebSocket close frame (`last_close_code`).
    KVS_DISCONNECT_SERVER_CLOSE = 3,
    /// A keepalive ping got no answer in time.
    KVS_DISCONNECT_DEAD_PEER = 4,
    /// The service announced maintenance (`GO_AWAY`).
    KVS_DISCONNECT_GO_AWAY = 5,
    /// The presigned URL was about to expire.
    KVS_DISCONNECT_PRESIGN_EXPIRY = 6,
    /// The server broke the protocol (an oversized or malformed frame).
    KVS_DISCONNECT_PROTOCOL = 7,
    /// The credentials that signed the connection were due for a refresh: the library opened
    /// a new connection first, then closed this one.
    KVS_DISCONNECT_CREDENTIALS_REFRESH = 8,
}

use KvsDisconnectCause::*;

fn cause_to_c(cause: DisconnectCause) -> KvsDisconnectCause {
    match cause {
        DisconnectCause::App => KVS_DISCONNECT_APP,
        DisconnectCause::Network => KVS_DISCONNECT_NETWORK,
        DisconnectCause::ServerClose => KVS_DISCONNECT_SERVER_CLOSE,
        DisconnectCause::DeadPeer => KVS_DISCONNECT_DEAD_PEER,
        DisconnectCause::GoAway => KVS_DISCONNECT_GO_AWAY,
        DisconnectCause::PresignExpiry => KVS_DISCONNECT_PRESIGN_EXPIRY,
        DisconnectCause::Protocol => KVS_DISCONNECT_PROTOCOL,
        DisconnectCause::CredentialsRefresh => KVS_DISCONNECT_CREDENTIALS_REFRESH,
    }
}

/// What a viewer's connections went through, filled by `kvs_viewer_get_stats`: counters over
/// the handle's life (every connection so far) plus the state of the current one. Initialise
/// with `kvs_viewer_stats_init`. Size-versioned: the library writes only the fields that fit
/// in `struct_size`; fields are only ever appended.
#[repr(C)]
pub struct KvsViewerStats {
    /// `sizeof(KvsViewerStats)` of the caller's header, set by `kvs_viewer_stats_init`.
    pub struct_size: u32,
    /// Threads blocked in `kvs_viewer_recv` right now.
    pub waiting_receivers: u32,
    /// Messages handed to the socket, all types.
    pub messages_sent: u64,
    /// Messages received and queued for `kvs_viewer_recv`, all types.
    pub messages_received: u64,
    /// Messages sent, by `KvsMessageType` (`[KVS_MSG_SDP_OFFER]`, `[KVS_MSG_ICE_CANDIDATE]`).
    pub messages_sent_by_type: [u64; KVS_STATS_MESSAGE_TYPES],
    /// Messages received, by `KvsMessageType` (`[KVS_MSG_SDP_ANSWER]`, `[KVS_MSG_GO_AWAY]`,
    /// …; `[KVS_MSG_UNKNOWN]` for types this version does not know).
    pub messages_received_by_type: [u64; KVS_STATS_MESSAGE_TYPES],
    /// Frames that were not protocol messages (not JSON, binary, bad base64, …), skipped.
    pub frames_skipped: u64,
    /// Bytes of WebSocket messages sent (frame payloads; TLS and framing not counted).
    pub bytes_sent: u64,
    /// Bytes of WebSocket messages received, skipped frames included.
    pub bytes_received: u64,
    /// Keepalive pings sent.
    pub pings_sent: u64,
    /// Round trip of the last answered keepalive ping, in microseconds; 0 = none yet.
    pub last_ping_rtt_us: u64,
    /// Connections replaced by a new one (automatic or `kvs_viewer_reconnect`).
    pub reconnects: u64,
    /// `reconnects` by the cause of the disconnect before them, indexed by
    /// `KvsDisconnectCause`.
    pub reconnects_by_cause: [u64; KVS_STATS_CAUSES],
    /// Server clock minus device clock, in seconds, learnt from the service and used for
    /// every signature (0 until a correction).
    pub clock_offset_s: i64,
    /// When the current connection opened, in milliseconds since the Unix epoch by the
    /// device clock; 0 while disconnected.
    pub connected_since_unix_ms: u64,
    /// How long the current connection has been open, in milliseconds (monotonic); 0 while
    /// disconnected.
    pub connected_for_ms: u64,
    /// Why the last connection ended (`KvsDisconnectCause`); `KVS_DISCONNECT_NONE` if none
    /// has.
    pub last_disconnect_cause: i32,
    /// What `kvs_viewer_recv` reported for it (`KvsStatus`, e.g. `KVS_ERR_CLOSED`); 0 if none.
    pub last_disconnect_status: i32,
    /// The WebSocket close code the server sent then (1000, 1001, 4000, …); 0 = none.
    pub last_close_code: u32,
    /// 1 while connected, 0 otherwise.
    pub connected: u32,
    /// TURN server sets fetched again after the first (TTL refreshes and
    /// `kvs_viewer_refresh_ice_servers`).
    pub ice_refreshes: u64,
}

/// `sizeof(KvsViewerStats)` of the first header that had it (0.2), frozen; the smallest
/// `struct_size` accepted.
pub(crate) const STATS_SIZE_0_2: usize = frozen_size(
    std::mem::offset_of!(KvsViewerStats, ice_refreshes) + size_of::<u64>(),
    align_of::<u64>(),
);

fn stats_defaults() -> KvsViewerStats {
    KvsViewerStats {
        struct_size: 0,
        waiting_receivers: 0,
        messages_sent: 0,
        messages_received: 0,
        messages_sent_by_type: [0; KVS_STATS_MESSAGE_TYPES],
        messages_received_by_type: [0; KVS_STATS_MESSAGE_TYPES],
        frames_skipped: 0,
        bytes_sent: 0,
        bytes_received: 0,
        pings_sent: 0,
        last_ping_rtt_us: 0,
        reconnects: 0,
        reconnects_by_cause: [0; KVS_STATS_CAUSES],
        clock_offset_s: 0,
        connected_since_unix_ms: 0,
        connected_for_ms: 0,
        last_disconnect_cause: 0,
        last_disconnect_status: 0,
        last_close_code: 0,
        connected: 0,
        ice_refreshes: 0,
    }
}

const MESSAGE_TYPES: [MessageType; 7] = [
    MessageType::Unknown,
    MessageType::SdpOffer,
    MessageType::SdpAnswer,
    MessageType::IceCandidate,
    MessageType::StatusResponse,
    MessageType::GoAway,
    MessageType::ReconnectIceServer,
];

fn by_type(counts: &MessageCounts) -> [u64; KVS_STATS_MESSAGE_TYPES] {
    let mut out = [0; KVS_STATS_MESSAGE_TYPES];
    for t in MESSAGE_TYPES {
        if let Some(slot) = usize::try_from(message_type_to_c(t) as i32)
            .ok()
            .and_then(|i| out.get_mut(i))
        {
            *slot = counts.get(t);
        }
    }
    out
}

fn fill(out: &mut KvsViewerStats, s: &Stats) {
    out.waiting_receivers = s.waiting_receivers;
    out.messages_sent = s.sent.total();
    out.messages_received = s.received.total();
    out.messages_sent_by_type = by_type(&s.sent);
    out.messages_received_by_type = by_type(&s.received);
    out.frames_skipped = s.frames_skipped;
    out.bytes_sent = s.bytes_sent;
    out.bytes_received = s.bytes_received;
    out.pings_sent = s.pings_sent;
    out.last_ping_rtt_us = s.last_ping_rtt.map_or(0, |d| {
        u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
    });
    out.reconnects = s.reconnects;
    let mut by_cause = [0; KVS_STATS_CAUSES];
    for cause in DisconnectCause::ALL {
        if let Some(slot) = by_cause.get_mut(cause_to_c(cause) as usize) {
            *slot = s.reconnects_by_cause.get(cause);
        }
    }
    out.reconnects_by_cause = by_cause;
    out.clock_offset_s = s.clock_offset_s;
    let since_ms = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    };
    out.connected_since_unix_ms = s.connected_since.map_or(0, since_ms);
    out.connected_for_ms = s
        .connected_for
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    out.connected = u32::from(s.connected_for.is_some());
    let (cause, status, code) = match &s.last_disconnect {
        Some(Disconnect {
            cause,
            close_code,
            kind,
        }) => (
            cause_to_c(*cause) as i32,
            code_of(*kind) as i32,
            close_code.map_or(0, u32::from),
        ),
        None => (KVS_DISCONNECT_NONE as i32, 0, 0),
    };
    out.last_disconnect_cause = cause;
    out.last_disconnect_status = status;
    out.last_close_code = code;
    out.ice_refreshes = s.ice_refreshes;
}

/// Zeroes the caller's `size` bytes at `stats` and sets `struct_size = size`. Use the
/// `kvs_viewer_stats_init` macro, which passes `sizeof *(stats)`. Thread-safe.
///
/// Errors: `KVS_ERR_NULL_POINTER`, `KVS_ERR_INVALID_ARGUMENT` (`size` below the first
/// published layout or above 4 GiB; nothing written).
///
/// # Safety
/// `stats` must be NULL or point to `size` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_viewer_stats_init_sized(
    stats: *mut KvsViewerStats,
    size: usize,
) -> KvsStatus {
    if stats.is_null() {
        return null_pointer("stats");
    }
    super::guard(|| {
        if size < STATS_SIZE_0_2 || u32::try_from(size).is_err() {
            return Err(fail(crate::error::Error::invalid(
                "size",
                format!(
                    "{size} is not a kvs_viewer_stats_init struct size (at least \
                     {STATS_SIZE_0_2}); pass sizeof the struct"
                ),
            )));
        }
        // SAFETY: non-NULL; `size` writable bytes per the contract.
        unsafe { zero_init(stats, size) };
        Ok(())
    })
}

/// Copies the viewer's counters into `*out`, which `kvs_viewer_stats_init` prepared: what a
/// firmware team ships to its backend (messages by type, bytes, reconnects by cause, the
/// clock offset, the current connection, the last disconnect, ICE refreshes, the last ping's
/// round trip). Only `min(out->struct_size, sizeof(KvsViewerStats))` bytes are written; the
/// caller's `struct_size` is kept.
///
/// Errors: `KVS_ERR_NULL_POINTER`, `KVS_ERR_INVALID_ARGUMENT` (`out->struct_size` smaller
/// than the first published layout).
///
/// Thread-safety: any thread, while other threads send, receive or reconnect on the same
/// handle, and from inside the log callback; it waits for no network I/O. Never concurrently
/// with `kvs_viewer_close`.
///
/// # Safety
/// `viewer` must come from `kvs_viewer_connect` and not be closed; `out` must point to
/// `out->struct_size` readable and writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_viewer_get_stats(
    viewer: *mut KvsViewer,
    out: *mut KvsViewerStats,
) -> KvsStatus {
    if out.is_null() {
        return null_pointer("out");
    }
    with_viewer(viewer, |v| {
        // SAFETY: non-NULL; the caller guarantees `struct_size` readable bytes.
        let given = unsafe { struct_size_of(out) };
        let n = usable_size::<KvsViewerStats>(
            given,
            STATS_SIZE_0_2,
            "out.struct_size",
            "kvs_viewer_stats_init",
        )
        .map_err(fail)?;
        // SAFETY: `n <= given` readable bytes; KvsViewerStats is plain data.
        let mut local = unsafe { read_prefix(out, n, stats_defaults()) };
        fill(&mut local, &v.stats());
        // SAFETY: `n <= given` writable bytes.
        unsafe { write_prefix(out, n, &local) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_what_the_header_says() {
        // Everything after the first two u32 is 8-byte aligned: no hidden padding on any
        // target, so the size is the same on 32- and 64-bit boards.
        assert_eq!(size_of::<KvsViewerStats>(), STATS_SIZE_0_2);
        assert_eq!(
            STATS_SIZE_0_2,
            8 + 8 * 2 + 8 * 16 * 2 + 8 * 6 + 8 * 16 + 8 * 3 + 16 + 8
        );
    }

    #[test]
    fn only_the_callers_bytes_are_written() {
        // A caller struct from a newer header: 64 more bytes the library does not know.
        let size = size_of::<KvsViewerStats>() + 64;
        let mut buf = vec![0xEEu8; size];
        let p = buf.as_mut_ptr().cast::<KvsViewerStats>();
        // SAFETY: `size` writable bytes.
        assert_eq!(
            unsafe { kvs_viewer_stats_init_sized(p, size) },
            KvsStatus::KVS_OK
        );
        assert!(buf.iter().skip(4).all(|b| *b == 0));
        // SAFETY: NULL viewer: refused before `out` is read.
        assert_eq!(
            unsafe { kvs_viewer_get_stats(std::ptr::null_mut(), p) },
            KvsStatus::KVS_ERR_NULL_POINTER
        );
        // SAFETY: too small a size is refused without writing.
        let mut small = [0xEEu8; 16];
        assert_eq!(
            unsafe { kvs_viewer_stats_init_sized(small.as_mut_ptr().cast(), 16) },
            KvsStatus::KVS_ERR_INVALID_ARGUMENT
        );
        assert_eq!(small, [0xEE; 16]);
    }

    #[test]
    fn counters_land_in_their_slots() {
        let mut s = Stats::default();
        s.sent.add(MessageType::SdpOffer);
        s.received.add(MessageType::SdpAnswer);
        s.received.add(MessageType::IceCandidate);
        s.received.add(MessageType::IceCandidate);
        s.reconnects = 1;
        s.reconnects_by_cause.add(DisconnectCause::Network);
        s.last_disconnect = Some(Disconnect {
            cause: DisconnectCause::ServerClose,
            close_code: Some(4000),
            kind: crate::ErrorKind::Closed,
        });
        let mut out = stats_defaults();
        fill(&mut out, &s);
        assert_eq!(out.messages_sent_by_type[1], 1);
        assert_eq!(out.messages_received_by_type[2], 1);
        assert_eq!(out.messages_received_by_type[3], 2);
        assert_eq!(out.messages_received, 3);
        assert_eq!(out.reconnects_by_cause[KVS_DISCONNECT_NETWORK as usize], 1);
        assert_eq!(
            out.last_disconnect_cause,
            KVS_DISCONNECT_SERVER_CLOSE as i32
        );
        assert_eq!(out.last_close_code, 4000);
        assert_eq!(out.last_disconnect_status, KvsStatus::KVS_ERR_CLOSED as i32);
        assert_eq!(out.connected, 0);
    }
}
