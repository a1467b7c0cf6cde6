//! The event log: typed events, kept in memory (for in-process tests) and appended to a file as
//! JSON lines.
//!
//! Every line is an object `{"ts_ms": …, "seq": …, "type": "<snake_case name>", …fields}`; the
//! fields of each type are those of the [`Event`] variant (documented in the emulator README).
//! Events never carry secrets: no secret keys, session tokens, signatures or presigned query
//! strings — only client ids, ARNs, access key ids, verdicts and reasons.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use crate::config::Fault;

/// One thing the emulator saw or did. Serialized internally tagged: `"type"` is the variant name
/// in snake_case, the fields sit next to it. Field names are stable; new variants and new fields
/// may be added.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// The listeners are up.
    Started {
        /// TLS listener address.
        addr: String,
        /// Admin listener address.
        admin_addr: String,
        /// The pre-created channel.
        channel_arn: String,
        /// Region.
        region: String,
        /// Viewer limit per channel.
        max_viewers: usize,
        /// Whether the built-in master answers offers.
        auto_answer: bool,
    },
    /// Everything stopped.
    Stopped {},
    /// A TCP connection was accepted on the TLS listener.
    TcpAccept {
        /// Peer address.
        peer: String,
    },
    /// The TLS listener closed for `Fault::ServerDown`: connections are refused.
    ServerDown {
        /// Milliseconds it stays down.
        ms: u64,
    },
    /// The TLS listener is back after `Fault::ServerDown`.
    ServerUp {
        /// Listening address (the same port).
        addr: String,
    },
    /// A connection ended with an I/O error outside a request.
    ConnectionError {
        /// The error.
        error: String,
    },
    /// The TLS handshake failed.
    TlsError {
        /// The error.
        error: String,
    },
    /// A SigV4 verdict.
    Auth {
        /// Operation name (`Connect`, `DescribeSignalingChannel`, …).
        operation: String,
        /// `accepted` or `rejected`.
        verdict: String,
        /// Access key id that signed (accepted only).
        #[serde(skip_serializing_if = "Option::is_none")]
        access_key_id: Option<String>,
        /// Machine-readable reason (rejected only), e.g. `signature_expired`.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// The message sent to the client (rejected only).
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// Error type sent to the client (rejected only), e.g. `InvalidSignatureException`.
        #[serde(skip_serializing_if = "Option::is_none")]
        error_type: Option<String>,
        /// Viewer client id (Connect only).
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        /// Channel ARN from the URL (Connect only).
        #[serde(skip_serializing_if = "Option::is_none")]
        channel_arn: Option<String>,
        /// `VIEWER` or `MASTER` (Connect only).
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<String>,
    },
    /// One HTTPS request was answered.
    HttpRequest {
        /// Operation name, `Unknown` for an unknown path.
        operation: String,
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// Status sent.
        status: u16,
        /// Error type (errors only).
        #[serde(skip_serializing_if = "Option::is_none")]
        error_type: Option<String>,
        /// Error message (errors only).
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// `x-amzn-RequestId` sent.
        request_id: String,
    },
    /// GetSignalingChannelEndpoint was asked for this role.
    EndpointRole {
        /// Channel ARN.
        channel_arn: String,
        /// `VIEWER` or `MASTER`.
        role: String,
    },
    /// A channel was created (CreateSignalingChannel or the Rust API).
    ChannelCreated {
        /// Name.
        channel_name: String,
        /// ARN.
        channel_arn: String,
    },
    /// A channel was deleted; its connections were closed.
    ChannelDeleted {
        /// Name.
        channel_name: String,
        /// ARN.
        channel_arn: String,
    },
    /// UpdateSignalingChannel changed a channel.
    ChannelUpdated {
        /// ARN.
        channel_arn: String,
        /// New `MessageTtlSeconds`.
        message_ttl_secs: u64,
        /// New `Version`.
        version: String,
    },
    /// TagResource / UntagResource changed a channel's tags.
    TagsChanged {
        /// ARN.
        channel_arn: String,
        /// Number of tags now.
        tag_count: usize,
    },
    /// A fault was injected (as given).
    Fault {
        /// The fault.
        fault: Fault,
    },
    /// A `FailNext` fault answered a request.
    FaultApplied {
        /// Operation name.
        operation: String,
        /// Status sent.
        status: u16,
        /// Error type sent.
        error_type: String,
    },
    /// A `TamperNext` fault corrupted an answer.
    TamperApplied {
        /// Operation name.
        operation: String,
        /// The tamper, in Rust debug notation.
        tamper: String,
    },
    /// A limit (`--limit-*`) refused a request or a message.
    LimitExceeded {
        /// Which limit: `connect_rate`, `describe_rate`, `sdp_rate`, `ice_rate`.
        limit: String,
        /// Channel ARN.
        channel_arn: String,
        /// Viewer client id, `MASTER` for the master, `-` for a control-plane call.
        client: String,
    },
    /// A WebSocket upgrade was held back (`StallHandshake`).
    HandshakeStalled {
        /// Milliseconds.
        ms: u64,
    },
    /// A WebSocket upgrade answer was delayed (`HandshakeDelay`).
    HandshakeDelayed {
        /// Milliseconds.
        ms: u64,
    },
    /// A WebSocket upgrade was accepted; logged just before the 101 is written, so it
    /// precedes everything the client does in answer. `handshake_failed` follows for the
    /// same `conn` when the 101 could not be written.
    Connected {
        /// Connection id (unique per run).
        conn: u64,
        /// `VIEWER` or `MASTER`.
        role: String,
        /// Viewer client id (null for the master).
        client_id: Option<String>,
        /// Channel ARN.
        channel_arn: String,
        /// `x-amzn-RequestId` of the upgrade.
        request_id: String,
        /// Unix seconds at which the presigned URL expires (`X-Amz-Date + X-Amz-Expires`).
        presign_expires_at: i64,
    },
    /// A WebSocket upgrade was refused.
    ConnectRejected {
        /// Connection id.
        conn: u64,
        /// Status sent.
        status: u16,
        /// Error type sent.
        error_type: String,
        /// Message sent.
        message: String,
        /// `x-amzn-RequestId`.
        request_id: String,
    },
    /// The WebSocket handshake itself failed (bad request, client went away).
    HandshakeFailed {
        /// Connection id.
        conn: u64,
        /// The error.
        error: String,
    },
    /// A newer connection with the same client id (or a newer master) replaced an old one.
    Replaced {
        /// Viewer client id (null for the master).
        client_id: Option<String>,
        /// `MASTER` for a master, absent for a viewer.
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<String>,
        /// Old connection id.
        old_conn: u64,
        /// New connection id.
        new_conn: u64,
    },
    /// A WebSocket connection ended.
    Disconnected {
        /// Connection id.
        conn: u64,
        /// `VIEWER` or `MASTER`.
        role: String,
        /// Viewer client id (null for the master).
        client_id: Option<String>,
        /// Why, e.g. `server_close: Idle timeout`, `client_close: 1000`, `dropped`, `eof`.
        reason: String,
    },
    /// A frame was sent to a client.
    FrameOut {
        /// Connection id.
        conn: u64,
        /// Viewer client id or `MASTER`.
        to: String,
        /// `SDP_ANSWER`, `ICE_CANDIDATE`, `GO_AWAY`, `STATUS_RESPONSE`, `RAW_…`, …
        message_type: String,
        /// Frame length in bytes.
        len: usize,
    },
    /// Writing a frame failed.
    WriteError {
        /// Connection id.
        conn: u64,
        /// The error.
        error: String,
    },
    /// A frame arrived from a client (payloads are never logged).
    FrameIn {
        /// Connection id.
        conn: u64,
        /// Viewer client id or `MASTER`.
        from: String,
        /// `VIEWER` or `MASTER` (text frames).
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<String>,
        /// `action` of a text frame.
        #[serde(skip_serializing_if = "Option::is_none")]
        action: Option<String>,
        /// `correlationId` of a text frame.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<String>,
        /// `recipientClientId` of a text frame.
        #[serde(skip_serializing_if = "Option::is_none")]
        recipient_client_id: Option<String>,
        /// `messagePayload` length of a text frame.
        #[serde(skip_serializing_if = "Option::is_none")]
        payload_len: Option<usize>,
        /// True for a binary frame.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        binary: bool,
        /// Binary frame length.
        #[serde(skip_serializing_if = "Option::is_none")]
        len: Option<usize>,
        /// `ignored` for a binary frame.
        #[serde(skip_serializing_if = "Option::is_none")]
        verdict: Option<String>,
    },
    /// A client frame was refused (and a STATUS_RESPONSE sent when it had a correlationId).
    FrameRejected {
        /// Connection id.
        conn: u64,
        /// Viewer client id or `MASTER`.
        from: String,
        /// `not_a_json_object` for frames that are not a JSON object.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Frame length (`not_a_json_object` only).
        #[serde(skip_serializing_if = "Option::is_none")]
        len: Option<usize>,
        /// Status of the STATUS_RESPONSE.
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        /// Error type of the STATUS_RESPONSE.
        #[serde(skip_serializing_if = "Option::is_none")]
        error_type: Option<String>,
        /// Description of the STATUS_RESPONSE.
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// The frame's correlationId.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<String>,
        /// Whether a STATUS_RESPONSE went back.
        status_response_sent: bool,
    },
    /// A viewer sent an ICE candidate (its `candidate` line, which is not secret).
    ViewerCandidate {
        /// Viewer client id.
        client_id: String,
        /// The `candidate` string, if the payload decoded.
        candidate: Option<String>,
        /// The `sdpMid`, if present.
        sdp_mid: Option<Value>,
    },
    /// A viewer message waits for a master (no master connected, no built-in master).
    QueuedForMaster {
        /// Viewer client id.
        client_id: String,
        /// Message type.
        message_type: String,
        /// Seconds it is kept.
        ttl_secs: u64,
    },
    /// A master message named a viewer that is not connected.
    Undeliverable {
        /// Always `MASTER`.
        from: String,
        /// The recipient.
        recipient_client_id: String,
        /// Message type.
        message_type: String,
    },
    /// The built-in master answered an offer.
    AutoAnswer {
        /// Viewer client id.
        client_id: String,
        /// Media sections in the offer.
        m_sections: usize,
        /// Candidates sent.
        candidates: usize,
        /// Whether they went before the answer.
        candidates_before_answer: bool,
    },
    /// The built-in master could not answer an offer.
    AutoAnswerSkipped {
        /// Viewer client id.
        client_id: String,
        /// Why.
        reason: String,
    },
    /// A WebSocket PING arrived.
    Ping {
        /// Connection id.
        conn: u64,
        /// Viewer client id or `MASTER`.
        from: String,
        /// Whether a PONG went back.
        pong: bool,
    },
    /// The server started a close handshake.
    ServerClose {
        /// Connection id.
        conn: u64,
        /// Viewer client id (null for the master).
        client_id: Option<String>,
        /// `VIEWER` or `MASTER`.
        role: String,
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// The client started a close handshake.
    ClientClose {
        /// Connection id.
        conn: u64,
        /// Viewer client id (null for the master).
        client_id: Option<String>,
        /// `VIEWER` or `MASTER`.
        role: String,
        /// Close code, if any.
        code: Option<u16>,
        /// Close reason, if any.
        reason: Option<String>,
    },
    /// The server cut a connection abruptly (RST).
    Dropped {
        /// Connection id.
        conn: u64,
        /// Viewer client id (null for the master).
        client_id: Option<String>,
        /// `VIEWER` or `MASTER`.
        role: String,
    },
    /// A connection was frozen (`Fault::Freeze`): nothing read, nothing answered.
    Frozen {
        /// Connection id.
        conn: u64,
        /// Viewer client id (null for the master).
        client_id: Option<String>,
        /// Milliseconds until it is dropped (0 = until shutdown or replacement).
        ms: u64,
    },
    /// The IoT credentials provider (iot.rs) issued credentials.
    IotCredentials {
        /// The thing the device certificate is registered to.
        thing_name: String,
        /// The role alias asked for.
        role_alias: String,
        /// Access key id of the issued credentials (never the secret or token).
        access_key_id: String,
        /// Their expiry, ISO 8601, by the emulator's clock.
        expiration: String,
    },
    /// The IoT credentials provider refused a request.
    IotRefused {
        /// `tls_handshake`, `unknown_path`, `unknown_certificate`, `unknown_role_alias`,
        /// `missing_thing_name` or `thing_name_mismatch`.
        reason: String,
        /// Status sent (none after a failed handshake).
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        /// Request path (none after a failed handshake).
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// The TLS error (failed handshakes only).
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// An [`Event`] with its time and sequence number, as one log line.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct EventRecord {
    /// Wall-clock milliseconds since the Unix epoch (system clock, no offset).
    pub ts_ms: u64,
    /// 0, 1, 2, … in emission order.
    pub seq: usize,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

impl EventRecord {
    /// The line as JSON.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The event sink.
#[derive(Debug)]
pub struct EventLog {
    inner: Mutex<Inner>,
    cond: Condvar,
}

#[derive(Debug)]
struct Inner {
    events: Vec<EventRecord>,
    file: Option<File>,
}

impl EventLog {
    /// A log writing to `path` (created / truncated).
    pub fn new(path: Option<&Path>) -> std::io::Result<EventLog> {
        let file = match path {
            Some(p) => Some(File::create(p)?),
            None => None,
        };
        Ok(EventLog {
            inner: Mutex::new(Inner {
                events: Vec::new(),
                file,
            }),
            cond: Condvar::new(),
        })
    }

    /// Records an event.
    pub fn emit(&self, event: Event) {
        let ts_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let rec = EventRecord {
            ts_ms,
            seq: inner.events.len(),
            event,
        };
        if let Some(f) = inner.file.as_mut() {
            let _ = writeln!(f, "{}", rec.to_json());
            let _ = f.flush();
        }
        inner.events.push(rec);
        drop(inner);
        self.cond.notify_all();
    }

    /// All events so far.
    pub fn records(&self) -> Vec<EventRecord> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .events
            .clone()
    }

    /// All events so far, as JSON.
    pub fn all(&self) -> Vec<Value> {
        self.records().iter().map(EventRecord::to_json).collect()
    }

    /// Waits (bounded) for the first event — past or future — matching `pred`.
    pub fn wait_for_record(
        &self,
        pred: impl Fn(&EventRecord) -> bool,
        timeout: Duration,
    ) -> Option<EventRecord> {
        let deadline = Instant::now() + timeout;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut checked = 0;
        loop {
            if let Some(v) = inner.events[checked..].iter().find(|e| pred(e)) {
                return Some(v.clone());
            }
            checked = inner.events.len();
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            inner = self
                .cond
                .wait_timeout(inner, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits (bounded) for the first event, as JSON, matching `pred`.
    pub fn wait_for(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
        self.wait_for_record(|r| pred(&r.to_json()), timeout)
            .map(|r| r.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_flat_objects_with_type_seq_and_time() {
        let log = EventLog::new(None).unwrap();
        log.emit(Event::Ping {
            conn: 3,
            from: "v1".into(),
            pong: true,
        });
        log.emit(Event::Stopped {});
        let all = log.all();
        assert_eq!(all[0]["type"], "ping");
        assert_eq!(all[0]["conn"], 3);
        assert_eq!(all[0]["seq"], 0);
        assert!(all[0]["ts_ms"].as_u64().unwrap() > 1_600_000_000_000);
        assert_eq!(all[1]["type"], "stopped");
        assert_eq!(all[1]["seq"], 1);
        // Optional fields that do not apply are left out rather than null.
        log.emit(Event::Auth {
            operation: "Connect".into(),
            verdict: "accepted".into(),
            access_key_id: Some("AKID".into()),
            reason: None,
            message: None,
            error_type: None,
            client_id: None,
            channel_arn: None,
            role: None,
        });
        let a = &log.all()[2];
        assert!(a.get("reason").is_none(), "{a}");
        assert_eq!(a["access_key_id"], "AKID");
    }
}
