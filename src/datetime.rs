//! The four date layouts the protocol uses, written and read over `time`'s calendar types.
//! They are fixed layouts of digits: `time`'s format-description engine cost ~22 KB of the
//! stripped library for them (measured with `cargo bloat`), these functions a tenth of that.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// `yyyymmddTHHMMSSZ`, the format of `X-Amz-Date`.
pub(crate) fn format_amz(t: OffsetDateTime) -> String {
    let (y, mo, d, h, mi, s) = civil(t);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// RFC 3339 in UTC: `2026-12-02T07:00:00Z`, or with milliseconds `2026-12-02T07:00:00.123Z`.
pub(crate) fn format_rfc3339(t: OffsetDateTime, millis: bool) -> String {
    let (y, mo, d, h, mi, s) = civil(t);
    let mut out = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
    if millis {
        out.push_str(&format!(".{:03}", t.millisecond()));
    }
    out.push('Z');
    out
}

/// Year, month, day, hour, minute, second in UTC.
fn civil(t: OffsetDateTime) -> (i32, u8, u8, u8, u8, u8) {
    let t = t.to_offset(UtcOffset::UTC);
    let (y, mo, d) = (t.year(), u8::from(t.month()), t.day());
    (y, mo, d, t.hour(), t.minute(), t.second())
}

/// `20231107T044734Z`.
pub(crate) fn parse_amz(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    utc(
        digits(s, 0, 4)? as i32,
        digits(s, 4, 2)?,
        digits(s, 6, 2)?,
        (digits(s, 9, 2)?, digits(s, 11, 2)?, digits(s, 13, 2)?),
        0,
        0,
    )
}

/// RFC 3339 (what credential endpoints send as `expiration`): `2026-12-02T07:00:00Z`, with an
/// optional fraction of a second and a `Z` or `±hh:mm` offset.
pub(crate) fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let mut rest = s.get(19..)?;
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > 9 {
            return None;
        }
        nanos = digits(frac, 0, n)? * 10u32.pow(9 - n as u32);
        rest = &frac[n..];
    }
    let offset_s = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let minutes = digits(rest, 1, 2)? * 60 + digits(rest, 4, 2)?;
            let s = i32::try_from(minutes * 60).ok()?;
            if *sign == b'-' { -s } else { s }
        }
        _ => return None,
    };
    utc(
        digits(s, 0, 4)? as i32,
        digits(s, 5, 2)?,
        digits(s, 8, 2)?,
        (digits(s, 11, 2)?, digits(s, 14, 2)?, digits(s, 17, 2)?),
        nanos,
        offset_s,
    )
}

/// RFC 7231 IMF-fixdate, e.g. `Tue, 24 Nov 2026 09:12:09 GMT`.
pub(crate) fn parse_http(value: &str) -> Option<OffsetDateTime> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let s = value.trim();
    let b = s.as_bytes();
    if b.len() != 29
        || s.get(3..5) != Some(", ")
        || s.get(25..) != Some(" GMT")
        || [b[7], b[11], b[16], b[19], b[22]] != [b' ', b' ', b' ', b':', b':']
    {
        return None;
    }
    let weekday = DAYS.iter().position(|d| Some(*d) == s.get(..3))?;
    let month = MONTHS.iter().position(|m| Some(*m) == s.get(8..11))? as u32 + 1;
    let t = utc(
        digits(s, 12, 4)? as i32,
        month,
        digits(s, 5, 2)?,
        (digits(s, 17, 2)?, digits(s, 20, 2)?, digits(s, 23, 2)?),
        0,
        0,
    )?;
    // A weekday that does not match the date means a garbled header.
    (t.weekday().number_days_from_monday() as usize == weekday).then_some(t)
}

/// `len` ASCII digits of `s` from `at`, as a number.
fn digits(s: &str, at: usize, len: usize) -> Option<u32> {
    let d = s.get(at..at + len)?;
    if !d.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    d.parse().ok()
}

fn utc(
    year: i32,
    month: u32,
    day: u32,
    (hour, minute, second): (u32, u32, u32),
    nanos: u32,
    offset_s: i32,
) -> Option<OffsetDateTime> {
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = Date::from_calendar_date(year, month, u8::try_from(day).ok()?).ok()?;
    let time = Time::from_hms_nano(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
        nanos,
    )
    .ok()?;
    let offset = UtcOffset::from_whole_seconds(offset_s).ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_offset(offset)
            .to_offset(UtcOffset::UTC),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn amz_dates() {
        let t = datetime!(2023-11-07 04:47:34 UTC);
        assert_eq!(format_amz(t), "20231107T044734Z");
        assert_eq!(parse_amz("20231107T044734Z"), Some(t));
        assert_eq!(
            format_amz(datetime!(2023-11-07 05:47:34 +01:00)),
            "20231107T044734Z"
        );
        for bad in [
            "",
            "20231107T044734",
            "20231307T044734Z",
            "2023-1107T044734Z",
            "20231107T246000Z",
        ] {
            assert_eq!(parse_amz(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_dates() {
        let t = datetime!(2026-12-02 07:00:00 UTC);
        assert_eq!(format_rfc3339(t, false), "2026-12-02T07:00:00Z");
        assert_eq!(
            format_rfc3339(datetime!(2026-12-02 07:00:00.1234 UTC), true),
            "2026-12-02T07:00:00.123Z"
        );
        assert_eq!(parse_rfc3339("2026-12-02T07:00:00Z"), Some(t));
        assert_eq!(parse_rfc3339("2026-12-02t07:00:00z"), Some(t));
        assert_eq!(parse_rfc3339("2026-12-02T08:30:00+01:30"), Some(t));
        assert_eq!(parse_rfc3339("2026-12-02T05:00:00-02:00"), Some(t));
        assert_eq!(
            parse_rfc3339("2026-12-02T07:00:00.5Z"),
            Some(datetime!(2026-12-02 07:00:00.5 UTC))
        );
        assert_eq!(
            parse_rfc3339("2026-12-02T07:00:00.123456789Z"),
            Some(datetime!(2026-12-02 07:00:00.123456789 UTC))
        );
        for bad in [
            "",
            "2026-12-02",
            "2026-12-02T07:00:00",
            "2026-12-02T07:00:00.Z",
            "2026-12-02T07:00:00.1234567890Z",
            "2026-02-30T07:00:00Z",
            "2026-12-02T07:00:00+0100",
            "2026-12-02T07:00:00 Z",
            "２026-12-02T07:00:00Z",
            "2026-12-02T07:00:0€Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_dates() {
        let t = parse_http("Tue, 24 Nov 2026 09:12:09 GMT").unwrap();
        assert_eq!(t.unix_timestamp(), 1_795_511_529);
        assert_eq!(parse_http(" Tue, 24 Nov 2026 09:12:09 GMT\r\n"), Some(t));
        for bad in [
            "yesterday",
            "Wed, 24 Nov 2026 09:12:09 GMT",
            "Tue, 24 Foo 2026 09:12:09 GMT",
            "Tue, 24 Nov 2026 09:12:09 UTC",
            "Tue, 31 Nov 2026 09:12:09 GMT",
            "Tuesday, 24-Nov-26 09:12:09 GMT",
            "Tu€, 24 Nov 2026 09:12:09 GMT",
            "Tue, 24 N€ 2026 09:12:09 GMT",
        ] {
            assert_eq!(parse_http(bad), None, "{bad}");
        }
    }
}
