//! Checks every value against the service's documented constraints before any network I/O,
//! so a typo costs a clear local error instead of a round trip and an opaque 400.
//!
//! The patterns are tiny and fixed, so they are matched by hand rather than by pulling a regex
//! engine (a few hundred KB) into firmware images.

use crate::error::{Error, Result};

/// Longest client id, correlation id and sender id the service accepts.
pub const MAX_ID_LEN: usize = 256;
/// Longest channel ARN the service accepts.
pub const MAX_ARN_LEN: usize = 1024;
/// Longest `X-Amz-Expires` SigV4 allows (7 days).
pub const MAX_PRESIGN_EXPIRES_S: u32 = 604_800;

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// `[a-zA-Z0-9_.-]{1,256}`, the shape of every id in the protocol.
fn check_id(field: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(Error::invalid(
            field,
            format!("{} characters, at most {MAX_ID_LEN} allowed", value.len()),
        ));
    }
    if let Some(c) = value.chars().find(|c| !is_id_char(*c)) {
        return Err(Error::invalid(
            field,
            format!("character {c:?} not allowed (only a-z A-Z 0-9 _ . -)"),
        ));
    }
    Ok(())
}

/// ConnectAsViewer's `X-Amz-ClientId`: an id that must not start with `AWS_` in any case.
pub fn client_id(value: &str) -> Result<()> {
    check_id("client_id", value)?;
    if value.len() >= 4 && value[..4].eq_ignore_ascii_case("AWS_") {
        return Err(Error::invalid(
            "client_id",
            "must not start with \"AWS_\" (in any letter case); the prefix is reserved",
        ));
    }
    Ok(())
}

pub fn correlation_id(value: &str) -> Result<()> {
    check_id("correlation_id", value)
}

pub fn channel_name(value: &str) -> Result<()> {
    check_id("channel_name", value)
}

/// `arn:<partition>:kinesisvideo:<region>:<account>:<type>/<name>/<creation ms>`, the
/// control-plane model's pattern (any partition, so `aws-cn` and `aws-us-gov` work too).
pub fn channel_arn(value: &str) -> Result<()> {
    const FIELD: &str = "channel_arn";
    const SHAPE: &str = "expected arn:aws:kinesisvideo:<region>:<account>:channel/<name>/<number>";
    if value.is_empty() {
        return Err(Error::invalid(FIELD, "must not be empty"));
    }
    if value.len() > MAX_ARN_LEN {
        return Err(Error::invalid(
            FIELD,
            format!("{} characters, at most {MAX_ARN_LEN} allowed", value.len()),
        ));
    }
    let bad = |what: &str| Error::invalid(FIELD, format!("{what}; {SHAPE}"));
    let mut parts = value.splitn(6, ':');
    let (Some(arn), Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad("too few ':'-separated parts"));
    };
    let all = |s: &str, f: fn(char) -> bool| !s.is_empty() && s.chars().all(f);
    if arn != "arn" {
        return Err(bad("must start with \"arn:\""));
    }
    if !all(partition, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
    }) {
        return Err(bad("bad partition"));
    }
    if service != "kinesisvideo" {
        return Err(bad("service must be \"kinesisvideo\""));
    }
    if !all(region, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
    }) {
        return Err(bad("bad region"));
    }
    if !all(account, |c| c.is_ascii_digit()) {
        return Err(bad("account must be digits"));
    }
    let mut res = resource.splitn(3, '/');
    let (Some(kind), Some(name), Some(created)) = (res.next(), res.next(), res.next()) else {
        return Err(bad("resource must be <type>/<name>/<number>"));
    };
    if !all(kind, |c| c.is_ascii_lowercase()) {
        return Err(bad("resource type must be lower-case letters"));
    }
    if !all(name, is_id_char) {
        return Err(bad("channel name may hold only a-z A-Z 0-9 _ . -"));
    }
    if !all(created, |c| c.is_ascii_digit()) {
        return Err(bad("must end with the channel's creation number"));
    }
    Ok(())
}

/// Region names such as `us-west-2` or `cn-north-1`.
pub fn region(value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid("region", "must not be empty"));
    }
    if value.len() > 64
        || !value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(Error::invalid(
            "region",
            format!("{value:?} is not a region name (like \"us-west-2\")"),
        ));
    }
    Ok(())
}

