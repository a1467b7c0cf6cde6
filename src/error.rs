//! The one error type of the safe core. The FFI layer turns `ErrorKind` into a stable
//! integer code and `Error`'s `Display` into the per-thread detail message.

use std::fmt;

/// What went wrong, coarse enough to act on. Each kind has exactly one C error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 400 `InvalidArgumentException`, or a value refused locally before any I/O.
    InvalidArgument,
    /// 403 (or 401): `AccessDeniedException`, or the control plane's `InvalidSignatureException`,
    /// `UnrecognizedClientException`, `MissingAuthenticationTokenException`,
    /// `ExpiredTokenException`: bad signature, unknown or expired credentials, skewed clock.
    AccessDenied,
    /// 404 `ResourceNotFoundException`: the channel does not exist.
    ResourceNotFound,
    /// 400 `ClientLimitExceededException`: too many viewers, or calls made too fast.
    ClientLimitExceeded,
    /// Any other named service exception; the name is kept in `Error::error_type`.
    Service,
    /// A bounded wait ran out. Never fatal for `recv`.
    Timeout,
    /// The connection is closed (by the server, by the network, or by us).
    Closed,
    /// DNS, TCP connect or socket failure.
    Network,
    /// TLS handshake failure, including an untrusted certificate.
    Tls,
    /// The server sent something that is not the protocol (bad upgrade, bad frame).
    Protocol,
    /// An HTTP status the service does not document for this call (5xx, 429, ...).
    HttpStatus,
    /// The caller's buffer cannot hold the result; nothing was consumed.
    BufferTooSmall,
    /// A bug in this library (caught panic, broken invariant).
    Internal,
}

/// An error with everything a firmware engineer needs to diagnose it from a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What to do about it; one C code per kind.
    pub kind: ErrorKind,
    /// Human-readable detail; never contains secrets.
    pub message: String,
    /// HTTP status of the service response, when there was one.
    pub http_status: Option<u16>,
    /// The service's exception name (`x-amzn-ErrorType` or body code), when there was one.
    pub error_type: Option<String>,
    /// `x-amzn-RequestId` of the failing response, for support tickets.
    pub request_id: Option<String>,
    /// WebSocket close code, for `ErrorKind::Closed`.
    pub close_code: Option<u16>,
}

/// The result of every fallible call of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            http_status: None,
            error_type: None,
            request_id: None,
            close_code: None,
        }
    }

    /// A locally refused value; `field` is the config or argument name the caller used.
    pub(crate) fn invalid(field: &str, why: impl fmt::Display) -> Self {
        Error::new(ErrorKind::InvalidArgument, format!("{field}: {why}"))
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    pub(crate) fn closed(close_code: Option<u16>, message: impl Into<String>) -> Self {
        let mut e = Error::new(ErrorKind::Closed, message);
        e.close_code = close_code;
        e
    }

    /// Prefixes the message with the step that failed ("connect", "describe", ...).
    pub(crate) fn in_step(mut self, step: &str) -> Self {
        self.message = format!("{step}: {}", self.message);
        self
    }

    /// Appends a note in parentheses to the message.
    pub(crate) fn with_note(mut self, note: &str) -> Self {
        self.message = format!("{} ({note})", self.message);
        self
    }

    /// Builds the error for a non-success HTTP response of the service.
    ///
    /// The two 400s (`InvalidArgumentException`, `ClientLimitExceededException`) can only be
    /// told apart by the exception name, so the name wins over the status; the status decides
    /// only when the service sent no name.
    pub(crate) fn from_service_response(
        status: u16,
        error_type: Option<&str>,
        service_message: Option<&str>,
        request_id: Option<&str>,
    ) -> Self {
        // `x-amzn-ErrorType` may carry a namespace: "Name:http://internal.amazon.com/...".
        let name = error_type
            .map(|t| t.split(':').next().unwrap_or(t).trim())
            .filter(|t| !t.is_empty());
        let kind = match name {
            Some("InvalidArgumentException") => ErrorKind::InvalidArgument,
            // The control plane's SigV4 failures come from the AWS auth layer (§11.1).
            Some(
                "AccessDeniedException"
                | "InvalidSignatureException"
                | "UnrecognizedClientException"
                | "MissingAuthenticationTokenException"
                | "ExpiredTokenException",
            ) => ErrorKind::AccessDenied,
            Some("ResourceNotFoundException") => ErrorKind::ResourceNotFound,
            Some("ClientLimitExceededException") => ErrorKind::ClientLimitExceeded,
            Some(_) => ErrorKind::Service,
            None => match status {
                400 => ErrorKind::InvalidArgument,
                401 | 403 => ErrorKind::AccessDenied,
                404 => ErrorKind::ResourceNotFound,
                _ => ErrorKind::HttpStatus,
            },
        };
        let mut message = format!("HTTP {status}");
        if let Some(n) = name {
            message.push(' ');
            message.push_str(n);
        }
        if let Some(m) = service_message.filter(|m| !m.is_empty()) {
            message.push_str(": ");
            message.push_str(m);
        }
        Error {
            kind,
            message,
            http_status: Some(status),
            error_type: name.map(str::to_owned),
            request_id: request_id.map(str::to_owned),
            close_code: None,
        }
    }
}

