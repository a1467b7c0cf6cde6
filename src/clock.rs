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

    /// After a refused request: whether to sign again and retry once, and with which offset.
    ///
    /// A 403 whose `Date` is a minute or more from this clock corrects it; so does one whose
    /// message says `Signature expired` / `Signature not yet current` (the control plane's
    /// `InvalidSignatureException`, protocol.md §11.1), whatever its error type, taking the
    /// server's time from the `Date` header or, without one, from the message. Such a message
    /// is always worth one retry with a fresh signature, even when the clock was right.
    pub(crate) fn after_refusal(
        &self,
        status: Option<u16>,
        server_date: Option<OffsetDateTime>,
        message: &str,
    ) -> Option<i64> {
        if status != Some(403) {
            return None;
        }
        let says_skew =
            message.contains("Signature expired") || message.contains("Signature not yet current");
        let server_now =
            server_date.or_else(|| says_skew.then(|| server_time_in_message(message)).flatten());
        let corrected = server_now.and_then(|t| self.correct_from(t));
        (corrected.is_some() || says_skew).then(|| self.offset_s())
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

/// The server's "now" in a SigV4 time refusal:
/// - `Signature expired: <sig> is now earlier than <now-5min> (<now> - 5 min.)`
/// - `Signature not yet current: <sig> is still later than <now+5min> (<now> + 5 min.)`
/// - presigned URLs: `Signature expired: <sig+expires> is now earlier than <now> (<sig> + <n> s.)`
fn server_time_in_message(message: &str) -> Option<OffsetDateTime> {
    let stamps: Vec<OffsetDateTime> = message
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter_map(parse_amz_date)
        .collect();
    let minutes_form = message.contains(" min.)");
    match stamps.as_slice() {
        [_, _, now] if minutes_form => Some(*now),
        [_, now, _] => Some(*now),
        _ => None,
    }
}

/// `20231107T044734Z`.
fn parse_amz_date(s: &str) -> Option<OffsetDateTime> {
    crate::datetime::parse_amz(s)
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

    #[test]
    fn server_time_from_every_refusal_message() {
        use time::macros::datetime;
        let header = "Signature expired: 20231107T044734Z is now earlier than 20231107T045305Z \
                      (20231107T045805Z - 5 min.)";
        assert_eq!(
            server_time_in_message(header),
            Some(datetime!(2023-11-07 04:58:05 UTC))
        );
        let early = "Signature not yet current: 20231107T050000Z is still later than \
                     20231107T045000Z (20231107T044500Z + 5 min.)";
        assert_eq!(
            server_time_in_message(early),
            Some(datetime!(2023-11-07 04:45:00 UTC))
        );
        let presigned = "Signature expired: 20231107T045000Z is now earlier than \
                         20231107T050000Z (20231107T044501Z + 299 s.)";
        assert_eq!(
            server_time_in_message(presigned),
            Some(datetime!(2023-11-07 05:00:00 UTC))
        );
        assert_eq!(server_time_in_message("Signature expired"), None);
    }

    #[test]
    fn refusals_worth_a_retry() {
        let clock = Clock::new();
        let far = OffsetDateTime::now_utc() + time::Duration::minutes(20);
        // Only 403s.
        assert_eq!(clock.after_refusal(Some(400), Some(far), ""), None);
        assert_eq!(clock.after_refusal(None, Some(far), ""), None);
        // A 403 with a near Date and an unrelated message: a real denial.
        let near = Some(OffsetDateTime::now_utc());
        assert_eq!(
            clock.after_refusal(Some(403), near, "User is not authorized"),
            None
        );
        // The message alone asks for a retry, even when the clock is right.
        assert_eq!(
            clock.after_refusal(Some(403), near, "Signature expired: x"),
            Some(0)
        );
        // A far Date corrects, whatever the message.
        let offset = clock.after_refusal(Some(403), Some(far), "denied").unwrap();
        assert!((offset - 1200).abs() <= 2, "{offset}");
        // No Date: the server's time comes from the message.
        let clock = Clock::new();
        let stamp = |t: OffsetDateTime| {
            format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                t.year(),
                t.month() as u8,
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        };
        let now = OffsetDateTime::now_utc() - time::Duration::minutes(6);
        let message = format!(
            "Signature not yet current: {} is still later than {} ({} + 5 min.)",
            stamp(OffsetDateTime::now_utc()),
            stamp(now + time::Duration::minutes(5)),
            stamp(now)
        );
        let offset = clock.after_refusal(Some(403), None, &message).unwrap();
        assert!((offset + 360).abs() <= 2, "{offset}");
    }
}
