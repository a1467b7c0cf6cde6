//! The C ABI: the only place with `extern "C"`, raw pointers and `#[repr(C)]` types.
//!
//! Every export converts its arguments, runs the safe core inside a panic boundary, maps the
//! error to a stable code and records the detail for `kvs_last_error_message`.

mod credentials;
mod handle;
mod ice;
mod ice_format;
mod log;
mod payload;
mod poll;
mod stats;
mod status;
mod types;
mod versioned;

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::session::Viewer;

pub use credentials::*;
pub use handle::KvsViewer;
pub use ice::*;
pub use log::*;
pub use stats::*;
pub use status::*;
pub use types::*;

use status::KvsStatus::{KVS_ERR_NULL_POINTER, KVS_OK};

// ---------------------------------------------------------------------------------------
// Per-thread detail of the last failure.

struct LastError {
    code: KvsStatus,
    message: String,
    http_status: u16,
    /// The service's exception name, for `kvs_status_is_retryable`.
    error_type: Option<String>,
}

thread_local! {
    static LAST_ERROR: RefCell<LastError> = const {
        RefCell::new(LastError {
            code: KVS_OK,
            message: String::new(),
            http_status: 0,
            error_type: None,
        })
    };
}

fn record(last: LastError) -> KvsStatus {
    let code = last.code;
    LAST_ERROR.with(|l| *l.borrow_mut() = last);
    code
}

/// Records `e` as this thread's last error and returns its code.
pub(crate) fn fail(e: Error) -> KvsStatus {
    let mut message = e.to_string();
    if let Some(t) = &e.error_type {
        if !message.contains(t.as_str()) {
            message = format!("{t}: {message}");
        }
    }
    record(LastError {
        code: code_of(e.kind),
        message,
        http_status: e.http_status.unwrap_or(0),
        error_type: e.error_type,
    })
}

pub(crate) fn null_pointer(argument: &str) -> KvsStatus {
    record(LastError {
        code: KVS_ERR_NULL_POINTER,
        message: format!("{argument}: must not be NULL"),
        http_status: 0,
        error_type: None,
    })
}

fn ok() -> KvsStatus {
    record(LastError {
        code: KVS_OK,
        message: String::new(),
        http_status: 0,
        error_type: None,
    })
}

/// Runs `f` behind the panic boundary: a panic becomes `KVS_ERR_INTERNAL` with its text.
pub(crate) fn guard(f: impl FnOnce() -> Result<(), KvsStatus>) -> KvsStatus {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => ok(),
        Ok(Err(code)) => code,
        Err(panic) => fail(Error::internal(format!(
            "internal error (please report): {}",
            panic_text(&*panic)
        ))),
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}

/// Copies the detail of the last failing call on this thread into `buf` (NUL-terminated,
/// truncated to `cap - 1` bytes) and returns the full length without the NUL, like
/// `snprintf`. `buf` may be NULL when `cap` is 0, to ask for the length.
///
/// The detail names the field for invalid arguments and holds the HTTP status, the service's
/// exception name and message, the request id, the TLS or OS reason, or the close code.
/// A call that succeeds clears it. Never contains secrets. Thread-safe (per thread).
///
/// # Safety
/// `buf` must be NULL or point to `cap` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_last_error_message(buf: *mut c_char, cap: usize) -> usize {
    let r = catch_unwind(|| {
        LAST_ERROR.with(|l| {
            let l = l.borrow();
            if !buf.is_null() && cap > 0 {
                // SAFETY: the caller guarantees `buf` points to `cap` writable bytes.
                let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), cap) };
                types::copy_c_string(&l.message, out);
            }
            l.message.len()
        })
    });
    r.unwrap_or(0)
}

/// HTTP status of the last failing call on this thread (e.g. 403), or 0 when the failure
/// involved no HTTP response. Thread-safe (per thread).
#[unsafe(no_mangle)]
pub extern "C" fn kvs_last_error_http_status() -> i32 {
    LAST_ERROR.with(|l| i32::from(l.borrow().http_status))
}

