//! The JSON envelopes of the signaling WebSocket (protocol.md §4 and §5): what a viewer sends
//! and how what it receives is decoded.

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::validate;

/// The service refuses payloads larger than this, measured base64-encoded ("10K" in the docs;
/// the service model's `MessagePayload` bound is 10000, the stricter reading, which we keep).
pub const MAX_ENCODED_PAYLOAD: usize = 10_000;
/// Largest payload (before base64) that still fits in `MAX_ENCODED_PAYLOAD`.
pub const MAX_PAYLOAD: usize = MAX_ENCODED_PAYLOAD / 4 * 3;

/// Decoding accepts both padded and unpadded base64; peers differ.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Every message type of the protocol, plus `Unknown` for names this version does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// A type this version does not know (kept, so nothing is silently lost).
    Unknown,
    /// An SDP offer: viewers send it.
    SdpOffer,
    /// The master's SDP answer.
    SdpAnswer,
    /// An ICE candidate, sent and received.
    IceCandidate,
    /// The service reports that a message sent with a correlation id failed.
    StatusResponse,
    /// The service will close the connection in about a minute: reconnect.
    GoAway,
    /// The service asks for new ICE servers (TURN credentials) and a reconnect to TURN.
    ReconnectIceServer,
    /// Not from the wire: the library reconnected by itself. Everything before it came on
    /// the old connection; renegotiate if the peer connection depended on it.
    Reconnected,
}

impl MessageType {
    /// The wire name (`messageType` / `action`).
    pub fn name(self) -> &'static str {
        match self {
            MessageType::Unknown => "UNKNOWN",
            MessageType::SdpOffer => "SDP_OFFER",
            MessageType::SdpAnswer => "SDP_ANSWER",
            MessageType::IceCandidate => "ICE_CANDIDATE",
            MessageType::StatusResponse => "STATUS_RESPONSE",
            MessageType::GoAway => "GO_AWAY",
            MessageType::ReconnectIceServer => "RECONNECT_ICE_SERVER",
            MessageType::Reconnected => "RECONNECTED",
        }
    }

    fn from_name(name: &str) -> MessageType {
        match name {
            "SDP_OFFER" => MessageType::SdpOffer,
            "SDP_ANSWER" => MessageType::SdpAnswer,
            "ICE_CANDIDATE" => MessageType::IceCandidate,
            "STATUS_RESPONSE" => MessageType::StatusResponse,
            "GO_AWAY" => MessageType::GoAway,
            "RECONNECT_ICE_SERVER" => MessageType::ReconnectIceServer,
            _ => MessageType::Unknown,
        }
    }
}

/// A `STATUS_RESPONSE`: the service's report that a message with this correlation id failed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusResponse {
    /// The correlation id of the failed message.
    pub correlation_id: String,
    /// The exception name, e.g. `InvalidArgumentException`.
    pub error_type: String,
    /// HTTP-like status (`"400"` on the wire); 0 when absent or not a number.
    pub status_code: i32,
    /// The service's explanation.
    pub description: String,
}

/// One received protocol message, payload already base64-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// What the message is.
    pub message_type: MessageType,
    /// Empty when the message comes from the master.
    pub sender_client_id: String,
    /// The decoded payload (UTF-8 JSON from well-behaved peers; not checked).
    pub payload: Vec<u8>,
    /// The parsed report of a `STATUS_RESPONSE`.
    pub status: Option<StatusResponse>,
}

/// Builds the text frame for a viewer → master message. The viewer never names a recipient:
/// it always talks to the master.
pub fn encode_outgoing(
    action: MessageType,
    payload: &[u8],
    correlation_id: Option<&str>,
) -> Result<String> {
    if !matches!(action, MessageType::SdpOffer | MessageType::IceCandidate) {
        return Err(Error::invalid(
            "message_type",
            format!(
                "a viewer sends only SDP_OFFER or ICE_CANDIDATE, not {}",
                action.name()
            ),
        ));
    }
    if payload.is_empty() {
        return Err(Error::invalid("payload", "must not be empty"));
    }
    let text = std::str::from_utf8(payload)
        .map_err(|e| Error::invalid("payload", format!("not valid UTF-8: {e}")))?;
    // Masters parse the payload as JSON; refusing garbage here beats a silent drop there.
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| {
        Error::invalid(
            "payload",
            format!("not valid JSON ({e}); expected e.g. {{\"type\":\"offer\",\"sdp\":\"...\"}}"),
        )
    })?;
    let encoded = STANDARD.encode(payload);
    if encoded.len() > MAX_ENCODED_PAYLOAD {
        return Err(Error::invalid(
            "payload",
            format!(
                "{} bytes ({} base64-encoded) exceeds the service limit of {MAX_ENCODED_PAYLOAD} \
                 encoded bytes; use trickle ICE to keep offers small",
                payload.len(),
                encoded.len()
            ),
        ));
    }
    if let Some(id) = correlation_id {
        validate::correlation_id(id)?;
    }
    let mut frame = Map::new();
    frame.insert("action".into(), Value::from(action.name()));
    frame.insert("messagePayload".into(), Value::from(encoded));
    if let Some(id) = correlation_id {
        frame.insert("correlationId".into(), Value::from(id));
    }
    Ok(Value::Object(frame).to_string())
}