/// Key material: printable ASCII without spaces. The value is never echoed back.
pub fn secret_like(field: &str, value: &str, max_len: usize) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.len() > max_len {
        return Err(Error::invalid(
            field,
            format!("{} characters, at most {max_len} allowed", value.len()),
        ));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            field,
            "must be printable ASCII without spaces (check for a trailing newline)",
        ));
    }
    Ok(())
}

pub fn presign_expires(value: u32) -> Result<()> {
    if value == 0 || value > MAX_PRESIGN_EXPIRES_S {
        return Err(Error::invalid(
            "presign_expires_s",
            format!("{value} is outside 1..={MAX_PRESIGN_EXPIRES_S}"),
        ));
    }
    Ok(())
}

/// A parsed `wss://host[:port][/path]` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address to connect to (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// The `Host` header value, exactly as written in the URL (port included when given);
    /// this is also the host that gets signed.
    pub host_header: String,
    /// Path, "/" when the URL has none.
    pub path: String,
}

pub fn wss_endpoint(value: &str) -> Result<Endpoint> {
    endpoint("wss_endpoint", "wss", "ws", value)
}

/// A parsed `https://host[:port][/path]` URL (control plane, GetIceServerConfig endpoint).
/// `field` names the config value or the response member it came from.
pub fn https_endpoint(field: &str, value: &str) -> Result<Endpoint> {
    endpoint(field, "https", "http", value)
}

/// `<scheme>://host[:port][/path]`; the plain-text `insecure` scheme gets a pointed refusal.
fn endpoint(field: &str, scheme: &str, insecure: &str, value: &str) -> Result<Endpoint> {
    const MAX_ENDPOINT_LEN: usize = 2048;
    if value.len() > MAX_ENDPOINT_LEN {
        return Err(Error::invalid(
            field,
            format!(
                "{} characters, at most {MAX_ENDPOINT_LEN} allowed",
                value.len()
            ),
        ));
    }
    let Some(rest) = value
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
    else {
        let why = if value.starts_with(&format!("{insecure}://")) {
            format!("must use {scheme}:// (TLS is required; plain {insecure}:// is refused)")
        } else {
            format!("{value:?} must start with {scheme}://")
        };
        return Err(Error::invalid(field, why));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err(Error::invalid(field, "must not contain user information"));
    }
    if path.contains(['?', '#']) || authority.contains(['?', '#']) {
        return Err(Error::invalid(
            field,
            "must not contain a query or fragment (the library adds what it needs)",
        ));
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(field, "path must be printable ASCII"));
    }
    let (host, port) = split_host_port(authority).map_err(|why| Error::invalid(field, why))?;
    Ok(Endpoint {
        host,
        port: port.unwrap_or(443),
        host_header: authority.to_owned(),
        path: path.to_owned(),
    })
}

