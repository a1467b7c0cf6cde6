//! ICE server URIs in the form each WebRTC stack takes them (webrtc-stacks.md).
//!
//! KVS returns RFC 7064/7065 URIs (`stun:host:port`, `turn:host:port?transport=udp`,
//! `turns:host:port?transport=udp|tcp`) with the credentials apart. Two forms are in use:
//!
//! * [`IceUriStyle::WebRtc`] — libwebrtc, browsers, libdatachannel, the KVS C SDK: the URI as
//!   the service wrote it, user name and credential passed separately.
//! * [`IceUriStyle::GStreamer`] — webrtcbin / libnice: `stun://host:port`,
//!   `turn://user:password@host:port?transport=udp`, `turns://user:password@host:port`, the
//!   user name and password percent-encoded (KVS user names hold `:` `/` `+` `=`, and
//!   webrtcbin splits the user info at the first raw `:`).
//!
//! `turns:` with `transport=udp` (TURN over DTLS) is something neither stack can do: both run
//! `turns:` over TLS/TCP. When the same server also lists `turns:` over TCP for that host, the
//! URI is a duplicate and is skipped (`None`); otherwise it becomes the TLS/TCP URI. libnice
//! has no STUN over TLS, so `stuns:` is skipped in the GStreamer style.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::{Error, ErrorKind, Result};
use crate::ice::IceServer;

/// Everything but RFC 3986's unreserved characters is encoded in the user info.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The form a WebRTC stack wants its ICE server URIs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IceUriStyle {
    /// libwebrtc / browser style: `turn:host:port?transport=udp`, credentials apart.
    WebRtc,
    /// GStreamer webrtcbin / libnice style: `turn://user:pass@host:port?transport=udp`.
    GStreamer,
}

/// One KVS ICE URI taken apart: `scheme:host:port[?query]`.
struct Parts<'a> {
    scheme: &'a str,
    host_port: &'a str,
    query: Option<&'a str>,
}

impl<'a> Parts<'a> {
    fn parse(uri: &'a str) -> Option<Parts<'a>> {
        let (scheme, rest) = uri.split_once(':')?;
        if !matches!(scheme, "stun" | "stuns" | "turn" | "turns") {
            return None;
        }
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (host_port, query) = match rest.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (rest, None),
        };
        (!host_port.is_empty()).then_some(Parts {
            scheme,
            host_port,
            query,
        })
    }

    fn transport(&self) -> Option<&'a str> {
        self.query?
            .split('&')
            .find_map(|kv| kv.strip_prefix("transport="))
    }

    fn is_turns_over(&self, transport: &str) -> bool {
        self.scheme == "turns"
            && self
                .transport()
                .is_some_and(|t| t.eq_ignore_ascii_case(transport))
    }
}