/// Why a received frame was not delivered.
pub type Skipped = Error;

/// Decodes one received text frame.
///
/// `Ok(None)` is a frame that is JSON but not a protocol message (e.g. the gateway's
/// `{"message":"Endpoint request timed out",...}`); `Err` is a frame that cannot be read at
/// all. The session skips both and keeps the connection.
pub fn decode_incoming(text: &str) -> std::result::Result<Option<Message>, Skipped> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::new(ErrorKind::Protocol, format!("frame is not JSON: {e}")))?;
    let Some(obj) = value.as_object() else {
        return Err(Error::new(
            ErrorKind::Protocol,
            "frame is not a JSON object",
        ));
    };
    let Some(type_name) = str_field(obj, "messageType") else {
        return Ok(None);
    };
    let message_type = MessageType::from_name(type_name);
    let payload = match str_field(obj, "messagePayload") {
        None | Some("") => Vec::new(),
        Some(b64) => LENIENT_BASE64.decode(b64).map_err(|e| {
            Error::new(
                ErrorKind::Protocol,
                format!("{type_name} payload is not valid base64: {e}"),
            )
        })?,
    };
    let status = obj
        .get("statusResponse")
        .and_then(Value::as_object)
        .map(|s| StatusResponse {
            correlation_id: str_field(s, "correlationId").unwrap_or_default().to_owned(),
            error_type: str_field(s, "errorType").unwrap_or_default().to_owned(),
            status_code: match s.get("statusCode") {
                Some(Value::String(v)) => v.trim().parse().unwrap_or(0),
                Some(Value::Number(n)) => {
                    n.as_i64().and_then(|n| i32::try_from(n).ok()).unwrap_or(0)
                }
                _ => 0,
            },
            description: str_field(s, "description").unwrap_or_default().to_owned(),
        });
    Ok(Some(Message {
        message_type,
        sender_client_id: str_field(obj, "senderClientId")
            .unwrap_or_default()
            .to_owned(),
        payload,
        status,
    }))
}

