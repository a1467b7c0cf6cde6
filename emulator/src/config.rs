//! Emulator configuration and injectable faults.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One access key pair the emulator accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// Access key id (`AKIA…` for long-term keys, `ASIA…` for session credentials).
    pub access_key_id: String,
    /// Secret access key. Never logged.
    pub secret_access_key: String,
    /// Session token the requests must carry (signed, for the WSS URL). Never logged.
    pub session_token: Option<String>,
    /// Unix seconds after which requests signed with this pair are refused
    /// ("The security token included in the request is expired").
    pub expires_at: Option<i64>,
}

impl Credential {
    /// A fresh random-looking static pair (`AKIA` + 16 upper-case alphanumerics, 40-char secret).
    pub fn random_static() -> Credential {
        Credential {
            access_key_id: format!("AKIA{}", random_string(16, UPPER_ALNUM)),
            secret_access_key: random_string(40, SECRET_ALPHABET),
            session_token: None,
            expires_at: None,
        }
    }

    /// A fresh random session-credential triple (`ASIA…`, secret, token with `+/=`).
    pub fn random_session() -> Credential {
        let mut token = format!("IQoJb3JpZ2luX2Vj{}", random_string(200, SECRET_ALPHABET));
        token.push_str("==");
        Credential {
            access_key_id: format!("ASIA{}", random_string(16, UPPER_ALNUM)),
            secret_access_key: random_string(40, SECRET_ALPHABET),
            session_token: Some(token),
            expires_at: None,
        }
    }
}

const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Random bytes from OpenSSL's CSPRNG.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    openssl::rand::rand_bytes(&mut buf).expect("OpenSSL RNG");
    buf
}

/// A random string over `alphabet`.
pub(crate) fn random_string(n: usize, alphabet: &[u8]) -> String {
    random_bytes(n)
        .into_iter()
        .map(|b| alphabet[b as usize % alphabet.len()] as char)
        .collect()
}

