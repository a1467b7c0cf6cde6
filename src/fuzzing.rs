//! Entry points for the fuzz targets in `fuzz/` (not a public API: hidden, may change at any
//! time). Thin wrappers over the crate's pure parsers, so the fuzz crate keeps building when
//! the core modules are private. Each wrapper feeds arbitrary bytes to one parser and checks
//! what must hold for any input; a violated property panics, which the fuzzer reports.

use std::time::Duration;

use time::OffsetDateTime;

use crate::config::ViewerConfig;
use crate::envelope::{self, MessageType};
use crate::ice_uri::{self, IceUriStyle};
use crate::sigv4::{self, Credentials, HeaderSignRequest, PresignRequest};
use crate::{control_plane, ice, payload, transport, validate};

/// Splits fuzz input into `n` text fields at 0xFF bytes (which UTF-8 never contains); bytes
/// that are not UTF-8 become U+FFFD, as every string reaches the core already validated.
fn fields(data: &[u8], n: usize) -> Vec<String> {
    let mut out: Vec<String> = data
        .splitn(n, |&b| b == 0xFF)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    out.resize(n, String::new());
    out
}

/// The received-frame decoder, and the sender's encoder on the decoded payload: whatever the
/// encoder accepts, the decoder gives back byte for byte.
pub fn envelope(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(Some(message)) = envelope::decode_incoming(text) else {
        return;
    };
    let Ok(frame) = envelope::encode_outgoing(MessageType::SdpOffer, &message.payload, None) else {
        return;
    };
    assert!(
        frame.len() <= envelope::MAX_ENCODED_PAYLOAD + 64,
        "{}",
        frame.len()
    );
    // The service echoes the payload under `messagePayload`; re-read it as the master would.
    let relayed = frame.replacen(
        "\"action\":\"SDP_OFFER\"",
        "\"messageType\":\"SDP_OFFER\"",
        1,
    );
    let back = envelope::decode_incoming(&relayed)
        .expect("an encoded frame decodes")
        .expect("an encoded frame is a protocol message");
    assert_eq!(back.payload, message.payload);
}

/// DescribeSignalingChannel answers: an ARN that is accepted is a valid ARN.
pub fn describe(data: &[u8]) {
    if let Ok(info) = control_plane::parse_describe(data) {
        validate::channel_arn(&info.arn).expect("a parsed ARN validates");
    }
}

/// GetSignalingChannelEndpoint answers: accepted endpoints are valid endpoints.
pub fn endpoints(data: &[u8]) {
    if let Ok(e) = control_plane::parse_endpoints(data) {
        validate::wss_endpoint(&e.wss).expect("a parsed WSS endpoint validates");
        validate::https_endpoint("https", &e.https).expect("a parsed HTTPS endpoint validates");
    }
}

/// Control-plane error bodies: never a panic, and the message shown is bounded.
pub fn error_body(data: &[u8]) {
    let (error_type, message) = transport::parse_error_body(data);
    if let Some(t) = error_type {
        assert!(!t.contains('#'), "{t:?}");
    }
    let is_object = matches!(
        serde_json::from_slice::<serde_json::Value>(data),
        Ok(serde_json::Value::Object(_))
    );
    if let (false, Some(m)) = (is_object, message) {
        // Plain text is shown trimmed, cut to 512 characters, and only when not empty.
        assert!(!m.is_empty());
        assert!(m.chars().count() <= 512, "{}", m.len());
    }
}

/// GetIceServerConfig answers: what is kept stays within the documented limits.
pub fn ice_server_config(data: &[u8]) {
    let Ok((servers, dropped)) = ice::parse_ice_server_config(data) else {
        return;
    };
    assert!(servers.len() <= ice::MAX_TURN_SERVERS);
    if dropped > 0 {
        assert_eq!(servers.len(), ice::MAX_TURN_SERVERS);
    }
    for s in &servers {
        assert!((1..=ice::MAX_URIS_PER_SERVER).contains(&s.uris.len()));
        for text in s.uris.iter().chain([&s.username]) {
            assert!((1..=ice::MAX_ICE_STRING_LEN).contains(&text.len()));
            assert!(text.bytes().all(|b| b.is_ascii_graphic()), "{text:?}");
        }
        assert!(!s.password().is_empty());
        assert!(u64::from(s.ttl_s) > ice::REFRESH_GRACE.as_secs());
        assert!(u64::from(s.ttl_s) <= ice::MAX_TTL_S);
        // Every kept URI formats for both stack styles; GStreamer's user info keeps exactly
        // one raw ':' (between the encoded user and password) before the '@'.
        for j in 0..s.uris.len() {
            let _ = ice_uri::format(s, j, IceUriStyle::WebRtc);
            if let Ok(Some(u)) = ice_uri::format(s, j, IceUriStyle::GStreamer) {
                if let Some(rest) = u.strip_prefix("turn://").or(u.strip_prefix("turns://")) {
                    let (userinfo, _) = rest.split_once('@').expect("turn URIs carry user info");
                    assert_eq!(userinfo.matches(':').count(), 1, "{userinfo:?}");
                }
            }
        }
    }
}