/// Whether a call that failed with `code` is worth retrying after a back-off (the official
/// SDKs wait 100 ms·2ⁿ, capped at 10 s, with full jitter): 1 = retry, 0 = retrying the same
/// call cannot help (fix the input, the credentials or the channel first).
///
/// 1 for `KVS_ERR_TIMEOUT`, `KVS_ERR_NETWORK`, `KVS_ERR_CLOSED` (reconnect) and
/// `KVS_ERR_CLIENT_LIMIT_EXCEEDED` (throttling). For `KVS_ERR_SERVICE` and
/// `KVS_ERR_HTTP_STATUS` the answer depends on the failure, so it reads this thread's last
/// error detail (call it right after the failing call, on the same thread, like
/// `kvs_last_error_message`): 1 when that failure had this code and HTTP status 429 or
/// 500..599, or a throttling exception (`ThrottlingException`, `TooManyRequestsException`,
/// `RequestLimitExceeded`); otherwise 0. 0 for `KVS_OK`, every other code and unknown
/// values. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn kvs_status_is_retryable(code: i32) -> c_int {
    let retry = LAST_ERROR.with(|l| {
        let l = l.borrow();
        status::is_retryable(code, Some((l.code, l.http_status, l.error_type.as_deref())))
    });
    retry.into()
}

// ---------------------------------------------------------------------------------------
// Versions.

/// Library version major number; equal to `KVS_VIEWER_VERSION_MAJOR` of the header it was
/// built with.
pub const KVS_VIEWER_VERSION_MAJOR: u32 = 0;
/// Library version minor number.
pub const KVS_VIEWER_VERSION_MINOR: u32 = 1;
/// Library version patch number.
pub const KVS_VIEWER_VERSION_PATCH: u32 = 0;
/// Version of the binary interface (struct layouts, function signatures). Bumped on any
/// incompatible change; appending fields to size-versioned structs does not bump it.
pub const KVS_VIEWER_ABI_VERSION: u32 = 1;

/// The library version as `"MAJOR.MINOR.PATCH"`. Static; thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn kvs_viewer_version() -> *const c_char {
    const V: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"unknown",
        };
    V.as_ptr()
}

/// The ABI version the library was built with; compare with `KVS_VIEWER_ABI_VERSION`.
#[unsafe(no_mangle)]
pub extern "C" fn kvs_viewer_abi_version() -> u32 {
    KVS_VIEWER_ABI_VERSION
}

// ---------------------------------------------------------------------------------------
// The viewer.

/// Runs `f` on a live handle behind the panic boundary (a panic inside a call poisons the
/// handle: later calls answer `KVS_ERR_CLOSED`).
pub(crate) fn with_handle(
    viewer: *const KvsViewer,
    f: impl FnOnce(&KvsViewer) -> Result<(), KvsStatus>,
) -> KvsStatus {
    if viewer.is_null() {
        return null_pointer("viewer");
    }
    // SAFETY: non-NULL; the caller guarantees it came from `kvs_viewer_connect` and that
    // `kvs_viewer_close` has not returned (calls overlapping a close are counted by the
    // handle, which frees only after they left).
    let handle = unsafe { &*viewer };
    // No access to `handle` after `f`: its pass is gone, so a close may have freed it.
    guard(|| f(handle))
}

/// Sends as `kvs_viewer_send` does: waits (up to the send timeout) for a reconnect in
/// progress and goes out on the new connection.
pub(crate) fn send_frame(
    h: &KvsViewer,
    message_type: crate::MessageType,
    bytes: &[u8],
    correlation_id: Option<&str>,
) -> Result<(), KvsStatus> {
    let deadline = Instant::now() + h.send_timeout;
    h.call_across_reconnects(Some(deadline), |v, _| {
        v.send(message_type, bytes, correlation_id)
    })
    .map_err(fail)
}

/// Runs `f`, which needs no WebSocket (ICE servers, stats, the fd), on the core viewer of a
/// live handle at once, also while a reconnect runs (sends and recv go through
/// `KvsViewer::call_across_reconnects` instead).
pub(crate) fn with_viewer(
    viewer: *const KvsViewer,
    f: impl FnOnce(&Viewer) -> Result<(), KvsStatus>,
) -> KvsStatus {
    with_handle(viewer, |h| h.call(f))
}