/// Emulator settings. `Default` gives free ports on 127.0.0.1, a fresh CA in a temporary directory,
/// one static credential pair and the built-in auto-answering master.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address both listeners bind to.
    pub bind: IpAddr,
    /// TLS port (control plane, GetIceServerConfig and WSS); 0 = a free port.
    pub port: u16,
    /// Plain-HTTP admin port; 0 = a free port.
    pub admin_port: u16,
    /// Region the credential scope must name.
    pub region: String,
    /// The pre-created channel.
    pub channel_name: String,
    /// Account id in ARNs.
    pub account_id: String,
    /// Accepted credentials.
    pub credentials: Vec<Credential>,
    /// The viewer id handed out as `KVS_CLIENT_ID`.
    pub client_id: String,
    /// Concurrent viewers per channel (service default quota: 10).
    pub max_viewers: usize,
    /// Built-in master answers offers while no real master is connected.
    pub auto_answer: bool,
    /// ICE candidates the built-in master sends after its answer.
    pub answer_candidates: usize,
    /// Delay between the built-in master's messages (0 = back to back).
    pub candidate_delay_ms: u64,
    /// Seconds added to the system clock (clock-skew tests).
    pub clock_offset_secs: i64,
    /// Allowed skew between request date and server time (service: 5 min).
    pub max_skew_secs: i64,
    /// Close connections without client messages after this long (service: 10 min).
    pub idle_timeout_secs: Option<u64>,
    /// Cap on one connection's lifetime. The quota page says 1 hour (hard); issue reports show
    /// closes with 1001 after ~2 hours. We pick the documented 1 hour: clients must cope with
    /// the shorter bound.
    pub max_connection_secs: Option<u64>,
    /// Seconds between a lifetime GO_AWAY and the close (service: 1 min); see
    /// `go_away_before_max_lifetime`. Injected `Fault::GoAway` carries its own grace.
    pub go_away_grace_secs: u64,
    /// Send GO_AWAY `go_away_grace_secs` before the lifetime cut. Whether the service warns
    /// before that close is unknown (the reported 2-hour closes show a bare 1001), so off by
    /// default.
    pub go_away_before_max_lifetime: bool,
    /// Whether WebSocket PINGs from the client reset the idle timer. Unknown on the service;
    /// we pick `false` (user reports show 10-minute idle closes even for the C SDK, which pings
    /// every 10 s), so only protocol messages count as activity.
    pub pings_reset_idle: bool,
    /// Close code for idle/lifetime/GO_AWAY closes. Unknown for idle; 1001 "Going away" was
    /// observed for the lifetime close, used for all.
    pub close_code: u16,
    /// Maximum `messagePayload` length in characters. The docs say "10K"; the service model's
    /// `MessagePayload` max is 10000, so 10,000 it is.
    pub max_payload_len: usize,
    /// Also accept signatures over the `Host` without its port (C SDK style). Off by default.
    pub accept_host_without_port: bool,
    /// Set `x-amzn-ErrorType` on rejected WebSocket upgrades. Not documented whether the service
    /// does; we assume it does (like its HTTPS errors).
    pub upgrade_error_type_header: bool,
    /// Suffix appended to `x-amzn-ErrorType` values (the service may send
    /// `Code:http://internal.amazon.com/coral/...`). `None` = the bare code.
    pub error_type_suffix: Option<String>,
    /// Seconds a viewer message is kept for a master that is not connected (channel
    /// `MessageTtlSeconds`, default 60). Whether the service redelivers is unknown; we do.
    pub message_ttl_secs: u64,
    /// ConnectAsViewer / ConnectAsMaster calls per second per channel (`--limit-connect-tps`;
    /// service quota 3, hard). None = unlimited (the default: tests connect in bursts).
    /// Over it: 400 `ClientLimitExceededException` on the upgrade.
    pub limit_connect_tps: Option<u32>,
    /// SendSdpOffer / SendSdpAnswer per second per connection (`--limit-sdp-tps`; service: 5).
    /// Over it: `STATUS_RESPONSE` `ClientLimitExceededException` (with a correlationId) or drop.
    pub limit_sdp_tps: Option<u32>,
    /// SendIceCandidate per second per connection (`--limit-ice-tps`; service: 20).
    pub limit_ice_tps: Option<u32>,
    /// DescribeSignalingChannel per second per channel (`--limit-describe-tps`; service: 5).
    /// Over it: 400 `ClientLimitExceededException`.
    pub limit_describe_tps: Option<u32>,
    /// Close a connection (code `close_code`) once its presigned URL's `X-Amz-Date +
    /// X-Amz-Expires` has passed. The service checks the URL only at the upgrade (protocol.md
    /// §3.5) and bounds the connection by the duration quota instead, so off by default.
    pub close_on_presign_expiry: bool,
    /// Host name to advertise instead of the bind address (`--advertise-host`): the control
    /// plane is `NAME`, the HTTPS endpoint `r-<8 hex>.NAME`, the viewer WSS endpoint
    /// `v-<8 hex>.NAME` and the master's `m-<8 hex>.NAME` (distinct per role, as the service's),
    /// the hex derived from NAME so scripts can predict them. The certificate covers `NAME` and
    /// `*.NAME`. Endpoints carry no port when the TLS listener is on 443.
    pub advertise_host: Option<String>,
    /// Overrides the advertised control-plane host.
    pub advertise_control_host: Option<String>,
    /// Overrides the advertised HTTPS (GetIceServerConfig) host.
    pub advertise_https_host: Option<String>,
    /// Overrides the advertised viewer WSS host.
    pub advertise_viewer_host: Option<String>,
    /// Overrides the advertised master WSS host.
    pub advertise_master_host: Option<String>,
    /// Host put in the TURN URIs of GetIceServerConfig (no TURN server runs; loopback so no
    /// client ever resolves a real name).
    pub ice_host: String,
    /// Server certificate PEM to use instead of a generated one (with `tls_key_pem`).
    pub tls_cert_pem: Option<PathBuf>,
    /// Server key PEM (PKCS#8).
    pub tls_key_pem: Option<PathBuf>,
    /// Where the CA PEM and the event log go; a temporary directory (removed at shutdown) if None.
    pub state_dir: Option<PathBuf>,
    /// Event log path; `<state_dir>/events.jsonl` if None.
    pub event_log: Option<PathBuf>,
    /// The AWS IoT credentials provider endpoint (iot.rs); None = off.
    pub iot: Option<crate::iot::IotConfig>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            admin_port: 0,
            region: "us-west-2".into(),
            channel_name: "demo-channel".into(),
            account_id: "123456789012".into(),
            credentials: vec![Credential::random_static()],
            client_id: format!(
                "viewer-{}",
                random_string(8, b"abcdefghijklmnopqrstuvwxyz0123456789")
            ),
            max_viewers: 10,
            auto_answer: true,
            answer_candidates: 2,
            candidate_delay_ms: 0,
            clock_offset_secs: 0,
            max_skew_secs: 300,
            idle_timeout_secs: Some(600),
            max_connection_secs: Some(3600),
            go_away_grace_secs: 60,
            go_away_before_max_lifetime: false,
            pings_reset_idle: false,
            close_code: 1001,
            max_payload_len: 10_000,
            accept_host_without_port: false,
            upgrade_error_type_header: true,
            error_type_suffix: None,
            message_ttl_secs: 60,
            close_on_presign_expiry: false,
            limit_connect_tps: None,
            limit_sdp_tps: None,
            limit_ice_tps: None,
            limit_describe_tps: None,
            advertise_host: None,
            advertise_control_host: None,
            advertise_https_host: None,
            advertise_viewer_host: None,
            advertise_master_host: None,
            ice_host: "127.0.0.1".into(),
            tls_cert_pem: None,
            tls_key_pem: None,
            state_dir: None,
            event_log: None,
            iot: None,
        }
    }
}

