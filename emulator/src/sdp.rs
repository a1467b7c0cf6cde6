//! The built-in master's SDP answer and ICE candidates.

use crate::config::{random_bytes, random_string};

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// One media section of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    /// `audio`, `video`, `application`, …
    pub media: String,
    /// Port in the offer (0 = rejected).
    pub port: String,
    /// Transport protocol.
    pub proto: String,
    /// Formats (payload types, or `webrtc-datachannel`).
    pub formats: Vec<String>,
    /// `a=mid:` value (index as a string when absent).
    pub mid: String,
    /// Offer direction (`sendrecv` if absent).
    pub direction: String,
    /// The section's attribute lines (without `a=`).
    pub attributes: Vec<String>,
}

/// Parses the media sections of an SDP.
pub fn media_sections(sdp: &str) -> Vec<MediaSection> {
    let mut out: Vec<MediaSection> = Vec::new();
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            let mut parts = m.split_whitespace();
            let media = parts.next().unwrap_or("").to_string();
            let port = parts.next().unwrap_or("9").to_string();
            let proto = parts.next().unwrap_or("UDP/TLS/RTP/SAVPF").to_string();
            let formats = parts.map(str::to_string).collect();
            let idx = out.len();
            out.push(MediaSection {
                media,
                port,
                proto,
                formats,
                mid: idx.to_string(),
                direction: "sendrecv".into(),
                attributes: Vec::new(),
            });
        } else if let (Some(a), Some(cur)) = (line.strip_prefix("a="), out.last_mut()) {
            if let Some(mid) = a.strip_prefix("mid:") {
                cur.mid = mid.trim().to_string();
            } else if matches!(a, "sendrecv" | "sendonly" | "recvonly" | "inactive") {
                cur.direction = a.to_string();
            }
            cur.attributes.push(a.to_string());
        }
    }
    out
}

fn answer_direction(offer: &str) -> &'static str {
    match offer {
        "sendonly" => "recvonly",
        "recvonly" => "sendonly",
        "inactive" => "inactive",
        _ => "sendrecv",
    }
}

/// A syntactically valid answer to `offer`: one media section per offered one, same mids, the
/// first offered codec of each audio/video section, a data channel if offered, BUNDLE over all
/// accepted mids, fresh ICE credentials and a random DTLS fingerprint.
pub fn answer_for(offer: &str) -> String {
    let sections = media_sections(offer);
    let ufrag = random_string(8, ALNUM).replace(['+', '/'], "x");
    let pwd = random_string(24, ALNUM);
    let fingerprint = random_bytes(32)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let session_id = u64::from_be_bytes(random_bytes(8).try_into().unwrap_or([1; 8])) >> 2;
    let accepted: Vec<&str> = sections
        .iter()
        .filter(|s| s.port != "0")
        .map(|s| s.mid.as_str())
        .collect();
    let mut sdp = String::new();
    sdp.push_str("v=0\r\n");
    sdp.push_str(&format!("o=- {session_id} 2 IN IP4 127.0.0.1\r\n"));
    sdp.push_str("s=-\r\nt=0 0\r\n");
    if !accepted.is_empty() {
        sdp.push_str(&format!("a=group:BUNDLE {}\r\n", accepted.join(" ")));
    }
    sdp.push_str("a=msid-semantic: WMS emulator\r\n");
    for s in &sections {
        if s.port == "0" {
            sdp.push_str(&format!(
                "m={} 0 {} {}\r\n",
                s.media,
                s.proto,
                s.formats.join(" ")
            ));
            sdp.push_str(&format!("a=mid:{}\r\n", s.mid));
            continue;
        }
        let is_app = s.media == "application";
        let fmts: Vec<String> = if is_app {
            s.formats.clone()
        } else {
            s.formats.iter().take(1).cloned().collect()
        };
        sdp.push_str(&format!(
            "m={} 9 {} {}\r\n",
            s.media,
            s.proto,
            fmts.join(" ")
        ));
        sdp.push_str("c=IN IP4 0.0.0.0\r\n");
        if !is_app {
            sdp.push_str("a=rtcp:9 IN IP4 0.0.0.0\r\n");
        }
        sdp.push_str(&format!(
            "a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\na=ice-options:trickle\r\n"
        ));
        sdp.push_str(&format!("a=fingerprint:sha-256 {fingerprint}\r\n"));
        sdp.push_str("a=setup:active\r\n");
        sdp.push_str(&format!("a=mid:{}\r\n", s.mid));
        if is_app {
            let port = s
                .attributes
                .iter()
                .find_map(|a| a.strip_prefix("sctp-port:"))
                .unwrap_or("5000");
            sdp.push_str(&format!(
                "a=sctp-port:{port}\r\na=max-message-size:262144\r\n"
            ));
            continue;
        }
        let dir = answer_direction(&s.direction);
        sdp.push_str(&format!("a={dir}\r\n"));
        if dir == "sendonly" || dir == "sendrecv" {
            sdp.push_str(&format!("a=msid:emulator emulator-{}\r\n", s.media));
        }
        sdp.push_str("a=rtcp-mux\r\n");
        if let Some(pt) = fmts.first() {
            for a in &s.attributes {
                let keep = [
                    format!("rtpmap:{pt} "),
                    format!("fmtp:{pt} "),
                    format!("rtcp-fb:{pt} "),
                ];
                if keep.iter().any(|k| a.starts_with(k.as_str())) {
                    sdp.push_str(&format!("a={a}\r\n"));
                }
            }
        }
        if dir == "sendonly" || dir == "sendrecv" {
            let ssrc = u32::from_be_bytes(random_bytes(4).try_into().unwrap_or([7; 4]));
            sdp.push_str(&format!("a=ssrc:{ssrc} cname:emulator\r\n"));
        }
    }
    sdp
}

/// The first mid of an offer ("0" when it has none).
pub fn first_mid(offer: &str) -> String {
    media_sections(offer)
        .into_iter()
        .next()
        .map(|s| s.mid)
        .unwrap_or_else(|| "0".into())
}

/// The `n`-th host candidate line of the built-in master.
pub fn candidate(n: usize) -> String {
    let port = 50_000 + n as u32 * 2;
    let priority = 2_130_706_431u32 - n as u32;
    format!(
        "candidate:{} 1 udp {priority} 127.0.0.1 {port} typ host generation 0",
        n + 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=rtpmap:97 rtx/90000\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\na=rtpmap:111 opus/48000/2\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\na=sctp-port:5000\r\n";

    #[test]
    fn answer_matches_offer_sections() {
        let ans = answer_for(OFFER);
        let secs = media_sections(&ans);
        assert_eq!(secs.len(), 3);
        assert_eq!(secs[0].media, "video");
        assert_eq!(secs[0].mid, "0");
        assert_eq!(secs[0].direction, "sendonly");
        assert_eq!(secs[0].formats, vec!["96"]);
        assert!(ans.contains("a=rtpmap:96 H264/90000\r\n"));
        assert!(!ans.contains("rtx"));
        assert_eq!(secs[1].direction, "sendrecv");
        assert_eq!(secs[2].media, "application");
        assert!(ans.contains("a=group:BUNDLE 0 1 2\r\n"));
        assert!(ans.starts_with("v=0\r\n"));
        assert_eq!(first_mid(OFFER), "0");
    }
}
