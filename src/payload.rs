//! The JSON inside `SDP_OFFER`, `SDP_ANSWER` and `ICE_CANDIDATE` messages (protocol.md §4.2),
//! built and read with serde_json so that escaping is always right.
//!
//! * Offer / answer: `{"type":"offer","sdp":"v=0\r\n…"}`, the browser's
//!   `RTCSessionDescription.toJSON()` and what the C SDK writes. Receivers read `type` and `sdp`.
//! * Candidate: `{"candidate":"candidate:…","sdpMid":"0","sdpMLineIndex":0}`, the browser's
//!   `RTCIceCandidate.toJSON()`. The service relays the payload without reading it. Masters
//!   differ in what they need: the KVS C SDK reads only `candidate`; browsers, libwebrtc and
//!   aiortc refuse a candidate with neither `sdpMid` nor `sdpMLineIndex`; GStreamer webrtcbin
//!   needs `sdpMLineIndex`. So at least one of the two is required, and sending both (as
//!   every SDK does) works with every master. An absent one is written as `null`, like
//!   `toJSON()` does, so masters that index the object by key still find it.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An ICE candidate as the WebRTC stacks exchange it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Candidate {
    /// The `a=candidate` attribute value without `a=`, e.g. `candidate:1 1 udp …`; empty means
    /// end of candidates.
    pub candidate: String,
    /// The media stream identification (`a=mid`) the candidate belongs to.
    pub sdp_mid: Option<String>,
    /// The index of the m-line the candidate belongs to.
    pub sdp_mline_index: Option<u16>,
}

#[derive(Serialize)]
struct SessionDescriptionOut<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    sdp: &'a str,
}

#[derive(Deserialize)]
struct SessionDescriptionIn {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    sdp: Option<String>,
}

#[derive(Serialize)]
struct CandidateOut<'a> {
    candidate: &'a str,
    #[serde(rename = "sdpMid")]
    sdp_mid: Option<&'a str>,
    #[serde(rename = "sdpMLineIndex")]
    sdp_mline_index: Option<u16>,
}

#[derive(Deserialize)]
struct CandidateIn {
    #[serde(default)]
    candidate: Option<String>,
    #[serde(rename = "sdpMid", default)]
    sdp_mid: Option<String>,
    #[serde(rename = "sdpMLineIndex", default)]
    sdp_mline_index: Option<u16>,
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("strings and integers always serialise")
}

/// `{"type":"offer","sdp":…}`.
pub fn offer(sdp: &str) -> Result<String> {
    if sdp.is_empty() {
        return Err(Error::invalid("sdp", "must not be empty"));
    }
    Ok(to_json(&SessionDescriptionOut { kind: "offer", sdp }))
}