impl Error {
    /// Worth retrying the same call after a wait: the network, throttling, or a server-side
    /// failure (5xx, 429) — not a refusal that would come back the same.
    pub(crate) fn is_transient(&self) -> bool {
        match self.kind {
            ErrorKind::Network | ErrorKind::ClientLimitExceeded => true,
            ErrorKind::HttpStatus | ErrorKind::Service => {
                self.http_status.is_some_and(|s| s >= 500 || s == 429)
                    || matches!(
                        self.error_type.as_deref(),
                        Some("ThrottlingException" | "TooManyRequestsException" | "Throttling")
                    )
            }
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(code) = self.close_code {
            write!(f, " (close code {code})")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_400s_are_told_apart_by_name() {
        let a = Error::from_service_response(400, Some("InvalidArgumentException"), None, None);
        let b = Error::from_service_response(400, Some("ClientLimitExceededException"), None, None);
        assert_eq!(a.kind, ErrorKind::InvalidArgument);
        assert_eq!(b.kind, ErrorKind::ClientLimitExceeded);
    }

    #[test]
    fn namespaced_error_type_is_stripped() {
        let e = Error::from_service_response(
            403,
            Some(
                "AccessDeniedException:http://internal.amazon.com/coral/com.amazon.coral.service/",
            ),
            Some("Signature expired"),
            Some("req-1"),
        );
        assert_eq!(e.kind, ErrorKind::AccessDenied);
        assert_eq!(e.error_type.as_deref(), Some("AccessDeniedException"));
        assert_eq!(
            e.to_string(),
            "HTTP 403 AccessDeniedException: Signature expired (request id req-1)"
        );
    }

    #[test]
    fn every_auth_failure_is_access_denied() {
        for name in [
            "AccessDeniedException",
            "InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.coral.service/",
            "UnrecognizedClientException",
            "MissingAuthenticationTokenException",
            "ExpiredTokenException",
        ] {
            let e = Error::from_service_response(403, Some(name), None, None);
            assert_eq!(e.kind, ErrorKind::AccessDenied, "{name}");
        }
    }

    #[test]
    fn transient_failures() {
        let svc = |status, name| Error::from_service_response(status, name, None, None);
        assert!(svc(500, None).is_transient());
        assert!(svc(503, Some("ServiceUnavailable")).is_transient());
        assert!(svc(429, None).is_transient());
        assert!(svc(400, Some("ClientLimitExceededException")).is_transient());
        assert!(svc(400, Some("ThrottlingException")).is_transient());
        assert!(Error::new(ErrorKind::Network, "reset").is_transient());
        for lasting in [
            svc(400, Some("InvalidArgumentException")),
            svc(403, Some("AccessDeniedException")),
            svc(404, None),
            Error::new(ErrorKind::Timeout, "deadline"),
            Error::new(ErrorKind::Tls, "untrusted"),
        ] {
            assert!(!lasting.is_transient(), "{lasting}");
        }
    }

    #[test]
    fn unknown_names_and_statuses_fall_back() {
        let e = Error::from_service_response(400, Some("ResourceInUseException"), None, None);
        assert_eq!(e.kind, ErrorKind::Service);
        assert_eq!(e.error_type.as_deref(), Some("ResourceInUseException"));
        assert_eq!(
            Error::from_service_response(503, None, None, None).kind,
            ErrorKind::HttpStatus
        );
        assert_eq!(
            Error::from_service_response(404, None, None, None).kind,
            ErrorKind::ResourceNotFound
        );
        assert_eq!(
            Error::from_service_response(401, None, None, None).kind,
            ErrorKind::AccessDenied
        );
    }
}
