//! One deadline for a whole operation (a connect: DNS, TCP, TLS, every HTTP call of discovery,
//! the WebSocket upgrade). Each step asks how much time is left instead of having a timeout of
//! its own, so the steps together can never take longer than the bound.

use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline {
    at: Instant,
    /// The whole bound, for error messages.
    total: Duration,
}

impl Deadline {
    /// `total` from now.
    pub(crate) fn after(total: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + total,
            total,
        }
    }

    /// Time left (zero once passed).
    pub(crate) fn left(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Time left for `step`, or a `Timeout` error naming it once the deadline has passed.
    pub(crate) fn remaining(&self, step: &str) -> Result<Duration> {
        let left = self.left();
        if left.is_zero() {
            return Err(self.timeout(step));
        }
        Ok(left)
    }

    /// The `Timeout` error of `step` running past this deadline.
    pub(crate) fn timeout(&self, step: &str) -> Error {
        Error::new(
            ErrorKind::Timeout,
            format!("{step}: the connect timeout ({:?}) elapsed", self.total),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_to_a_named_timeout() {
        let d = Deadline::after(Duration::from_secs(60));
        let left = d.remaining("TLS handshake").unwrap();
        assert!(left > Duration::from_secs(59) && left <= Duration::from_secs(60));
        let gone = Deadline::after(Duration::ZERO);
        assert_eq!(gone.left(), Duration::ZERO);
        let e = gone.remaining("TLS handshake").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout);
        assert!(e.message.starts_with("TLS handshake: "), "{}", e.message);
    }
}