/// Validates `config`, presigns the `ConnectAsViewer` URL and opens TLS + WebSocket, all
/// within `config->connect_timeout_ms`. On success writes the new handle to `*out_viewer`
/// and returns `KVS_OK`; on failure `*out_viewer` is untouched and no socket stays open.
///
/// Without `wss_endpoint` it first discovers the channel over HTTPS: DescribeSignalingChannel
/// (only without `channel_arn`; a channel being deleted is `KVS_ERR_RESOURCE_NOT_FOUND`),
/// GetSignalingChannelEndpoint and GetIceServerConfig, each bounded by `connect_timeout_ms`.
/// A failing step is named at the start of the detail (`describe:`, `get_endpoint:`,
/// `get_ice_config:`, `connect:`); an unusable answer is `KVS_ERR_PROTOCOL`. The handle keeps
/// the ARN and endpoints, so ICE refreshes cost one call.
///
/// Errors: `KVS_ERR_NULL_POINTER` (config or out_viewer), `KVS_ERR_INVALID_ARGUMENT` (a
/// field is missing or malformed — checked before any network I/O — or a 400
/// InvalidArgumentException), `KVS_ERR_ACCESS_DENIED`, `KVS_ERR_RESOURCE_NOT_FOUND`,
/// `KVS_ERR_CLIENT_LIMIT_EXCEEDED`, `KVS_ERR_SERVICE`, `KVS_ERR_HTTP_STATUS`,
/// `KVS_ERR_TIMEOUT`, `KVS_ERR_NETWORK`, `KVS_ERR_TLS`, `KVS_ERR_PROTOCOL`.
///
/// A 403 whose `Date` header shows the device clock is off by a minute or more is retried
/// once with the server's time.
///
/// Thread-safety: any thread; distinct handles are fully independent.
///
/// # Safety
/// `config` must point to a `KvsViewerConfig` whose first `struct_size` bytes are
/// initialised and whose strings are NUL-terminated; `out_viewer` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_viewer_connect(
    config: *const KvsViewerConfig,
    out_viewer: *mut *mut KvsViewer,
) -> KvsStatus {
    if config.is_null() {
        return null_pointer("config");
    }
    if out_viewer.is_null() {
        return null_pointer("out_viewer");
    }
    crate::diag::use_default_sink_once();
    guard(|| {
        // SAFETY: non-NULL, and the caller guarantees `struct_size` readable bytes.
        let rust_config = unsafe { types::read_config(config) }.map_err(fail)?;
        let viewer = Viewer::connect(&rust_config).map_err(fail)?;
        let handle = Box::new(KvsViewer::new(viewer, rust_config.send_timeout));
        // SAFETY: checked non-NULL above; the caller guarantees it is writable.
        unsafe { out_viewer.write(Box::into_raw(handle)) };
        Ok(())
    })
}

/// Sends an `SDP_OFFER` or `ICE_CANDIDATE` to the master.
///
/// `payload` is the JSON the WebRTC stack produced (`{"type":"offer","sdp":"..."}` or
/// `{"candidate":"...","sdpMid":"0","sdpMLineIndex":0}`), `payload_len` bytes long, or
/// NUL-terminated when `payload_len` is 0. The library checks it is JSON, base64-encodes it
/// and builds the envelope; payloads over the service's 10,000 encoded bytes are refused.
/// `correlation_id` (NULL = none, else `[a-zA-Z0-9_.-]{1,256}`) asks the service to report a
/// failed delivery as a `STATUS_RESPONSE` message.
///
/// Returns once the frame is handed to the socket (bounded by 5 s).
/// Errors: `KVS_ERR_NULL_POINTER`, `KVS_ERR_INVALID_ARGUMENT` (type, payload or id,
/// named in the detail), `KVS_ERR_CLOSED`, `KVS_ERR_TIMEOUT`.
///
/// Thread-safety: may run while another thread is blocked in `kvs_viewer_recv` on the same
/// handle (the frame goes out at once); concurrent sends on one handle are serialised
/// internally and keep their call order. During a `kvs_viewer_reconnect` on another thread
/// it waits (up to 5 s) and goes out on the new connection; during `kvs_viewer_shutdown` or
/// `kvs_viewer_close` it returns `KVS_ERR_CLOSED` promptly.
///
/// # Safety
/// `viewer` must come from `kvs_viewer_connect` and not be closed; `payload` must point to
/// `payload_len` readable bytes (or a NUL-terminated string when 0); `correlation_id` must
/// be NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_viewer_send(
    viewer: *mut KvsViewer,
    message_type: i32,
    payload: *const c_char,
    payload_len: usize,
    correlation_id: *const c_char,
) -> KvsStatus {
    if payload.is_null() {
        return null_pointer("payload");
    }
    with_handle(viewer, |h| {
        let message_type = types::message_type_from_c(message_type);
        // SAFETY: non-NULL; the caller guarantees the length (or the terminating NUL).
        let bytes = unsafe { types::payload_bytes(payload, payload_len) };
        // SAFETY: NULL or NUL-terminated, per the contract.
        let correlation_id =
            unsafe { types::optional_str(correlation_id, "correlation_id") }.map_err(fail)?;
        send_frame(h, message_type, bytes, correlation_id)
    })
}