/// The SDP of an answer payload. `type`, when present, must be `answer` (an answer without
/// `type` is accepted: the message type already says what it is).
pub fn answer_sdp(payload: &[u8]) -> Result<String> {
    let d: SessionDescriptionIn = parse("payload", payload, r#"{"type":"answer","sdp":"…"}"#)?;
    match d.kind.as_deref() {
        None | Some("answer") => {}
        Some(other) => {
            return Err(Error::invalid(
                "payload",
                format!("type is {other:?}, not \"answer\""),
            ));
        }
    }
    match d.sdp {
        Some(sdp) if !sdp.is_empty() => Ok(sdp),
        Some(_) => Err(Error::invalid("payload", "sdp is empty")),
        None => Err(Error::invalid("payload", "sdp is missing")),
    }
}

/// `{"candidate":…,"sdpMid":…,"sdpMLineIndex":…}`; see the module documentation for why one
/// of `sdp_mid` and `sdp_mline_index` is required.
pub fn candidate(c: &Candidate) -> Result<String> {
    if c.sdp_mid.is_none() && c.sdp_mline_index.is_none() {
        return Err(Error::invalid(
            "sdp_mid",
            "and sdp_mline_index are both absent; masters need at least one of them \
             (webrtcbin gives the m-line index, browsers give both)",
        ));
    }
    Ok(to_json(&CandidateOut {
        candidate: &c.candidate,
        sdp_mid: c.sdp_mid.as_deref(),
        sdp_mline_index: c.sdp_mline_index,
    }))
}

/// Reads a received candidate payload. `sdpMid` and `sdpMLineIndex` may each be absent or
/// `null`; `candidate` is required (an empty one means end of candidates).
pub fn parse_candidate(payload: &[u8]) -> Result<Candidate> {
    let c: CandidateIn = parse(
        "payload",
        payload,
        r#"{"candidate":"candidate:…","sdpMid":"0","sdpMLineIndex":0}"#,
    )?;
    let candidate = c
        .candidate
        .ok_or_else(|| Error::invalid("payload", "candidate is missing"))?;
    Ok(Candidate {
        candidate,
        sdp_mid: c.sdp_mid,
        sdp_mline_index: c.sdp_mline_index,
    })
}

/// Deserialises a JSON object; serde's message names the member and position that failed.
fn parse<'a, T: Deserialize<'a>>(field: &str, payload: &'a [u8], example: &str) -> Result<T> {
    let text = std::str::from_utf8(payload)
        .map_err(|e| Error::invalid(field, format!("not valid UTF-8: {e}")))?;
    serde_json::from_str(text)
        .map_err(|e| Error::invalid(field, format!("{e}; expected e.g. {example}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn cand(candidate: &str, mid: Option<&str>, mline: Option<u16>) -> Candidate {
        Candidate {
            candidate: candidate.into(),
            sdp_mid: mid.map(Into::into),
            sdp_mline_index: mline,
        }
    }

    #[test]
    fn offer_matches_the_browser_shape() {
        assert_eq!(
            offer("v=0\r\ns=-\r\n").unwrap(),
            r#"{"type":"offer","sdp":"v=0\r\ns=-\r\n"}"#
        );
        let e = offer("").unwrap_err();
        assert!(e.to_string().contains("sdp"), "{e}");
    }

    #[test]
    fn offer_escapes_quotes_backslashes_and_control_characters() {
        let sdp = "a=\"q\"\\ \t\u{1}\u{1f}\u{7f} é € 😀 </script>";
        let json = offer(sdp).unwrap();
        assert!(json.contains(r#"a=\"q\"\\ \t\u0001\u001f"#), "{json}");
        assert!(json.contains("é € 😀"), "non-ASCII stays UTF-8: {json}");
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["sdp"], sdp);
        assert_eq!(back["type"], "offer");
        // A NUL (possible from Rust, never from C) is escaped, not cut.
        assert!(offer("a\0b").unwrap().contains(r"a\u0000b"));
    }

    #[test]
    fn answer_sdp_unescapes() {
        let p = br#"{"sdp":"v=0\r\na=x:\u00e9\/\"\\\ud83d\ude00","type":"answer"}"#;
        assert_eq!(answer_sdp(p).unwrap(), "v=0\r\na=x:é/\"\\😀");
        // The JS SDK test vector.
        assert_eq!(
            answer_sdp(br#"{"sdp":"offer= true\nvideo= true","type":"answer"}"#).unwrap(),
            "offer= true\nvideo= true"
        );
        assert_eq!(answer_sdp(br#"{"sdp":"v=0"}"#).unwrap(), "v=0");
        assert_eq!(
            answer_sdp(br#"{"sdp":"v=0","type":"answer","extra":[1]}"#).unwrap(),
            "v=0"
        );
    }

    #[test]
    fn answer_sdp_refusals_name_what_is_wrong() {
        for (payload, needle) in [
            (&br#"{"type":"offer","sdp":"v=0"}"#[..], "not \"answer\""),
            (br#"{"type":"answer"}"#, "sdp is missing"),
            (br#"{"type":"answer","sdp":""}"#, "sdp is empty"),
            (br#"{"type":"answer","sdp":7}"#, "invalid type"),
            (br#"{"type":"answer","sdp":"\ud800"}"#, "escape"),
            (b"[1]", "expected"),
            (b"", "EOF"),
            (b"{\"sdp\":\"\xff\"}", "UTF-8"),
        ] {
            let e = answer_sdp(payload).unwrap_err();
            let text = e.to_string();
            assert!(text.contains("payload"), "{text}");
            assert!(text.contains(needle), "{text} lacks {needle:?}");
        }
    }

    #[test]
    fn candidate_like_to_json() {
        let c = "candidate:0 1 udp 2130706431 172.31.22.0 52030 typ host";
        assert_eq!(
            candidate(&cand(c, Some("0"), Some(0))).unwrap(),
            format!(r#"{{"candidate":"{c}","sdpMid":"0","sdpMLineIndex":0}}"#)
        );
        assert_eq!(
            candidate(&cand(c, None, Some(1))).unwrap(),
            format!(r#"{{"candidate":"{c}","sdpMid":null,"sdpMLineIndex":1}}"#)
        );
        assert_eq!(
            candidate(&cand("", Some("video\"0"), None)).unwrap(),
            r#"{"candidate":"","sdpMid":"video\"0","sdpMLineIndex":null}"#
        );
        assert_eq!(
            candidate(&cand(c, Some("0"), Some(u16::MAX))).unwrap(),
            format!(r#"{{"candidate":"{c}","sdpMid":"0","sdpMLineIndex":65535}}"#)
        );
        let e = candidate(&cand(c, None, None)).unwrap_err();
        assert!(e.to_string().contains("sdp_mid"), "{e}");
    }

    #[test]
    fn candidates_round_trip() {
        for c in [
            cand("candidate:1 1 udp 1 ::1 9 typ host", Some("0"), Some(0)),
            cand("c\\\"\n\u{0}é😀", None, Some(3)),
            cand("", Some(""), None),
        ] {
            assert_eq!(
                parse_candidate(candidate(&c).unwrap().as_bytes()).unwrap(),
                c
            );
        }
    }

    #[test]
    fn parse_candidate_accepts_what_peers_send() {
        // The JS SDK test vector, a browser's toJSON() with usernameFragment, the C SDK's.
        let got =
            parse_candidate(br#"{"candidate":"upd 10.111.34.88","sdpMid":"1","sdpMLineIndex":1}"#)
                .unwrap();
        assert_eq!(got, cand("upd 10.111.34.88", Some("1"), Some(1)));
        let got = parse_candidate(
            br#"{"candidate":"candidate:x","sdpMid":null,"sdpMLineIndex":2,"usernameFragment":"u"}"#,
        )
        .unwrap();
        assert_eq!(got, cand("candidate:x", None, Some(2)));
        let got = parse_candidate(br#"{"candidate":"a\/b\u0020c","sdpMid":"\u00e9"}"#).unwrap();
        assert_eq!(got, cand("a/b c", Some("é"), None));
        let got = parse_candidate(br#"{"candidate":""}"#).unwrap();
        assert_eq!(got, cand("", None, None));
    }

    #[test]
    fn parse_candidate_refusals_name_what_is_wrong() {
        for (payload, needle) in [
            (
                &br#"{"sdpMid":"0","sdpMLineIndex":0}"#[..],
                "candidate is missing",
            ),
            (br#"{"candidate":null}"#, "candidate is missing"),
            (br#"{"candidate":1}"#, "invalid type"),
            (br#"{"candidate":"c","sdpMLineIndex":-1}"#, "invalid value"),
            (
                br#"{"candidate":"c","sdpMLineIndex":65536}"#,
                "invalid value",
            ),
            (br#"{"candidate":"c","sdpMLineIndex":"0"}"#, "invalid type"),
            (br#"{"candidate":"c","sdpMid":0}"#, "invalid type"),
            (br#"{"candidate":"c""#, "EOF"),
            (b"null", "expected"),
            (b"\xc3", "UTF-8"),
        ] {
            let text = parse_candidate(payload).unwrap_err().to_string();
            assert!(text.contains("payload"), "{text}");
            assert!(text.contains(needle), "{text} lacks {needle:?}");
        }
    }

    #[test]
    fn built_payloads_are_what_the_envelope_accepts() {
        let c = candidate(&cand("candidate:1", Some("0"), Some(0))).unwrap();
        let o = offer("v=0\r\n").unwrap();
        for p in [c, o] {
            crate::envelope::encode_outgoing(
                crate::envelope::MessageType::SdpOffer,
                p.as_bytes(),
                None,
            )
            .unwrap();
        }
    }
}
