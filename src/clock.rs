//! The viewer's one clock: local time plus an offset learnt from the service. Every signature
//! (the presigned WebSocket URL and every control-plane `POST`) takes its time from here, so
//! an offset learnt on one surface fixes them all.

use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;

/// The service allows 5 minutes of skew; from one minute on, a refusal is worth one retry
/// with the server's time.
pub(crate) const SKEW_WORTH_CORRECTING_S: i64 = 60;

/// Local time corrected by the server's. Shared (`Arc`) by everything a viewer signs.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    /// Server clock − local clock, in seconds.
    offset_s: AtomicI64,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock::default()
    }

    /// Server clock − local clock, in seconds (0 until a correction).
    pub(crate) fn offset_s(&self) -> i64 {
        self.offset_s.load(Ordering::Relaxed)
    }

    /// The time to sign with.
    pub(crate) fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::seconds(self.offset_s())
    }

    /// Learns the offset from a server's `Date`, if it is at least a minute from what this
    /// clock shows now. Returns the new offset when it changed (the caller retries once).
    pub(crate) fn correct_from(&self, server_date: OffsetDateTime) -> Option<i64> {
        let skew = (server_date - OffsetDateTime::now_utc()).whole_seconds();
        let current = self.offset_s();
        if (skew - current).abs() < SKEW_WORTH_CORRECTING_S {
            return None;
        }
        self.offset_s.store(skew, Ordering::Relaxed);
        Some(skew)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrects_only_a_skew_worth_correcting() {
        let clock = Clock::new();
        let now = OffsetDateTime::now_utc();
        assert_eq!(clock.correct_from(now + time::Duration::seconds(5)), None);
        assert_eq!(clock.offset_s(), 0);
        let learnt = clock
            .correct_from(now + time::Duration::minutes(20))
            .unwrap();
        assert!((learnt - 1200).abs() <= 2, "{learnt}");
        assert_eq!(clock.offset_s(), learnt);
        // Already corrected: the same server time is no news.
        assert_eq!(clock.correct_from(now + time::Duration::minutes(20)), None);
        let shown = clock.now() - OffsetDateTime::now_utc();
        assert!((shown.whole_seconds() - 1200).abs() <= 2);
        // And back, when the server's clock (or ours) moves again.
        let learnt = clock
            .correct_from(now - time::Duration::minutes(6))
            .unwrap();
        assert!((learnt + 360).abs() <= 2, "{learnt}");
    }
}