/// Which requests a `FailNext` fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Operation {
    /// WebSocket upgrade (ConnectAsViewer / ConnectAsMaster).
    Connect,
    /// `POST /describeSignalingChannel`.
    Describe,
    /// `POST /getSignalingChannelEndpoint`.
    GetEndpoint,
    /// `POST /v1/get-ice-server-config`.
    GetIceConfig,
    /// `POST /createSignalingChannel`.
    CreateChannel,
    /// `POST /listSignalingChannels`.
    ListChannels,
    /// `POST /deleteSignalingChannel`.
    DeleteChannel,
    /// `POST /updateSignalingChannel`.
    UpdateChannel,
    /// `POST /TagResource`.
    TagResource,
    /// `POST /UntagResource`.
    UntagResource,
    /// `POST /ListTagsForResource`.
    ListTags,
    /// Any of the above.
    Any,
}

impl Operation {
    /// The name used in events.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Connect => "Connect",
            Operation::Describe => "DescribeSignalingChannel",
            Operation::GetEndpoint => "GetSignalingChannelEndpoint",
            Operation::GetIceConfig => "GetIceServerConfig",
            Operation::CreateChannel => "CreateSignalingChannel",
            Operation::ListChannels => "ListSignalingChannels",
            Operation::DeleteChannel => "DeleteSignalingChannel",
            Operation::UpdateChannel => "UpdateSignalingChannel",
            Operation::TagResource => "TagResource",
            Operation::UntagResource => "UntagResource",
            Operation::ListTags => "ListTagsForResource",
            Operation::Any => "Any",
        }
    }
}

/// A frame pushed to clients as-is (`SendRaw`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum RawFrame {
    /// A text frame with this content.
    Text(String),
    /// A binary frame with these bytes.
    Binary(Vec<u8>),
    /// A well-formed `ICE_CANDIDATE` envelope whose text frame is 128 KiB (far above the 10K
    /// payload limit and most clients' receive buffers).
    Oversized,
    /// A text frame that is not JSON.
    NonJson,
    /// A `SDP_ANSWER` envelope whose `messagePayload` is not base64.
    InvalidBase64,
}

