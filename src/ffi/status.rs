//! Status codes: the append-only `KvsStatus` table, its names, and the retry advice.
//!
//! The ABI carries codes as `int32_t` (cbindgen emits `typedef int32_t KvsStatus` in C), so
//! the library only ever *returns* a `KvsStatus`; every code coming from C arrives as `i32`
//! and is matched against the table, never transmuted.

use std::ffi::{CStr, c_char};

use crate::error::ErrorKind;

/// Result of every fallible call: `KVS_OK` (0) or a negative code. Append-only: a value is
/// never renumbered or reused; new codes take a free number in their group.
///
/// Groups: -1..-9 the service's exceptions; -10..-19 connection and transport; -20..-29
/// the caller's mistakes; -30.. bugs in the library.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)] // the C names, so C and Rust grep alike
pub enum KvsStatus {
    /// Success.
    KVS_OK = 0,

    // --- The service's exceptions (-1..-9) --------------------------------------------
    /// 400 `InvalidArgumentException` from the service, or a value refused locally (the
    /// detail message names the field).
    KVS_ERR_INVALID_ARGUMENT = -1,
    /// 403 (or 401) `AccessDeniedException`: bad or expired credentials, or a clock too far
    /// off.
    KVS_ERR_ACCESS_DENIED = -2,
    /// 404 `ResourceNotFoundException`: the channel does not exist.
    KVS_ERR_RESOURCE_NOT_FOUND = -3,
    /// 400 `ClientLimitExceededException`: too many viewers on the channel, or calls too
    /// fast. Retryable after a back-off.
    KVS_ERR_CLIENT_LIMIT_EXCEEDED = -4,
    /// Another named service exception; the detail message holds its name and
    /// `kvs_last_error_http_status` its status.
    KVS_ERR_SERVICE = -5,

    // --- Connection and transport (-10..-19) ------------------------------------------
    /// A bounded wait ran out. Not fatal: the handle stays usable.
    KVS_ERR_TIMEOUT = -10,
    /// The connection is closed (by the server, the network, a failure, or
    /// `kvs_viewer_shutdown` / `kvs_viewer_close` on another thread); the detail holds the
    /// close code when the server sent one. Call `kvs_viewer_reconnect` (one TLS handshake,
    /// unread messages kept) or `kvs_viewer_close`.
    KVS_ERR_CLOSED = -11,
    /// DNS or TCP failure (refused port, unreachable host).
    KVS_ERR_NETWORK = -12,
    /// TLS handshake failure, including an untrusted or mismatched certificate.
    KVS_ERR_TLS = -13,
    /// The server broke the protocol (bad upgrade response, oversized frame).
    KVS_ERR_PROTOCOL = -14,
    /// An HTTP status the service does not document for the call (5xx, 429, ...);
    /// see `kvs_last_error_http_status`.
    KVS_ERR_HTTP_STATUS = -15,

    // --- The caller's mistakes (-20..-29) ---------------------------------------------
    /// The caller's buffer is too small; nothing was consumed and the needed size was
    /// written.
    KVS_ERR_BUFFER_TOO_SMALL = -20,
    /// A required pointer argument was NULL.
    KVS_ERR_NULL_POINTER = -21,

    // --- Bugs in the library (-30..) --------------------------------------------------
    /// A bug in the library (a caught panic); the detail holds the panic message. The
    /// handle answers `KVS_ERR_CLOSED` afterwards: close it.
    KVS_ERR_INTERNAL = -30,
}

use KvsStatus::*;

/// Every code, for tables and tests.
pub(crate) const ALL_STATUSES: [KvsStatus; 15] = [
    KVS_OK,
    KVS_ERR_INVALID_ARGUMENT,
    KVS_ERR_ACCESS_DENIED,
    KVS_ERR_RESOURCE_NOT_FOUND,
    KVS_ERR_CLIENT_LIMIT_EXCEEDED,
    KVS_ERR_SERVICE,
    KVS_ERR_TIMEOUT,
    KVS_ERR_CLOSED,
    KVS_ERR_NETWORK,
    KVS_ERR_TLS,
    KVS_ERR_PROTOCOL,
    KVS_ERR_HTTP_STATUS,
    KVS_ERR_BUFFER_TOO_SMALL,
    KVS_ERR_NULL_POINTER,
    KVS_ERR_INTERNAL,
];