fn split_host_port(authority: &str) -> std::result::Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']').ok_or("unclosed '[' in IPv6 address")?;
        let host = &rest[..end];
        match &rest[end + 1..] {
            "" => (host, None),
            p => (
                host,
                Some(p.strip_prefix(':').ok_or("junk after IPv6 address")?),
            ),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("host is empty".into());
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
    {
        return Err(format!(
            "host {host:?} has characters a host name cannot have"
        ));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("port {p:?} is not a number in 1..=65535")),
        },
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn rejects(r: Result<()>, field: &str) {
        let e = r.expect_err("must be refused");
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(
            e.message.starts_with(field),
            "{:?} should name {field}",
            e.message
        );
    }

    const ARN: &str =
        "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo-channel/1234567890123";

    #[test]
    fn arn_table() {
        channel_arn(ARN).unwrap();
        channel_arn("arn:aws-cn:kinesisvideo:cn-north-1:1:channel/a/1").unwrap();
        channel_arn("arn:aws-us-gov:kinesisvideo:us-gov-west-1:1:channel/a.b_c-d/0").unwrap();
        for bad in [
            "",
            "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo",
            "arn:aws:kinesis:us-west-2:123456789012:channel/demo/1",
            "arx:aws:kinesisvideo:us-west-2:1:channel/a/1",
            "arn:AWS:kinesisvideo:us-west-2:1:channel/a/1",
            "arn:aws:kinesisvideo:US-WEST-2:1:channel/a/1",
            "arn:aws:kinesisvideo:us-west-2:12a:channel/a/1",
            "arn:aws:kinesisvideo:us-west-2:1:Channel/a/1",
            "arn:aws:kinesisvideo:us-west-2:1:channel/a b/1",
            "arn:aws:kinesisvideo:us-west-2:1:channel//1",
            "arn:aws:kinesisvideo:us-west-2:1:channel/a/1x",
            "arn:aws:kinesisvideo:us-west-2:1:channel/a/1/2",
            "arn:aws:kinesisvideo::1:channel/a/1",
        ] {
            rejects(channel_arn(bad), "channel_arn");
        }
    }

    #[test]
    fn arn_length_bound() {
        let prefix = "arn:aws:kinesisvideo:us-west-2:1:channel/";
        let fill = |total: usize| format!("{prefix}{}/1", "a".repeat(total - prefix.len() - 2));
        channel_arn(&fill(1024)).unwrap();
        rejects(channel_arn(&fill(1025)), "channel_arn");
    }

    #[test]
    fn client_id_table() {
        client_id("viewer-1").unwrap();
        client_id("a").unwrap();
        client_id(&"x".repeat(256)).unwrap();
        client_id("AWS").unwrap();
        client_id("AWSX_1").unwrap();
        client_id("my_AWS_id").unwrap();
        rejects(client_id(""), "client_id");
        rejects(client_id(&"x".repeat(257)), "client_id");
        rejects(client_id("viewer 1"), "client_id");
        rejects(client_id("viewer/1"), "client_id");
        rejects(client_id("vïewer"), "client_id");
        for reserved in ["AWS_x", "aws_x", "Aws_x", "aWs_", "AWS_"] {
            rejects(client_id(reserved), "client_id");
        }
    }

    #[test]
    fn correlation_id_table() {
        correlation_id("1697058567743").unwrap();
        correlation_id("AWS_is_fine_here").unwrap();
        correlation_id(&"c".repeat(256)).unwrap();
        rejects(correlation_id(""), "correlation_id");
        rejects(correlation_id(&"c".repeat(257)), "correlation_id");
        rejects(correlation_id("a+b"), "correlation_id");
    }

    #[test]
    fn region_table() {
        region("us-west-2").unwrap();
        region("cn-north-1").unwrap();
        rejects(region(""), "region");
        rejects(region("US-WEST-2"), "region");
        rejects(region("us west"), "region");
        rejects(region(&"a".repeat(65)), "region");
    }

    #[test]
    fn secret_like_table() {
        secret_like(
            "secret_access_key",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            128,
        )
        .unwrap();
        rejects(
            secret_like("secret_access_key", "", 128),
            "secret_access_key",
        );
        rejects(
            secret_like("secret_access_key", "abc\n", 128),
            "secret_access_key",
        );
        rejects(secret_like("access_key_id", "AK ID", 128), "access_key_id");
        rejects(
            secret_like("access_key_id", &"A".repeat(129), 128),
            "access_key_id",
        );
        let e = secret_like("secret_access_key", "top secret", 128).unwrap_err();
        assert!(
            !e.message.contains("top secret"),
            "the value must never be echoed"
        );
    }

    #[test]
    fn presign_expires_bounds() {
        presign_expires(1).unwrap();
        presign_expires(604_800).unwrap();
        rejects(presign_expires(0), "presign_expires_s");
        rejects(presign_expires(604_801), "presign_expires_s");
    }

    #[test]
    fn endpoint_table() {
        let e = wss_endpoint("wss://v-1234abcd.kinesisvideo.us-west-2.amazonaws.com").unwrap();
        assert_eq!(e.host, "v-1234abcd.kinesisvideo.us-west-2.amazonaws.com");
        assert_eq!((e.port, e.path.as_str()), (443, "/"));
        assert_eq!(e.host_header, e.host);
        let e = wss_endpoint("wss://127.0.0.1:8443/signal/path").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 8443));
        assert_eq!(
            (e.host_header.as_str(), e.path.as_str()),
            ("127.0.0.1:8443", "/signal/path")
        );
        let e = wss_endpoint("wss://[::1]:9000/").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.host_header.as_str()),
            ("::1", 9000, "[::1]:9000")
        );
        for bad in [
            "",
            "https://x",
            "ws://x",
            "wss://",
            "wss://:443",
            "wss://h:0",
            "wss://h:99999",
            "wss://h:x",
            "wss://u@h",
            "wss://h/?a=b",
            "wss://h#f",
            "wss://h h",
            "wss://[::1",
        ] {
            rejects(wss_endpoint(bad).map(|_| ()), "wss_endpoint");
        }
    }
}