/// Takes the next received message, in arrival order.
///
/// `timeout_ms`: 0 = return at once, -1 = wait forever, otherwise wait up to that many
/// milliseconds; `KVS_ERR_TIMEOUT` when nothing arrived (not fatal). The payload is
/// base64-decoded into the caller's `out->payload` buffer and NUL-terminated; when it does not
/// fit, only `out->payload_len` is written (the size needed, without the NUL), the message
/// stays queued and `KVS_ERR_BUFFER_TOO_SMALL` is returned — call again with a bigger buffer.
/// A buffer of `KVS_MAX_PAYLOAD_LEN + 1` bytes holds any message the service relays.
///
/// Messages that arrived before the connection ended are still delivered; after them,
/// `KVS_ERR_CLOSED` (detail: close code and reason). Frames that are not protocol messages
/// are skipped, never fatal. The library allocates nothing the caller must free.
///
/// Thread-safety: one thread at a time per handle may be in `kvs_viewer_recv`; it may block
/// while other threads call `kvs_viewer_send`. A `kvs_viewer_reconnect` on another thread
/// does not end it: it goes on waiting (within `timeout_ms`) on the new connection.
/// `kvs_viewer_shutdown` or `kvs_viewer_close` on another thread make it return
/// `KVS_ERR_CLOSED` promptly. Blocking burns no CPU.
///
/// # Safety
/// `viewer` must come from `kvs_viewer_connect` and not be closed; `out` must point to a
/// `KvsMessage` whose `payload` points to `payload_cap` writable bytes (or is NULL with
/// `payload_cap` 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_viewer_recv(
    viewer: *mut KvsViewer,
    out: *mut KvsMessage,
    timeout_ms: i32,
) -> KvsStatus {
    if out.is_null() {
        return null_pointer("out");
    }
    with_handle(viewer, |h| {
        // SAFETY: non-NULL; the caller guarantees `struct_size` readable, writable bytes.
        let mut out = unsafe { types::MessageOut::open(out) }.map_err(fail)?;
        let deadline = match timeout_ms {
            -1 => None,
            t if t < 0 => {
                return Err(fail(Error::invalid(
                    "timeout_ms",
                    format!("{t}; use -1 to wait forever, 0 to poll, or a positive bound"),
                )));
            }
            t => Some(Instant::now() + Duration::from_millis(t as u64)),
        };
        h.call_across_reconnects(deadline, |v, deadline| {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            // SAFETY: `open` validated the buffer pointer/capacity pair.
            v.recv_with(left, |m| unsafe { out.fill(m) })
        })
        .map_err(fail)?;
        // SAFETY: as `open`.
        unsafe { out.commit() };
        Ok(())
    })
}

/// Closes the connection and frees the handle. Sends a WebSocket close frame so the service
/// frees the viewer slot at once (a channel allows only 10 viewers), waits for the server's
/// reply (bounded by the connect timeout), and frees everything even when that fails.
/// Secrets are wiped from memory. NULL is a no-op returning `KVS_OK`.
///
/// Returns `KVS_OK`, or `KVS_ERR_TIMEOUT` when the server did not confirm the close (the
/// handle is freed all the same). A connection the server already ended closes with
/// `KVS_OK`.
///
/// Thread-safety: may run while other threads are inside any call on this handle: their
/// blocked `recv`/`send` return `KVS_ERR_CLOSED` promptly, calls that start meanwhile get
/// `KVS_ERR_CLOSED`, and close waits until every call has left before freeing. A call that
/// starts after close *returned* uses freed memory: that is the caller's bug. To stop a
/// receive loop cleanly, use `kvs_viewer_shutdown`, join the thread, then close. A second
/// close while one is running returns `KVS_ERR_CLOSED` and frees nothing.
///
/// # Safety
/// `viewer` must be NULL or come from `kvs_viewer_connect`, and not be used after this call
/// returns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_viewer_close(viewer: *mut KvsViewer) -> KvsStatus {
    if viewer.is_null() {
        return ok();
    }
    // SAFETY: from `kvs_viewer_connect`, and (the caller guarantees) not yet closed.
    let handle = unsafe { &*viewer };
    guard(|| {
        handle.drain_for_close().map_err(fail)?;
        // SAFETY: created by `Box::into_raw` in `kvs_viewer_connect`; no call is inside any
        // more and new ones are refused, so ownership returns here.
        let handle = unsafe { Box::from_raw(viewer) };
        handle.into_viewer().close().map_err(fail)
    })
}