fn str_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = r#"{"sdp":"offer= true\nvideo= true","type":"offer"}"#;

    #[test]
    fn encodes_like_the_js_sdk() {
        // SignalingClient.spec.ts L22, byte for byte.
        assert_eq!(
            encode_outgoing(MessageType::SdpOffer, OFFER.as_bytes(), None).unwrap(),
            r#"{"action":"SDP_OFFER","messagePayload":"eyJzZHAiOiJvZmZlcj0gdHJ1ZVxudmlkZW89IHRydWUiLCJ0eXBlIjoib2ZmZXIifQ=="}"#
        );
        let ice = r#"{"candidate":"upd 10.111.34.88","sdpMid":"1","sdpMLineIndex":1}"#;
        assert_eq!(
            encode_outgoing(MessageType::IceCandidate, ice.as_bytes(), None).unwrap(),
            r#"{"action":"ICE_CANDIDATE","messagePayload":"eyJjYW5kaWRhdGUiOiJ1cGQgMTAuMTExLjM0Ljg4Iiwic2RwTWlkIjoiMSIsInNkcE1MaW5lSW5kZXgiOjF9"}"#
        );
    }

    #[test]
    fn correlation_id_is_added_and_checked() {
        let f = encode_outgoing(MessageType::SdpOffer, OFFER.as_bytes(), Some("c-1.2_3")).unwrap();
        let v: Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["correlationId"], "c-1.2_3");
        assert!(v.get("recipientClientId").is_none());
        let e =
            encode_outgoing(MessageType::SdpOffer, OFFER.as_bytes(), Some("bad id")).unwrap_err();
        assert!(e.message.starts_with("correlation_id"));
    }

    #[test]
    fn refuses_what_the_service_would_drop() {
        let field =
            |r: Result<String>| r.unwrap_err().message.split(':').next().unwrap().to_owned();
        assert_eq!(
            field(encode_outgoing(MessageType::SdpAnswer, b"{}", None)),
            "message_type"
        );
        assert_eq!(
            field(encode_outgoing(MessageType::GoAway, b"{}", None)),
            "message_type"
        );
        assert_eq!(
            field(encode_outgoing(MessageType::SdpOffer, b"", None)),
            "payload"
        );
        assert_eq!(
            field(encode_outgoing(
                MessageType::SdpOffer,
                b"v=0 not json",
                None
            )),
            "payload"
        );
        assert_eq!(
            field(encode_outgoing(
                MessageType::SdpOffer,
                b"{\"a\":\"\xff\"}",
                None
            )),
            "payload"
        );
    }

    #[test]
    fn payload_size_bound_is_on_the_encoded_size() {
        let json_of_len = |n: usize| format!("\"{}\"", "a".repeat(n - 2));
        let fits = json_of_len(MAX_PAYLOAD);
        assert_eq!(STANDARD.encode(&fits).len(), MAX_ENCODED_PAYLOAD);
        encode_outgoing(MessageType::SdpOffer, fits.as_bytes(), None).unwrap();
        let over = json_of_len(MAX_PAYLOAD + 1);
        let e = encode_outgoing(MessageType::SdpOffer, over.as_bytes(), None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(e.message.starts_with("payload"), "{}", e.message);
    }

    #[test]
    fn decodes_an_answer_from_the_master() {
        let m = decode_incoming(r#"{"messageType":"SDP_ANSWER","messagePayload":"eyJzZHAiOiJvZmZlcj0gdHJ1ZVxudmlkZW89IHRydWUiLCJ0eXBlIjoiYW5zd2VyIn0="}"#)
            .unwrap()
            .unwrap();
        assert_eq!(m.message_type, MessageType::SdpAnswer);
        assert_eq!(m.sender_client_id, "");
        assert_eq!(
            m.payload,
            br#"{"sdp":"offer= true\nvideo= true","type":"answer"}"#
        );
        assert_eq!(m.status, None);
    }

    #[test]
    fn decodes_status_response_with_string_or_number_code() {
        let m = decode_incoming(r#"{"messageType": "STATUS_RESPONSE","statusResponse":{"correlationId": "1697058567743","errorType": "InvalidArgumentException","statusCode": "400","success": false}}"#)
            .unwrap()
            .unwrap();
        let s = m.status.unwrap();
        assert_eq!(m.message_type, MessageType::StatusResponse);
        assert_eq!(
            (s.correlation_id.as_str(), s.error_type.as_str()),
            ("1697058567743", "InvalidArgumentException")
        );
        assert_eq!(s.status_code, 400);
        let m = decode_incoming(r#"{"messageType":"STATUS_RESPONSE","statusResponse":{"statusCode":403,"description":"d"}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            m.status
                .as_ref()
                .map(|s| (s.status_code, s.description.as_str())),
            Some((403, "d"))
        );
    }

    #[test]
    fn tolerates_unknown_keys_and_missing_payload() {
        let m =
            decode_incoming(r#"{"messageType":"GO_AWAY","extra":{"x":1},"senderClientId":"m"}"#)
                .unwrap()
                .unwrap();
        assert_eq!(
            (m.message_type, m.sender_client_id.as_str()),
            (MessageType::GoAway, "m")
        );
        assert!(m.payload.is_empty());
        let m = decode_incoming(r#"{"messageType":"NEW_THING","messagePayload":"e30"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            (m.message_type, m.payload.as_slice()),
            (MessageType::Unknown, &b"{}"[..])
        );
    }

    #[test]
    fn non_protocol_frames_are_recognised() {
        // The gateway's own error shape (SignalingClient.spec.ts UNKNOWN_MESSAGE).
        assert_eq!(
            decode_incoming(
                r#"{"message": "Endpoint request timed out", "connectionId":"Jzo5lcd", "requestId":"Jzo5mFnq"}"#
            ),
            Ok(None)
        );
        for junk in ["not json", "[1,2]", "\"s\"", ""] {
            assert_eq!(
                decode_incoming(junk).unwrap_err().kind,
                ErrorKind::Protocol,
                "{junk}"
            );
        }
        let e = decode_incoming(r#"{"messageType":"ICE_CANDIDATE","messagePayload":"***"}"#)
            .unwrap_err();
        assert!(e.message.contains("base64"), "{}", e.message);
    }

    #[test]
    fn oversized_payloads_still_decode() {
        // The service should never send them, but if it does the caller gets the bytes and
        // sizes its buffer, rather than losing the message.
        let big = format!("\"{}\"", "b".repeat(30_000));
        let frame = format!(
            r#"{{"messageType":"SDP_ANSWER","messagePayload":"{}"}}"#,
            STANDARD.encode(&big)
        );
        let m = decode_incoming(&frame).unwrap().unwrap();
        assert_eq!(m.payload.len(), big.len());
    }
}
