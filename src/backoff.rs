//! Exponential backoff with full jitter, as the official SDKs wait between retries
//! (protocol.md §6.4): attempt n waits a uniformly random time in [0, min(cap, base·2ⁿ)).
//! Full jitter spreads a fleet of devices that lost the service at the same moment.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The SDKs' control-plane and reconnect schedule: 100 ms·2ⁿ, capped at 10 s.
pub(crate) const DEFAULT_BASE: Duration = Duration::from_millis(100);
pub(crate) const DEFAULT_CAP: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    cap: Duration,
    /// Waits handed out so far.
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The next wait; each call doubles the ceiling up to the cap.
    pub(crate) fn next_wait(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(random_u64() % nanos)
    }

    /// Waits handed out so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// Unpredictable enough for jitter (not for cryptography): std's per-process random hash
/// keys, advanced on every call.
fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stay_under_a_doubling_capped_ceiling() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let mut ceilings = Vec::new();
        for _ in 0..8 {
            let ceiling =
                Duration::from_millis(100 * (1 << b.attempts())).min(Duration::from_secs(1));
            ceilings.push(ceiling);
            let w = b.next_wait();
            assert!(w < ceiling, "{w:?} >= {ceiling:?}");
        }
        assert_eq!(
            ceilings[..5]
                .iter()
                .map(|c| c.as_millis())
                .collect::<Vec<_>>(),
            [100, 200, 400, 800, 1000]
        );
        assert_eq!(b.attempts(), 8);
        // Full jitter: many draws under one ceiling are spread, not constant.
        let draws: Vec<Duration> = (0..64)
            .map(|_| Backoff::new(Duration::from_secs(1), Duration::from_secs(1)).next_wait())
            .collect();
        let low = draws
            .iter()
            .filter(|d| **d < Duration::from_millis(500))
            .count();
        assert!((8..=56).contains(&low), "{low} of 64 below half");
        // A huge attempt count neither overflows nor passes the cap.
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        for _ in 0..100 {
            assert!(b.next_wait() < Duration::from_secs(10));
        }
    }
}