/// URI `uri_index` of `server` in `style`; `None` when the stack cannot use it or it repeats
/// another URI of the same server (see the module documentation).
pub(crate) fn format(
    server: &IceServer,
    uri_index: usize,
    style: IceUriStyle,
) -> Result<Option<String>> {
    let uri = server.uris.get(uri_index).ok_or_else(|| {
        Error::invalid(
            "uri_index",
            format!(
                "{uri_index} is past the {} URIs of this server",
                server.uris.len()
            ),
        )
    })?;
    let parts = Parts::parse(uri).ok_or_else(|| {
        Error::new(
            ErrorKind::Protocol,
            format!("ICE URI {uri:?} is not scheme:host:port[?query]"),
        )
    })?;
    // TURN over DTLS: no stack does it; TLS/TCP is what they do with `turns:`.
    let mut tls_over_tcp = false;
    if parts.is_turns_over("udp") {
        let has_tcp_twin = server.uris.iter().filter_map(|u| Parts::parse(u)).any(|p| {
            p.scheme == "turns"
                && p.host_port == parts.host_port
                && (p.is_turns_over("tcp") || p.transport().is_none())
        });
        if has_tcp_twin {
            return Ok(None);
        }
        tls_over_tcp = true;
    }
    Ok(match style {
        IceUriStyle::WebRtc if tls_over_tcp => {
            Some(format!("turns:{}?transport=tcp", parts.host_port))
        }
        IceUriStyle::WebRtc => Some(uri.clone()),
        IceUriStyle::GStreamer => match parts.scheme {
            "stun" => Some(format!("stun://{}", parts.host_port)),
            "stuns" => None,
            scheme => {
                let user = utf8_percent_encode(&server.username, USERINFO);
                let password = utf8_percent_encode(server.password(), USERINFO);
                // libnice runs `turns` over TLS/TCP whatever the transport says.
                let query = match (scheme, parts.query) {
                    ("turn", Some(q)) => format!("?{q}"),
                    _ => String::new(),
                };
                Some(format!(
                    "{scheme}://{user}:{password}@{}{query}",
                    parts.host_port
                ))
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "35-90-63-38.t-490d1050.kinesisvideo.us-west-2.amazonaws.com:443";

    /// Through the real parser: the core has no other way to make a TURN server.
    fn server(uris: &[&str]) -> IceServer {
        let body = serde_json::json!({"IceServerList": [{
            "Uris": uris,
            "Username": "1700000300:djE6YXJu/a+b=",
            "Password": "pa:ss/w+rd=@%?",
            "Ttl": 300,
        }]});
        let (mut servers, _) =
            crate::ice::parse_ice_server_config(body.to_string().as_bytes()).unwrap();
        servers.remove(0)
    }

    fn all(s: &IceServer, style: IceUriStyle) -> Vec<Option<String>> {
        (0..s.uris.len())
            .map(|j| format(s, j, style).unwrap())
            .collect()
    }

    fn kvs_server() -> IceServer {
        server(&[
            &format!("turn:{HOST}?transport=udp"),
            &format!("turns:{HOST}?transport=udp"),
            &format!("turns:{HOST}?transport=tcp"),
        ])
    }

    #[test]
    fn webrtc_style_keeps_the_uri_and_skips_turn_over_dtls() {
        assert_eq!(
            all(&kvs_server(), IceUriStyle::WebRtc),
            [
                Some(format!("turn:{HOST}?transport=udp")),
                None,
                Some(format!("turns:{HOST}?transport=tcp")),
            ]
        );
    }

    #[test]
    fn gstreamer_style_percent_encodes_the_credentials() {
        let user = "1700000300%3AdjE6YXJu%2Fa%2Bb%3D";
        let pass = "pa%3Ass%2Fw%2Brd%3D%40%25%3F";
        assert_eq!(
            all(&kvs_server(), IceUriStyle::GStreamer),
            [
                Some(format!("turn://{user}:{pass}@{HOST}?transport=udp")),
                None,
                Some(format!("turns://{user}:{pass}@{HOST}")),
            ]
        );
    }

    #[test]
    fn a_lone_turns_over_udp_becomes_tls_over_tcp() {
        let s = server(&[
            &format!("turns:{HOST}?transport=udp"),
            "turns:other:443?transport=tcp",
        ]);
        assert_eq!(
            format(&s, 0, IceUriStyle::WebRtc).unwrap(),
            Some(format!("turns:{HOST}?transport=tcp"))
        );
        let g = format(&s, 0, IceUriStyle::GStreamer).unwrap().unwrap();
        assert!(
            g.starts_with("turns://") && g.ends_with(&format!("@{HOST}")),
            "{g}"
        );
    }

    #[test]
    fn stun_and_odd_uris() {
        let stun = crate::ice::stun_server("us-west-2");
        assert_eq!(
            format(&stun, 0, IceUriStyle::GStreamer).unwrap().unwrap(),
            "stun://stun.kinesisvideo.us-west-2.amazonaws.com:443"
        );
        assert_eq!(
            format(&stun, 0, IceUriStyle::WebRtc).unwrap().unwrap(),
            "stun:stun.kinesisvideo.us-west-2.amazonaws.com:443"
        );
        let s = server(&["stuns:h:443", "turn:h:3478", "turn://h:1?transport=tcp"]);
        assert_eq!(format(&s, 0, IceUriStyle::GStreamer).unwrap(), None);
        assert_eq!(
            format(&s, 0, IceUriStyle::WebRtc).unwrap().unwrap(),
            "stuns:h:443"
        );
        let g = all(&s, IceUriStyle::GStreamer);
        assert!(g[1].as_deref().unwrap().ends_with("@h:3478"), "{g:?}");
        assert!(
            g[2].as_deref().unwrap().ends_with("@h:1?transport=tcp"),
            "{g:?}"
        );
        let e = format(&s, 3, IceUriStyle::WebRtc).unwrap_err();
        assert!(e.to_string().contains("uri_index"), "{e}");
    }
}
