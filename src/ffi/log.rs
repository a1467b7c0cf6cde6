//! The log callback of the C API: `kvs_set_log_callback` and the `KVS_LOG_*` levels, bridged
//! to the core's `diag` sink.

use std::ffi::{CString, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use log::Level;

use crate::diag;

/// Log level: nothing.
pub const KVS_LOG_OFF: i32 = 0;
/// Log level: a call failed, or the connection is gone for good.
pub const KVS_LOG_ERROR: i32 = 1;
/// Log level: something went wrong and the library recovers (a drop, a refused signature).
pub const KVS_LOG_WARN: i32 = 2;
/// Log level: the story of a session in a few lines (endpoint, reconnects and why, clock
/// corrections).
pub const KVS_LOG_INFO: i32 = 3;
/// Log level: INFO plus each frame's type and size, each HTTP call, TLS and pings.
pub const KVS_LOG_DEBUG: i32 = 4;
/// Log level: DEBUG plus request and response headers, with every secret, token, signature
/// and credential redacted.
pub const KVS_LOG_TRACE: i32 = 5;

/// Receives one log line: `level` is one of `KVS_LOG_ERROR`..`KVS_LOG_TRACE`, `message` a
/// NUL-terminated UTF-8 line without a trailing newline, naming the viewer (its client id)
/// and the step (`viewer-1 connect: connected to wss://…`). `message` is valid only during
/// the call. Called from the application's threads and from the library's I/O threads.
pub type KvsLogCallback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, level: i32, message: *const c_char)>;

/// The application's callback and its pointer; the application vouches that both may be used
/// from any thread.
struct Callback {
    function: unsafe extern "C" fn(*mut c_void, i32, *const c_char),
    user_data: *mut c_void,
}

// SAFETY: `kvs_set_log_callback` documents that the callback is called from any thread with
// this `user_data`; the application guarantees that is safe.
unsafe impl Send for Callback {}
// SAFETY: as above; the library never touches `user_data` itself.
unsafe impl Sync for Callback {}

impl Callback {
    fn call(&self, level: Level, line: &str) {
        let text = CString::new(line.replace('\0', " ")).unwrap_or_default();
        // SAFETY: the application registered this function for exactly these arguments; the
        // message is a valid NUL-terminated string for the duration of the call.
        unsafe { (self.function)(self.user_data, level as i32, text.as_ptr()) };
    }
}

/// Sends the library's log lines up to `max_level` (`KVS_LOG_OFF`..`KVS_LOG_TRACE`; values
/// outside are clamped) to `callback` with `user_data`. Process-wide; replaces the previous
/// callback, and returns once calls of the previous one running on other threads have
/// returned (so its `user_data` may be freed), except when called from inside the callback.
///
/// NULL `callback` = the default sink: lines go to stderr, one line per write, prefixed by
/// a UTC timestamp (`2026-12-02T00:41:40.123Z kvs-viewer INFO  viewer-1 connect: …`), at
/// the level of the environment variable `KVS_LOG_LEVEL` (`error`, `warn`, `info`, `debug`,
/// `trace`, or `0`..`5`; read at this call and at the first `kvs_viewer_connect`) capped by
/// `max_level`. Without `KVS_LOG_LEVEL` the default sink prints nothing — the state of a
/// program that never calls this function.
///
/// The callback may be called from the library's I/O threads as well as from the thread of
/// the `kvs_*` call that logs; never with a library lock held, so it may call `kvs_*`
/// functions, e.g. `kvs_viewer_get_stats` or `kvs_last_error_message` (which reads the
/// calling thread's last error), also while `kvs_viewer_reconnect` runs on that handle, but
/// not on a handle that `kvs_viewer_close` is closing.
/// Lines the callback's own `kvs_*` calls would log are dropped. Lines above `max_level`
/// cost nothing: they are not even formatted.
///
/// Repeated lines are rate-limited: of lines from one place that differ only in numbers and
/// ids (a reconnect loop), the first 20 pass, then the 40th, 80th, 160th, … and at least one
/// an hour, each ending `(N similar lines suppressed)`; after a quiet minute they pass again.
/// No line holds a secret key, session token, signature, TURN credential, or any run of 64
/// hex digits.
///
/// Thread-safety: any thread, any time.
///
/// # Safety
/// `callback` must be NULL or a function safe to call from any thread with `user_data` until
/// this function is called again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_set_log_callback(
    callback: KvsLogCallback,
    user_data: *mut c_void,
    max_level: i32,
) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let level = diag::level_from_number(i64::from(max_level));
        let sink: Option<Arc<diag::Sink>> = callback.map(|function| {
            let cb = Callback {
                function,
                user_data,
            };
            Arc::new(move |level: Level, line: &str| cb.call(level, line)) as Arc<diag::Sink>
        });
        diag::set_sink(sink, level);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_the_log_crates() {
        assert_eq!(Level::Error as i32, KVS_LOG_ERROR);
        assert_eq!(Level::Warn as i32, KVS_LOG_WARN);
        assert_eq!(Level::Info as i32, KVS_LOG_INFO);
        assert_eq!(Level::Debug as i32, KVS_LOG_DEBUG);
        assert_eq!(Level::Trace as i32, KVS_LOG_TRACE);
        assert_eq!(
            diag::level_from_number(KVS_LOG_OFF as i64),
            log::LevelFilter::Off
        );
    }
}