/// A fault to inject. Serialized externally tagged, e.g. `{"GoAway":{"client_id":null,"grace_ms":100}}`,
/// `{"StopPongs":true}`, `{"SendRaw":{"client_id":"v1","frame":"NonJson"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Fault {
    /// Send `GO_AWAY` to one viewer (or all viewers when None), close it after `grace_ms`.
    GoAway {
        /// Target viewer; None = every viewer.
        #[serde(default)]
        client_id: Option<String>,
        /// Milliseconds before the server closes the connection.
        grace_ms: u64,
    },
    /// Send `RECONNECT_ICE_SERVER` to one viewer (or all).
    ReconnectIceServer {
        /// Target viewer; None = every viewer.
        #[serde(default)]
        client_id: Option<String>,
    },
    /// Close the TCP connection abruptly (RST, no close frame, no TLS close_notify).
    DropConnection {
        /// Target viewer; None = every viewer.
        #[serde(default)]
        client_id: Option<String>,
    },
    /// Answer the next `count` requests of `operation` with this error.
    FailNext {
        /// Which requests.
        operation: Operation,
        /// HTTP status.
        status: u16,
        /// `x-amzn-ErrorType` value.
        error_type: String,
        /// Body `message`.
        message: String,
        /// How many requests.
        count: u32,
    },
    /// The next WebSocket upgrade request is read, then left unanswered for `ms`, then the TCP
    /// connection is closed (client handshake-timeout tests).
    StallHandshake {
        /// Milliseconds of silence.
        ms: u64,
    },
    /// Delay every WebSocket upgrade answer by `ms` from now on (0 = off).
    HandshakeDelay {
        /// Milliseconds.
        ms: u64,
    },
    /// Stop (true) or resume (false) answering WebSocket PINGs.
    StopPongs(bool),
    /// Set the clock offset (seconds added to the system clock).
    ClockOffset {
        /// Seconds.
        secs: i64,
    },
    /// The built-in master sends its ICE candidates before the answer.
    CandidatesBeforeAnswer(bool),
    /// Push a frame to one viewer (or all).
    SendRaw {
        /// Target viewer; None = every viewer.
        #[serde(default)]
        client_id: Option<String>,
        /// The frame.
        frame: RawFrame,
    },
    /// Close connections idle for `secs` (0 = never).
    IdleTimeout {
        /// Seconds.
        secs: u64,
    },
    /// Close connections older than `secs` (0 = never).
    MaxLifetime {
        /// Seconds.
        secs: u64,
    },
    /// Corrupt the next successful answer of one control-plane call (client validation tests).
    TamperNext(Tamper),
    /// Close one viewer's (or every viewer's) connection with this close code, e.g. 1000, 1001
    /// or 4000 (1000–1003, 1007–1014 and 3000–4999 are accepted).
    Close {
        /// Target viewer; None = every viewer.
        #[serde(default)]
        client_id: Option<String>,
        /// Close code.
        code: u16,
        /// Close reason.
        #[serde(default)]
        reason: String,
    },
    /// The server stops reading and answering on a connection (a frozen peer): no frames, no
    /// PONGs, no close; the TCP connection stays open. After `ms` (0 = until shutdown or until a
    /// newer connection replaces it) it is dropped (RST).
    Freeze {
        /// Target viewer; None = every viewer.
        #[serde(default)]
        client_id: Option<String>,
        /// Milliseconds before the frozen connection is dropped; 0 = never.
        #[serde(default)]
        ms: u64,
    },
    /// The server goes down for `ms`: every live WebSocket is dropped (RST), the TLS listener is
    /// closed (new connections are refused), then it listens on the same port again.
    ServerDown {
        /// Milliseconds of downtime.
        ms: u64,
    },
}

/// How `Fault::TamperNext` corrupts an answer; each applies to one operation, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Tamper {
    /// `DescribeSignalingChannel` reports this `ChannelStatus` (e.g. `DELETING`).
    ChannelStatus(String),
    /// `GetSignalingChannelEndpoint` leaves out the WSS endpoint.
    DropWssEndpoint,
    /// `GetIceServerConfig` returns this many servers.
    IceServerCount(usize),
    /// `GetIceServerConfig` returns this many URIs per server.
    IceUriCount(usize),
    /// `GetIceServerConfig` returns this `Ttl` (seconds).
    IceTtl(i64),
}

impl Tamper {
    /// The operation whose answer it corrupts.
    pub fn operation(&self) -> Operation {
        match self {
            Tamper::ChannelStatus(_) => Operation::Describe,
            Tamper::DropWssEndpoint => Operation::GetEndpoint,
            Tamper::IceServerCount(_) | Tamper::IceUriCount(_) | Tamper::IceTtl(_) => {
                Operation::GetIceConfig
            }
        }
    }
}