impl KvsStatus {
    /// The code for a value from C; `None` for a number not in the table.
    pub(crate) fn from_c(code: i32) -> Option<KvsStatus> {
        ALL_STATUSES.into_iter().find(|s| *s as i32 == code)
    }

    fn name(self) -> &'static CStr {
        match self {
            KVS_OK => c"KVS_OK",
            KVS_ERR_INVALID_ARGUMENT => c"KVS_ERR_INVALID_ARGUMENT",
            KVS_ERR_ACCESS_DENIED => c"KVS_ERR_ACCESS_DENIED",
            KVS_ERR_RESOURCE_NOT_FOUND => c"KVS_ERR_RESOURCE_NOT_FOUND",
            KVS_ERR_CLIENT_LIMIT_EXCEEDED => c"KVS_ERR_CLIENT_LIMIT_EXCEEDED",
            KVS_ERR_SERVICE => c"KVS_ERR_SERVICE",
            KVS_ERR_TIMEOUT => c"KVS_ERR_TIMEOUT",
            KVS_ERR_CLOSED => c"KVS_ERR_CLOSED",
            KVS_ERR_NETWORK => c"KVS_ERR_NETWORK",
            KVS_ERR_TLS => c"KVS_ERR_TLS",
            KVS_ERR_PROTOCOL => c"KVS_ERR_PROTOCOL",
            KVS_ERR_HTTP_STATUS => c"KVS_ERR_HTTP_STATUS",
            KVS_ERR_BUFFER_TOO_SMALL => c"KVS_ERR_BUFFER_TOO_SMALL",
            KVS_ERR_NULL_POINTER => c"KVS_ERR_NULL_POINTER",
            KVS_ERR_INTERNAL => c"KVS_ERR_INTERNAL",
        }
    }
}

pub(crate) fn code_of(kind: ErrorKind) -> KvsStatus {
    match kind {
        ErrorKind::InvalidArgument => KVS_ERR_INVALID_ARGUMENT,
        ErrorKind::AccessDenied => KVS_ERR_ACCESS_DENIED,
        ErrorKind::ResourceNotFound => KVS_ERR_RESOURCE_NOT_FOUND,
        ErrorKind::ClientLimitExceeded => KVS_ERR_CLIENT_LIMIT_EXCEEDED,
        ErrorKind::Service => KVS_ERR_SERVICE,
        ErrorKind::Timeout => KVS_ERR_TIMEOUT,
        ErrorKind::Closed => KVS_ERR_CLOSED,
        ErrorKind::Network => KVS_ERR_NETWORK,
        ErrorKind::Tls => KVS_ERR_TLS,
        ErrorKind::Protocol => KVS_ERR_PROTOCOL,
        ErrorKind::HttpStatus => KVS_ERR_HTTP_STATUS,
        ErrorKind::BufferTooSmall => KVS_ERR_BUFFER_TOO_SMALL,
        ErrorKind::Internal => KVS_ERR_INTERNAL,
    }
}

/// Exception names AWS uses for throttling when it answers 400 rather than 429.
const THROTTLING_EXCEPTIONS: [&str; 3] = [
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
];

/// Whether a failure with `code`, whose thread-local detail (if it is this thread's last
/// failure) had `http_status` and `error_type`, is worth retrying after a back-off.
pub(crate) fn is_retryable(code: i32, last: Option<(KvsStatus, u16, Option<&str>)>) -> bool {
    match KvsStatus::from_c(code) {
        Some(
            KVS_ERR_TIMEOUT | KVS_ERR_NETWORK | KVS_ERR_CLOSED | KVS_ERR_CLIENT_LIMIT_EXCEEDED,
        ) => true,
        Some(s @ (KVS_ERR_SERVICE | KVS_ERR_HTTP_STATUS)) => match last {
            Some((last_code, status, error_type)) if last_code == s => {
                status == 429
                    || (500..=599).contains(&status)
                    || error_type.is_some_and(|t| THROTTLING_EXCEPTIONS.contains(&t))
            }
            _ => false,
        },
        _ => false,
    }
}