fn is_canonical_query(q: &str) -> bool {
    q.split('&').all(|pair| {
        let Some((k, v)) = pair.split_once('=') else {
            return false;
        };
        [k, v].iter().all(|s| {
            let b = s.as_bytes();
            let mut i = 0;
            while i < b.len() {
                match b[i] {
                    b'%' if i + 2 < b.len()
                        && b[i + 1].is_ascii_hexdigit()
                        && b[i + 2].is_ascii_hexdigit()
                        && !b[i + 1].is_ascii_lowercase()
                        && !b[i + 2].is_ascii_lowercase() =>
                    {
                        i += 3
                    }
                    c if c.is_ascii_alphanumeric() || b"-_.~".contains(&c) => i += 1,
                    _ => return false,
                }
            }
            true
        })
    })
}

/// The SigV4 canonicaliser (presigned WSS URL and header signing) on arbitrary hosts, paths,
/// parameters and credentials: the query is strictly RFC 3986-encoded, sorted, and the
/// signature is 64 hex digits.
pub fn presign(data: &[u8]) {
    let f = fields(data, 9);
    let creds = Credentials::new(&f[0], &f[1], (!f[2].is_empty()).then_some(f[2].as_str()));
    let params = [
        (f[5].as_str(), f[6].as_str()),
        ("X-Amz-ClientId", f[7].as_str()),
    ];
    let seconds = i64::from(u32::from_le_bytes(
        f[8].as_bytes()
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .unwrap_or([0; 4]),
    ));
    let time = OffsetDateTime::from_unix_timestamp(seconds).expect("u32 seconds are a valid date");
    let presigned = sigv4::presign(
        &creds,
        &PresignRequest {
            host: &f[3],
            path: &f[4],
            region: "us-west-2",
            service: sigv4::SERVICE,
            time,
            expires_s: 299,
            params: &params,
        },
    );
    assert_eq!(presigned.signature.len(), 64);
    assert!(presigned.signature.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(
        is_canonical_query(&presigned.query),
        "{:?}",
        presigned.query.as_str()
    );
    let names: Vec<&str> = presigned
        .query
        .split('&')
        .filter_map(|p| p.split_once('=').map(|(k, _)| k))
        .collect();
    let signed = &names[..names.len() - 1];
    assert!(signed.windows(2).all(|w| w[0] <= w[1]), "{names:?}");
    assert_eq!(names.last(), Some(&"X-Amz-Signature"));

    let headers = [("host", f[3].as_str()), (f[5].as_str(), f[6].as_str())];
    let auth = sigv4::authorization_header(
        &creds,
        &HeaderSignRequest {
            method: "POST",
            path: &f[4],
            region: "us-west-2",
            service: sigv4::SERVICE,
            time,
            headers: &headers,
            payload: f[7].as_bytes(),
        },
    );
    assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential="), "{auth}");
}

/// Configuration validation on arbitrary field values: never a panic; an accepted
/// configuration has fields that each validate on their own, and a refusal names a field.
pub fn config(data: &[u8]) {
    let f = fields(data, 10);
    let flags = f[9].as_bytes();
    let flag = |i: usize| flags.get(i).copied().unwrap_or(0);
    let mut cfg = ViewerConfig::new(
        &f[0],
        &f[1],
        &f[2],
        &f[3],
        Credentials::new(&f[4], &f[5], (flag(0) & 1 == 1).then_some(f[6].as_str())),
    );
    if flag(0) & 2 == 2 {
        cfg.channel_name = Some(f[7].clone());
    }
    if flag(0) & 4 == 4 {
        cfg.control_plane_url = Some(f[8].clone());
    }
    cfg.presign_expires_s = u32::from_le_bytes([flag(1), flag(2), flag(3), flag(4)]);
    cfg.ping_interval = Duration::from_millis(u64::from(flag(5)) * 10);
    cfg.connect_timeout = Duration::from_millis(u64::from(flag(6)));
    cfg.send_timeout = Duration::from_millis(u64::from(flag(7)));
    match cfg.validate() {
        Ok(endpoint) => {
            validate::region(&cfg.region).expect("accepted region");
            validate::client_id(&cfg.client_id).expect("accepted client id");
            assert_eq!(endpoint.is_some(), !cfg.wss_endpoint.is_empty());
        }
        Err(e) => assert!(!e.message.is_empty()),
    }
}

/// The payload helpers: whatever is read back is built again to the same fields.
pub fn payload(data: &[u8]) {
    if let Ok(sdp) = payload::answer_sdp(data) {
        let offer = payload::offer(&sdp).expect("a non-empty SDP builds an offer");
        let answer = offer.replacen("\"offer\"", "\"answer\"", 1);
        assert_eq!(payload::answer_sdp(answer.as_bytes()).ok(), Some(sdp));
    }
    if let Ok(c) = payload::parse_candidate(data) {
        match payload::candidate(&c) {
            Ok(json) => assert_eq!(payload::parse_candidate(json.as_bytes()).ok(), Some(c)),
            Err(_) => assert!(c.sdp_mid.is_none() && c.sdp_mline_index.is_none()),
        }
    }
}