/// Ends the connection now, from any thread, and wakes every call blocked on the handle:
/// `kvs_viewer_recv` returns the messages already received, then `KVS_ERR_CLOSED` for good
/// (a message the master sends while the close handshake runs is dropped, not queued behind it);
/// `kvs_viewer_send` returns `KVS_ERR_CLOSED`; `kvs_viewer_reconnect` is refused with
/// `KVS_ERR_CLOSED`. A close frame still goes out, so the service frees the viewer slot.
/// Idempotent. The handle stays valid until `kvs_viewer_close`, which is the only call left
/// to make.
///
/// The clean way to stop a receive thread: `kvs_viewer_shutdown(v)`, join the thread (its
/// recv returned `KVS_ERR_CLOSED`), then `kvs_viewer_close(v)`.
///
/// Returns `KVS_OK`, or `KVS_ERR_NULL_POINTER`. Thread-safety: any thread, any time before
/// `kvs_viewer_close` returns.
///
/// # Safety
/// `viewer` must come from `kvs_viewer_connect`, and `kvs_viewer_close` must not have
/// returned.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_viewer_shutdown(viewer: *mut KvsViewer) -> KvsStatus {
    with_handle(viewer, |h| {
        h.shutdown();
        Ok(())
    })
}

/// Connects again with the same configuration and the endpoints already known: one TLS
/// handshake, no control-plane call. Use it after `KVS_MSG_GO_AWAY` (the service closes the
/// connection about a minute later), or when `kvs_viewer_recv` reports `KVS_ERR_CLOSED`.
/// The old connection is closed first if it is still up. Messages received before the call
/// and not yet taken stay queued, ahead of the new connection's; a frame the master sends
/// while the old connection closes is not delivered (this is break-before-make: the service
/// has no connection to send to until the new one is up). The automatic reconnect after
/// `KVS_MSG_GO_AWAY` is make-before-break and loses nothing.
///
/// Returns `KVS_OK` or the same codes as `kvs_viewer_connect`. On failure the handle stays
/// valid but disconnected (`kvs_viewer_recv` reports the reason after any kept messages);
/// call `kvs_viewer_reconnect` again after a back-off (the official SDKs wait 100 ms·2ⁿ,
/// capped at 10 s, with full jitter), or `kvs_viewer_close`.
///
/// Thread-safety: may overlap every other call on the handle. Blocked `recv` calls keep
/// waiting (within their timeout) and continue on the new connection; sends wait (up to 5 s)
/// and go out on it (each thread's sends in their order); a send is never reported `KVS_OK`
/// for a frame it dropped. A send caught mid-flight by the reconnect may, rarely, arrive
/// twice (on the old connection just before it closed, and on the new one): harmless for
/// ICE candidates; send offers from the thread that reconnects. Concurrent reconnects run one after the other. After `kvs_viewer_shutdown` (or
/// while closing) it returns `KVS_ERR_CLOSED`.
///
/// # Safety
/// `viewer` must come from `kvs_viewer_connect` and not be closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_viewer_reconnect(viewer: *mut KvsViewer) -> KvsStatus {
    with_handle(viewer, |h| h.reconnect().map_err(fail))
}

/// The wire name of a `KVS_MSG_*` type (e.g. `"SDP_ANSWER"`); `"UNKNOWN"` for any other
/// value. Static, never NULL; thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn kvs_message_type_name(message_type: i32) -> *const c_char {
    types::message_type_name(message_type).as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::KvsStatus::KVS_ERR_INTERNAL;

    #[test]
    fn version_constants_match_the_package() {
        assert_eq!(
            format!(
                "{KVS_VIEWER_VERSION_MAJOR}.{KVS_VIEWER_VERSION_MINOR}.{KVS_VIEWER_VERSION_PATCH}"
            ),
            env!("CARGO_PKG_VERSION")
        );
        // SAFETY: static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(kvs_viewer_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn panics_become_internal_errors_with_their_text() {
        let code = guard(|| panic!("boom {}", 7));
        assert_eq!(code, KVS_ERR_INTERNAL);
        let mut buf = [0 as c_char; 128];
        // SAFETY: buf is 128 writable bytes.
        let n = unsafe { kvs_last_error_message(buf.as_mut_ptr(), buf.len()) };
        // SAFETY: NUL-terminated by kvs_last_error_message.
        let text = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
        assert_eq!(n, text.len());
        assert!(text.contains("boom 7"), "{text}");
    }
}