/// The name of a status code, e.g. `"KVS_ERR_ACCESS_DENIED"`.
///
/// Never NULL: unknown codes give `"KVS_ERR_UNKNOWN"`. The string is static.
/// Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn kvs_error_name(code: i32) -> *const c_char {
    KvsStatus::from_c(code)
        .map_or(c"KVS_ERR_UNKNOWN", KvsStatus::name)
        .as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_named_code() {
        use ErrorKind::*;
        for kind in [
            InvalidArgument,
            AccessDenied,
            ResourceNotFound,
            ClientLimitExceeded,
            Service,
            Timeout,
            Closed,
            Network,
            Tls,
            Protocol,
            HttpStatus,
            BufferTooSmall,
            Internal,
        ] {
            // SAFETY: static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(kvs_error_name(code_of(kind) as i32)) };
            assert_ne!(name.to_str().unwrap(), "KVS_ERR_UNKNOWN", "{kind:?}");
        }
    }

    /// The 0.1 numbers, frozen: a renumbering breaks every compiled application.
    #[test]
    fn codes_keep_their_0_1_numbers() {
        let frozen = [
            0, -1, -2, -3, -4, -5, -10, -11, -12, -13, -14, -15, -20, -21, -30,
        ];
        let now: Vec<i32> = ALL_STATUSES.iter().map(|s| *s as i32).collect();
        assert_eq!(now, frozen);
        for s in ALL_STATUSES {
            assert_eq!(KvsStatus::from_c(s as i32), Some(s));
        }
        for unknown in [1, -6, -16, -31, i32::MIN, i32::MAX] {
            assert_eq!(KvsStatus::from_c(unknown), None);
            // SAFETY: static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(kvs_error_name(unknown)) };
            assert_eq!(name, c"KVS_ERR_UNKNOWN");
        }
    }

    #[test]
    fn retry_advice() {
        for s in [
            KVS_ERR_TIMEOUT,
            KVS_ERR_NETWORK,
            KVS_ERR_CLOSED,
            KVS_ERR_CLIENT_LIMIT_EXCEEDED,
        ] {
            assert!(is_retryable(s as i32, None), "{s:?}");
        }
        for s in [
            KVS_OK,
            KVS_ERR_INVALID_ARGUMENT,
            KVS_ERR_ACCESS_DENIED,
            KVS_ERR_RESOURCE_NOT_FOUND,
            KVS_ERR_TLS,
            KVS_ERR_PROTOCOL,
            KVS_ERR_BUFFER_TOO_SMALL,
            KVS_ERR_NULL_POINTER,
            KVS_ERR_INTERNAL,
        ] {
            assert!(!is_retryable(s as i32, None), "{s:?}");
            assert!(!is_retryable(s as i32, Some((s, 503, None))), "{s:?}");
        }
        let h = KVS_ERR_HTTP_STATUS;
        assert!(is_retryable(h as i32, Some((h, 503, None))));
        assert!(is_retryable(h as i32, Some((h, 429, None))));
        assert!(!is_retryable(h as i32, Some((h, 413, None))));
        // The detail belongs to another failure: no advice from it.
        assert!(!is_retryable(h as i32, Some((KVS_ERR_SERVICE, 503, None))));
        assert!(!is_retryable(h as i32, None));
        let s = KVS_ERR_SERVICE;
        assert!(is_retryable(
            s as i32,
            Some((s, 500, Some("InternalFailure")))
        ));
        assert!(is_retryable(
            s as i32,
            Some((s, 400, Some("ThrottlingException")))
        ));
        assert!(!is_retryable(
            s as i32,
            Some((s, 400, Some("ResourceInUseException")))
        ));
        assert!(!is_retryable(-99, None));
    }
}
