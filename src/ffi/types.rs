//! `#[repr(C)]` types of the C API and their conversion to and from the safe core.

use std::ffi::{CStr, c_char, c_void};
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_PING_INTERVAL, DEFAULT_PRESIGN_EXPIRES_S, ViewerConfig,
};
use crate::credentials::{CredentialProvider, CredentialSource, ExpiringCredentials};
use crate::envelope::{Message, MessageType};
use crate::error::{Error, ErrorKind};
use crate::sigv4::Credentials;

use super::KvsStatus;
use super::credentials::KvsCredentialsCallback;
use super::versioned::{
    frozen_size, read_prefix, struct_size_of, usable_size, write_prefix, zero_init,
};

/// Type of a message (`KvsMessage::message_type`, the `message_type` of `kvs_viewer_send`).
/// Append-only: a value is never renumbered or reused. Carried as `int32_t` in the ABI; a
/// value this library does not know is treated as `KVS_MSG_UNKNOWN`.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)] // the C names, so C and Rust grep alike
pub enum KvsMessageType {
    /// A type this library version does not know.
    KVS_MSG_UNKNOWN = 0,
    /// An SDP offer (viewers send it; masters receive it).
    KVS_MSG_SDP_OFFER = 1,
    /// The master's SDP answer.
    KVS_MSG_SDP_ANSWER = 2,
    /// An ICE candidate (sent and received).
    KVS_MSG_ICE_CANDIDATE = 3,
    /// The service reports that a message sent with a correlation id failed.
    KVS_MSG_STATUS_RESPONSE = 4,
    /// The service asks the client to reconnect; it closes the connection about a minute
    /// later.
    KVS_MSG_GO_AWAY = 5,
    /// The service asks the client to fetch new ICE servers and reconnect to TURN.
    KVS_MSG_RECONNECT_ICE_SERVER = 6,
    /// Delivered by `kvs_viewer_recv` after an automatic reconnect, in arrival order: the
    /// signaling connection was replaced; renegotiate if the peer connection died. Never
    /// sent. (Reserved in 0.2.)
    KVS_MSG_RECONNECTED = 7,
}

use KvsMessageType::*;

/// Longest id (client id, correlation id, error type) of the protocol, in bytes.
pub const KVS_MAX_ID_LEN: usize = 256;
/// Size of the id arrays in `KvsMessage` (room for the NUL).
pub const KVS_ID_BUF_LEN: usize = KVS_MAX_ID_LEN + 1;
/// Longest `STATUS_RESPONSE` description kept; longer ones are cut at a UTF-8 boundary.
pub const KVS_MAX_DESCRIPTION_LEN: usize = 1024;
/// Size of `KvsMessage::description` (room for the NUL).
pub const KVS_DESCRIPTION_BUF_LEN: usize = KVS_MAX_DESCRIPTION_LEN + 1;
/// Largest payload (decoded) the service relays: 10,000 bytes of base64.
pub const KVS_MAX_PAYLOAD_LEN: usize = 7500;

/// Everything `kvs_viewer_connect` needs. Initialise with `kvs_viewer_config_init`, then set
/// the fields. Strings are borrowed for the duration of the call only.
///
/// Size-versioned (see "ABI rules" at the top): the library reads only the fields that fit in
/// `struct_size`; the others count as 0 / NULL, i.e. their default.
#[repr(C)]
pub struct KvsViewerConfig {
    /// `sizeof(KvsViewerConfig)` of the caller's header, set by `kvs_viewer_config_init`.
    pub struct_size: u32,
    /// AWS region, e.g. `"us-west-2"`. Required.
    pub region: *const c_char,
    /// Channel ARN, `arn:aws:kinesisvideo:<region>:<account>:channel/<name>/<number>`.
    /// NULL or empty = look it up by `channel_name` (DescribeSignalingChannel); one of the two
    /// is required.
    pub channel_arn: *const c_char,
    /// This viewer's id: 1..256 of `[a-zA-Z0-9_.-]`, not starting with `AWS_`. Unique per
    /// viewer: connecting again with the same id replaces the older connection. Required.
    pub client_id: *const c_char,
    /// The channel's viewer WSS endpoint, `wss://host[:port][/path]`. NULL or empty = discover
    /// it (GetSignalingChannelEndpoint) and fetch the ICE servers on the way.
    pub wss_endpoint: *const c_char,
    /// AWS access key id. Required.
    pub access_key_id: *const c_char,
    /// AWS secret access key. Required. Copied, used for signing only, wiped on close.
    pub secret_access_key: *const c_char,
    /// Session token of temporary credentials; NULL for none.
    pub session_token: *const c_char,
    /// PEM bundle trusted in addition to the system roots; NULL for system roots only.
    pub ca_file: *const c_char,
    /// Bound of the whole connect (TCP + TLS + upgrade) and of close; 0 = 5000 ms.
    pub connect_timeout_ms: u32,
    /// Lifetime of the presigned URL (`X-Amz-Expires`), 1..604800; 0 = 299 s.
    pub presign_expires_s: u32,
    /// Channel name, used only when `channel_arn` is NULL or empty. (Appended in 0.1; NULL or
    /// empty = none.)
    pub channel_name: *const c_char,
    /// Control-plane URL `https://host[:port][/path]` (emulators, FIPS or VPC endpoints);
    /// NULL or empty = `https://kinesisvideo.<region>.amazonaws.com` (`.amazonaws.com.cn` in
    /// China regions). (Appended in 0.1.)
    pub control_plane_url: *const c_char,
    /// Keepalive: a WebSocket ping after this much silence from the server; the peer is
    /// declared dead when it gets no answer within `pong_timeout_ms`; 0 = 10000 ms (0.1: 30000).
    /// Shorter keeps NAT mappings of cellular links alive. (Appended in 0.1.)
    pub ping_interval_ms: u32,
    /// How long a keepalive ping may go unanswered; 0 = 5000 ms; never more than
    /// `ping_interval_ms`. (Appended in 0.2.)
    pub pong_timeout_ms: u32,
    /// Bound of `kvs_viewer_send` waiting for the connection (also while it reconnects);
    /// 0 = 5000 ms. (Appended in 0.2.)
    pub send_timeout_ms: u32,
    /// Largest received payload delivered, in bytes; a larger message is skipped and counted,
    /// never queued; 0 = `KVS_MAX_PAYLOAD_LEN`. (Appended in 0.2.)
    pub max_message_len: u32,
    /// Nonzero turns automatic reconnect off (0.1 behaviour: every end of the connection is
    /// reported); 0 = reconnect by itself, announced by `KVS_MSG_RECONNECTED`. (Appended in 0.2.)
    pub disable_auto_reconnect: u32,
    /// Reconnect attempt n waits a random time in [0, min(cap, base * 2^n)); 0 = 100 ms.
    /// (Appended in 0.2.)
    pub reconnect_backoff_base_ms: u32,
    /// See `reconnect_backoff_base_ms`; 0 = 10000 ms. (Appended in 0.2.)
    pub reconnect_backoff_cap_ms: u32,
    /// Give up reconnecting after this many failed attempts in a row (`recv` then reports the
    /// last failure); 0 = never. (Appended in 0.2.)
    pub reconnect_max_attempts: u32,
    /// Give up reconnecting after this long without success; 0 = never. (Appended in 0.2.)
    pub reconnect_max_duration_ms: u32,
    /// AWS IoT credentials provider, `https://host[:port]`: the account's
    /// `…credentials.iot.<region>.amazonaws.com` (`aws iot describe-endpoint --endpoint-type
    /// iot:CredentialProvider`). With the other `iot_*` fields (all or none), and instead of
    /// `access_key_id`/`secret_access_key`: temporary credentials fetched over mutual TLS
    /// with the device certificate, and fetched again before they expire. (Appended in 0.2.)
    pub iot_credentials_endpoint: *const c_char,
    /// The role alias whose role the credentials are for. (Appended in 0.2.)
    pub iot_role_alias: *const c_char,
    /// The thing the device certificate is attached to (sent as `x-amzn-iot-thingname`).
    /// (Appended in 0.2.)
    pub iot_thing_name: *const c_char,
    /// PEM device certificate. (Appended in 0.2.)
    pub iot_cert_file: *const c_char,
    /// PEM private key of the certificate: PKCS#1 (`BEGIN RSA PRIVATE KEY`, what AWS IoT hands
    /// out), PKCS#8 or EC; not encrypted. Never logged. (Appended in 0.2.)
    pub iot_key_file: *const c_char,
    /// PEM CA bundle trusted for the credentials provider in addition to the system roots;
    /// NULL = system roots only. (Appended in 0.2.)
    pub iot_ca_file: *const c_char,
    /// Instead of fixed keys or `iot_*`: a function filling `KvsCredentials` (a secure element,
    /// a vault), called when credentials are first needed and again when they near their
    /// expiry. NULL = none. (Appended in 0.2.)
    pub credentials_callback: KvsCredentialsCallback,
    /// Passed to `credentials_callback` as is. (Appended in 0.2.)
    pub credentials_user_data: *mut c_void,
    /// Expiry of the fixed `access_key_id`/`secret_access_key`/`session_token`, Unix seconds;
    /// 0 = they do not expire. Presigned URLs never outlive it. (Appended in 0.2.)
    pub credentials_expires_at_unix_s: i64,
}

/// `sizeof(KvsViewerConfig)` in the 0.1 header, frozen: what the 0.1 `kvs_viewer_config_init`
/// symbol writes.
pub(crate) const CONFIG_SIZE_0_1: usize = frozen_size(
    std::mem::offset_of!(KvsViewerConfig, ping_interval_ms) + size_of::<u32>(),
    align_of::<*const c_char>(),
);

/// `sizeof(KvsMessage)` in the 0.1 header, frozen; the smallest `struct_size` accepted.
pub(crate) const MESSAGE_SIZE_0_1: usize = frozen_size(
    std::mem::offset_of!(KvsMessage, description) + KVS_DESCRIPTION_BUF_LEN,
    if align_of::<*mut c_char>() > align_of::<usize>() {
        align_of::<*mut c_char>()
    } else {
        align_of::<usize>()
    },
);

/// Every pointer NULL, every number 0: the default of every field, in every version.
fn config_defaults() -> KvsViewerConfig {
    KvsViewerConfig {
        struct_size: 0,
        region: std::ptr::null(),
        channel_arn: std::ptr::null(),
        client_id: std::ptr::null(),
        wss_endpoint: std::ptr::null(),
        access_key_id: std::ptr::null(),
        secret_access_key: std::ptr::null(),
        session_token: std::ptr::null(),
        ca_file: std::ptr::null(),
        connect_timeout_ms: 0,
        presign_expires_s: 0,
        channel_name: std::ptr::null(),
        control_plane_url: std::ptr::null(),
        ping_interval_ms: 0,
        pong_timeout_ms: 0,
        send_timeout_ms: 0,
        max_message_len: 0,
        disable_auto_reconnect: 0,
        reconnect_backoff_base_ms: 0,
        reconnect_backoff_cap_ms: 0,
        reconnect_max_attempts: 0,
        reconnect_max_duration_ms: 0,
        iot_credentials_endpoint: std::ptr::null(),
        iot_role_alias: std::ptr::null(),
        iot_thing_name: std::ptr::null(),
        iot_cert_file: std::ptr::null(),
        iot_key_file: std::ptr::null(),
        iot_ca_file: std::ptr::null(),
        credentials_callback: None,
        credentials_user_data: std::ptr::null_mut(),
        credentials_expires_at_unix_s: 0,
    }
}

/// One received message, filled by `kvs_viewer_recv` into caller-owned memory.
/// Initialise with `kvs_message_init`. Size-versioned: the library writes only the fields
/// that fit in `struct_size`.
#[repr(C)]
pub struct KvsMessage {
    /// `sizeof(KvsMessage)` of the caller's header, set by `kvs_message_init`.
    pub struct_size: u32,
    /// One of `KvsMessageType` (`KVS_MSG_*`).
    pub message_type: i32,
    /// Caller's buffer for the decoded payload (NUL-terminated when it fits).
    pub payload: *mut c_char,
    /// Size of `payload` in bytes.
    pub payload_cap: usize,
    /// Payload length without the NUL; on `KVS_ERR_BUFFER_TOO_SMALL`, the length needed.
    pub payload_len: usize,
    /// Sender's client id; empty when the message comes from the master.
    pub sender_client_id: [c_char; KVS_ID_BUF_LEN],
    /// `STATUS_RESPONSE` only: the correlation id of the failed message.
    pub correlation_id: [c_char; KVS_ID_BUF_LEN],
    /// `STATUS_RESPONSE` only: the service's exception name.
    pub error_type: [c_char; KVS_ID_BUF_LEN],
    /// `STATUS_RESPONSE` only: HTTP-like status code; 0 otherwise.
    pub status_code: i32,
    /// `STATUS_RESPONSE` only: the service's description.
    pub description: [c_char; KVS_DESCRIPTION_BUF_LEN],
}

/// 0.1 entry point, kept for binaries built against the 0.1 header: initialises a 0.1-sized
/// config. New code reaches `kvs_viewer_config_init_sized` through the
/// `kvs_viewer_config_init(config)` macro below, which passes `sizeof *(config)`.
///
/// # Safety
/// `config` must be NULL or point to a writable 0.1-sized `KvsViewerConfig`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_viewer_config_init(config: *mut KvsViewerConfig) {
    // SAFETY: forwarded contract, with the 0.1 size.
    let _ = unsafe { kvs_viewer_config_init_sized(config, CONFIG_SIZE_0_1) };
}

/// Fills the caller's `size` bytes at `config` with defaults — every pointer NULL, every
/// number 0 (= default) — and sets `struct_size = size`. Use the `kvs_viewer_config_init`
/// macro, which passes `sizeof *(config)`. A `size` larger than this library's struct (a
/// newer header) is zeroed all the same. Thread-safe.
///
/// Errors: `KVS_ERR_NULL_POINTER`, `KVS_ERR_INVALID_ARGUMENT` (`size` below the 0.1 layout
/// or above 4 GiB; nothing written).
///
/// # Safety
/// `config` must be NULL or point to `size` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_viewer_config_init_sized(
    config: *mut KvsViewerConfig,
    size: usize,
) -> KvsStatus {
    if config.is_null() {
        return super::null_pointer("config");
    }
    super::guard(|| {
        check_init_size(size, CONFIG_SIZE_0_1, "size", "kvs_viewer_config_init")?;
        // SAFETY: non-NULL; `size` writable bytes per the contract.
        unsafe { zero_init(config, size) };
        Ok(())
    })
}

fn check_init_size(size: usize, min: usize, field: &str, init: &str) -> Result<(), KvsStatus> {
    if size < min || u32::try_from(size).is_err() {
        return Err(super::fail(Error::invalid(
            field,
            format!("{size} is not a {init} struct size (at least {min}); pass sizeof the struct"),
        )));
    }
    Ok(())
}

/// 0.1 entry point, kept for binaries built against the 0.1 header: prepares a 0.1-sized
/// message. New code reaches `kvs_message_init_sized` through the `kvs_message_init(msg,
/// payload_buf, payload_cap)` macro below, which passes `sizeof *(msg)`.
///
/// # Safety
/// `msg` must be NULL or point to a writable 0.1-sized `KvsMessage`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_message_init(
    msg: *mut KvsMessage,
    payload_buf: *mut c_char,
    payload_cap: usize,
) {
    // SAFETY: forwarded contract, with the 0.1 size.
    let _ = unsafe { kvs_message_init_sized(msg, MESSAGE_SIZE_0_1, payload_buf, payload_cap) };
}

/// Prepares the caller's `size` bytes at `msg` for `kvs_viewer_recv`: zeroes them, sets
/// `struct_size = size` and the payload buffer (`payload_buf` of `payload_cap` bytes, or NULL
/// and 0). Use the `kvs_message_init` macro, which passes `sizeof *(msg)`. Thread-safe.
///
/// Errors: `KVS_ERR_NULL_POINTER` (msg), `KVS_ERR_INVALID_ARGUMENT` (`size` below the 0.1
/// layout or above 4 GiB; nothing written).
///
/// # Safety
/// `msg` must be NULL or point to `size` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_message_init_sized(
    msg: *mut KvsMessage,
    size: usize,
    payload_buf: *mut c_char,
    payload_cap: usize,
) -> KvsStatus {
    if msg.is_null() {
        return super::null_pointer("msg");
    }
    super::guard(|| {
        check_init_size(size, MESSAGE_SIZE_0_1, "size", "kvs_message_init")?;
        // SAFETY: non-NULL; `size` writable bytes, at least the 0.1 layout, so the payload
        // fields are in bounds.
        unsafe {
            zero_init(msg, size);
            std::ptr::addr_of_mut!((*msg).payload).write(payload_buf);
            std::ptr::addr_of_mut!((*msg).payload_cap).write(payload_cap);
        }
        Ok(())
    })
}

/// Reads a C string field: NULL → None; not UTF-8 → an error naming the field.
///
/// # Safety
/// `p` must be NULL or NUL-terminated.
pub(crate) unsafe fn optional_str<'a>(
    p: *const c_char,
    field: &str,
) -> Result<Option<&'a str>, Error> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated per the contract.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map(Some)
        .map_err(|_| Error::invalid(field, "is not valid UTF-8"))
}

/// # Safety
/// As `optional_str`.
unsafe fn required_str<'a>(p: *const c_char, field: &str) -> Result<&'a str, Error> {
    // SAFETY: forwarded contract.
    unsafe { optional_str(p, field) }?.ok_or_else(|| Error::invalid(field, "is required but NULL"))
}

/// Copies the fields that fit in the caller's `struct_size` over the defaults, then converts.
///
/// # Safety
/// `config` is non-NULL and its first `struct_size` bytes are readable; its strings are
/// NULL or NUL-terminated.
pub(crate) unsafe fn read_config(config: *const KvsViewerConfig) -> Result<ViewerConfig, Error> {
    // SAFETY: `struct_size` is the first field, readable for any valid config.
    let given = unsafe { struct_size_of(config) };
    // Older than 0.1's appended fields is still accepted: they count as unset.
    let first_fields =
        std::mem::offset_of!(KvsViewerConfig, secret_access_key) + size_of::<*const c_char>();
    let n = usable_size::<KvsViewerConfig>(
        given,
        first_fields,
        "struct_size",
        "kvs_viewer_config_init",
    )?;
    // SAFETY: the caller guarantees `given >= n` readable bytes; the struct is plain data.
    let c = unsafe { read_prefix(config, n, config_defaults()) };
    // SAFETY (all reads below): the fields came from the caller's struct, whose strings are
    // NULL or NUL-terminated per the contract.
    let region = unsafe { required_str(c.region, "region") }?;
    let channel_arn = unsafe { optional_str(c.channel_arn, "channel_arn") }?.unwrap_or_default();
    let client_id = unsafe { required_str(c.client_id, "client_id") }?;
    let wss_endpoint = unsafe { optional_str(c.wss_endpoint, "wss_endpoint") }?.unwrap_or_default();
    // Credentials: a callback, the IoT provider, or fixed keys (credentials.rs).
    let source = unsafe { credential_source(&c) }?;
    let (access_key_id, secret) = match source {
        Some(_) => ("", ""), // unused: every signer asks the source
        None => (
            unsafe { required_str(c.access_key_id, "access_key_id") }?,
            unsafe { required_str(c.secret_access_key, "secret_access_key") }?,
        ),
    };
    let token = unsafe { optional_str(c.session_token, "session_token") }?;
    let ca_file = unsafe { optional_str(c.ca_file, "ca_file") }?;
    // Fields past the caller's `struct_size` kept their NULL default in the copy above.
    let channel_name = unsafe { optional_str(c.channel_name, "channel_name") }?;
    let control_plane_url = unsafe { optional_str(c.control_plane_url, "control_plane_url") }?;

    let mut config = ViewerConfig::new(
        region,
        channel_arn,
        client_id,
        wss_endpoint,
        Credentials::new(access_key_id, secret, token),
    );
    config.credential_source = match (source, c.credentials_expires_at_unix_s) {
        (Some(source), _) => Some(CredentialProvider::new(source)),
        (None, 0) => None,
        (None, at) => Some(CredentialProvider::new(CredentialSource::Static(
            ExpiringCredentials::new(
                config.credentials.clone(),
                Some(expiry("credentials_expires_at_unix_s", at)?),
            ),
        ))),
    };
    config.ca_file = ca_file.map(PathBuf::from);
    config.channel_name = channel_name.filter(|s| !s.is_empty()).map(str::to_owned);
    config.control_plane_url = control_plane_url
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    config.connect_timeout = match c.connect_timeout_ms {
        0 => DEFAULT_CONNECT_TIMEOUT,
        ms => Duration::from_millis(ms.into()),
    };
    config.presign_expires_s = match c.presign_expires_s {
        0 => DEFAULT_PRESIGN_EXPIRES_S,
        s => s,
    };
    config.ping_interval = match c.ping_interval_ms {
        0 => DEFAULT_PING_INTERVAL,
        ms => Duration::from_millis(ms.into()),
    };
    // 0.2 fields: 0 keeps the core's default.
    let ms = |v: u32| (v != 0).then(|| Duration::from_millis(v.into()));
    if let Some(t) = ms(c.pong_timeout_ms) {
        config.pong_timeout = t;
    }
    if let Some(t) = ms(c.send_timeout_ms) {
        config.send_timeout = t;
    }
    if c.max_message_len != 0 {
        config.max_message_len = c.max_message_len as usize;
    }
    config.auto_reconnect = c.disable_auto_reconnect == 0;
    if let Some(t) = ms(c.reconnect_backoff_base_ms) {
        config.reconnect_backoff_base = t;
    }
    if let Some(t) = ms(c.reconnect_backoff_cap_ms) {
        config.reconnect_backoff_cap = t;
    }
    config.reconnect_max_attempts = c.reconnect_max_attempts;
    if let Some(t) = ms(c.reconnect_max_duration_ms) {
        config.reconnect_max_duration = t;
    }
    Ok(config)
}

/// The source the config selects: `credentials_callback`, or the `iot_*` fields; None = the
/// fixed keys. Giving more than one is refused, naming the fields.
///
/// # Safety
/// The config's strings are NULL or NUL-terminated.
unsafe fn credential_source(c: &KvsViewerConfig) -> Result<Option<CredentialSource>, Error> {
    // SAFETY: forwarded contract.
    let iot = unsafe {
        super::credentials::iot_settings(
            c.iot_credentials_endpoint,
            c.iot_role_alias,
            c.iot_thing_name,
            c.iot_cert_file,
            c.iot_key_file,
            c.iot_ca_file,
        )
    }?;
    let callback =
        super::credentials::callback_source(c.credentials_callback, c.credentials_user_data);
    let keys = !c.access_key_id.is_null() || !c.secret_access_key.is_null();
    let given = [
        (callback.is_some(), "credentials_callback"),
        (iot.is_some(), "iot_credentials_endpoint"),
        (keys, "access_key_id"),
    ];
    let named: Vec<&str> = given
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, n)| *n)
        .collect();
    if named.len() > 1 {
        return Err(Error::invalid(
            named[0],
            format!(
                "give one source of credentials, not {} and {}",
                named[0], named[1]
            ),
        ));
    }
    Ok(callback.or(iot.map(CredentialSource::Iot)))
}

fn expiry(field: &str, unix_s: i64) -> Result<time::OffsetDateTime, Error> {
    time::OffsetDateTime::from_unix_timestamp(unix_s)
        .map_err(|_| Error::invalid(field, format!("{unix_s} is not a valid time")))
}

/// Unknown integers map to `Unknown`, which `send` refuses with a clear message: a C value
/// never becomes an out-of-range Rust enum.
pub(crate) fn message_type_from_c(t: i32) -> MessageType {
    const OFFER: i32 = KVS_MSG_SDP_OFFER as i32;
    const ANSWER: i32 = KVS_MSG_SDP_ANSWER as i32;
    const CANDIDATE: i32 = KVS_MSG_ICE_CANDIDATE as i32;
    const STATUS: i32 = KVS_MSG_STATUS_RESPONSE as i32;
    const GO_AWAY: i32 = KVS_MSG_GO_AWAY as i32;
    const RECONNECT_ICE: i32 = KVS_MSG_RECONNECT_ICE_SERVER as i32;
    match t {
        OFFER => MessageType::SdpOffer,
        ANSWER => MessageType::SdpAnswer,
        CANDIDATE => MessageType::IceCandidate,
        STATUS => MessageType::StatusResponse,
        GO_AWAY => MessageType::GoAway,
        RECONNECT_ICE => MessageType::ReconnectIceServer,
        _ => MessageType::Unknown,
    }
}

fn message_type_to_c(t: MessageType) -> KvsMessageType {
    match t {
        MessageType::Unknown => KVS_MSG_UNKNOWN,
        MessageType::SdpOffer => KVS_MSG_SDP_OFFER,
        MessageType::SdpAnswer => KVS_MSG_SDP_ANSWER,
        MessageType::IceCandidate => KVS_MSG_ICE_CANDIDATE,
        MessageType::StatusResponse => KVS_MSG_STATUS_RESPONSE,
        MessageType::GoAway => KVS_MSG_GO_AWAY,
        MessageType::ReconnectIceServer => KVS_MSG_RECONNECT_ICE_SERVER,
        MessageType::Reconnected => KVS_MSG_RECONNECTED,
    }
}

pub(crate) fn message_type_name(t: i32) -> &'static CStr {
    if t == KVS_MSG_RECONNECTED as i32 {
        return c"RECONNECTED";
    }
    match message_type_from_c(t) {
        MessageType::Unknown => c"UNKNOWN",
        MessageType::SdpOffer => c"SDP_OFFER",
        MessageType::SdpAnswer => c"SDP_ANSWER",
        MessageType::IceCandidate => c"ICE_CANDIDATE",
        MessageType::StatusResponse => c"STATUS_RESPONSE",
        MessageType::GoAway => c"GO_AWAY",
        MessageType::ReconnectIceServer => c"RECONNECT_ICE_SERVER",
        MessageType::Reconnected => c"RECONNECTED",
    }
}

/// # Safety
/// `p` is non-NULL and points to `len` readable bytes, or to a NUL-terminated string when
/// `len` is 0.
pub(crate) unsafe fn payload_bytes<'a>(p: *const c_char, len: usize) -> &'a [u8] {
    if len == 0 {
        // SAFETY: NUL-terminated per the contract.
        unsafe { CStr::from_ptr(p) }.to_bytes()
    } else {
        // SAFETY: `len` readable bytes per the contract.
        unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }
    }
}

/// The caller's `KvsMessage` during one `kvs_viewer_recv`: a full-sized local copy of the
/// prefix the caller's `struct_size` covers, written back only on success.
pub(crate) struct MessageOut {
    caller: *mut KvsMessage,
    n: usize,
    local: KvsMessage,
}

impl MessageOut {
    /// Checks `struct_size` and the payload buffer of the caller's message.
    ///
    /// # Safety
    /// `caller` is non-NULL and its first `struct_size` bytes are readable and writable.
    pub(crate) unsafe fn open(caller: *mut KvsMessage) -> Result<MessageOut, Error> {
        // SAFETY: the first field is readable per the contract.
        let given = unsafe { struct_size_of(caller) };
        let n = usable_size::<KvsMessage>(
            given,
            MESSAGE_SIZE_0_1,
            "out.struct_size",
            "kvs_message_init",
        )?;
        // SAFETY: `n <= given` readable bytes; KvsMessage is plain data.
        let local = unsafe { read_prefix(caller, n, message_defaults()) };
        if local.payload.is_null() && local.payload_cap > 0 {
            return Err(Error::invalid(
                "out.payload",
                "is NULL but payload_cap is not 0",
            ));
        }
        Ok(MessageOut { caller, n, local })
    }

    /// Copies `m` into the local message and its payload into the caller's buffer; when the
    /// payload does not fit, writes only the caller's `payload_len`.
    ///
    /// # Safety
    /// The caller's `payload` points to `payload_cap` writable bytes (or is NULL with cap 0).
    pub(crate) unsafe fn fill(&mut self, m: &Message) -> Result<(), Error> {
        let out = &mut self.local;
        let needed = m.payload.len();
        if needed >= out.payload_cap {
            // SAFETY: `payload_len` is a 0.1 field, inside the caller's `n` bytes.
            unsafe { std::ptr::addr_of_mut!((*self.caller).payload_len).write(needed) };
            return Err(Error::new(
                ErrorKind::BufferTooSmall,
                format!(
                    "out.payload: the {} payload needs {} bytes plus the NUL, the buffer \
                     holds {}; the message stays queued",
                    m.message_type.name(),
                    needed,
                    out.payload_cap
                ),
            ));
        }
        // SAFETY: `needed < payload_cap`, and the caller guarantees `payload_cap` writable
        // bytes.
        let buf =
            unsafe { std::slice::from_raw_parts_mut(out.payload.cast::<u8>(), out.payload_cap) };
        buf[..needed].copy_from_slice(&m.payload);
        buf[needed] = 0;
        out.payload_len = needed;
        out.message_type = message_type_to_c(m.message_type) as i32;
        copy_c_string(&m.sender_client_id, as_bytes_mut(&mut out.sender_client_id));
        let status = m.status.clone().unwrap_or_default();
        copy_c_string(
            &status.correlation_id,
            as_bytes_mut(&mut out.correlation_id),
        );
        copy_c_string(&status.error_type, as_bytes_mut(&mut out.error_type));
        copy_c_string(&status.description, as_bytes_mut(&mut out.description));
        out.status_code = status.status_code;
        Ok(())
    }

    /// Writes the filled fields back, as far as the caller's struct reaches.
    ///
    /// # Safety
    /// As `open`: the caller's first `n` bytes are writable.
    pub(crate) unsafe fn commit(self) {
        // SAFETY: `n` writable bytes per `open`'s contract.
        unsafe { write_prefix(self.caller, self.n, &self.local) };
    }
}

fn message_defaults() -> KvsMessage {
    KvsMessage {
        struct_size: 0,
        message_type: KVS_MSG_UNKNOWN as i32,
        payload: std::ptr::null_mut(),
        payload_cap: 0,
        payload_len: 0,
        sender_client_id: [0; KVS_ID_BUF_LEN],
        correlation_id: [0; KVS_ID_BUF_LEN],
        error_type: [0; KVS_ID_BUF_LEN],
        status_code: 0,
        description: [0; KVS_DESCRIPTION_BUF_LEN],
    }
}

fn as_bytes_mut(buf: &mut [c_char]) -> &mut [u8] {
    // SAFETY: c_char and u8 have the same size and alignment; the slice covers the same memory.
    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), buf.len()) }
}

/// Copies `s` into `out` NUL-terminated, cut at a UTF-8 boundary when too long.
pub(crate) fn copy_c_string(s: &str, out: &mut [u8]) {
    if out.is_empty() {
        return;
    }
    let mut n = s.len().min(out.len() - 1);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    out[..n].copy_from_slice(&s.as_bytes()[..n]);
    out[n] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::MAX_PAYLOAD;

    #[test]
    fn c_strings_are_cut_at_char_boundaries() {
        let mut out = [0xffu8; 4];
        copy_c_string("aé€", &mut out); // a(1) é(2) €(3)
        assert_eq!(&out, b"a\xc3\xa9\0");
        let mut out = [0xffu8; 2];
        copy_c_string("€", &mut out);
        assert_eq!(out[0], 0);
    }

    /// The 0.1 layouts on 64-bit targets, as the 0.1 header's `sizeof` gives them
    /// (tests/c/abi-0.1 checks the same against the real header on every target).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn frozen_0_1_sizes() {
        assert_eq!(CONFIG_SIZE_0_1, 104);
        assert_eq!(MESSAGE_SIZE_0_1, 1840);
        assert!(size_of::<KvsViewerConfig>() >= CONFIG_SIZE_0_1);
        assert!(size_of::<KvsMessage>() >= MESSAGE_SIZE_0_1);
    }

    /// The 0.2 fields: 0 is the core's default, anything else is passed through.
    #[test]
    fn reconnect_and_keepalive_fields_reach_the_core() {
        let mut c = config_defaults();
        c.struct_size = size_of::<KvsViewerConfig>() as u32;
        c.region = c"us-west-2".as_ptr();
        c.channel_arn =
            c"arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo-channel/1234567890123"
                .as_ptr();
        c.client_id = c"v".as_ptr();
        c.access_key_id = c"AKIAIOSFODNN7EXAMPLE".as_ptr();
        c.secret_access_key = c"secret".as_ptr();
        // SAFETY: a complete config whose strings are static C strings.
        let defaults = unsafe { read_config(&c) }.unwrap();
        let core = ViewerConfig::new("r", "", "v", "", Credentials::new("a", "b", None));
        assert_eq!(defaults.pong_timeout, core.pong_timeout);
        assert_eq!(defaults.send_timeout, core.send_timeout);
        assert_eq!(defaults.max_message_len, core.max_message_len);
        assert!(defaults.auto_reconnect);
        assert_eq!(defaults.reconnect_backoff_cap, core.reconnect_backoff_cap);
        assert_eq!(defaults.reconnect_max_attempts, 0);
        c.pong_timeout_ms = 700;
        c.send_timeout_ms = 800;
        c.max_message_len = 9000;
        c.disable_auto_reconnect = 1;
        c.reconnect_backoff_base_ms = 50;
        c.reconnect_backoff_cap_ms = 2000;
        c.reconnect_max_attempts = 4;
        c.reconnect_max_duration_ms = 60_000;
        // SAFETY: as above.
        let set = unsafe { read_config(&c) }.unwrap();
        assert_eq!(set.pong_timeout, Duration::from_millis(700));
        assert_eq!(set.send_timeout, Duration::from_millis(800));
        assert_eq!(set.max_message_len, 9000);
        assert!(!set.auto_reconnect);
        assert_eq!(set.reconnect_backoff_base, Duration::from_millis(50));
        assert_eq!(set.reconnect_backoff_cap, Duration::from_secs(2));
        assert_eq!(set.reconnect_max_attempts, 4);
        assert_eq!(set.reconnect_max_duration, Duration::from_secs(60));
    }

    #[test]
    fn payload_bound_matches_the_envelope() {
        assert_eq!(KVS_MAX_PAYLOAD_LEN, MAX_PAYLOAD);
    }

    #[test]
    fn unknown_type_integers_are_safe() {
        for t in [-1, 8, i32::MAX, i32::MIN] {
            assert_eq!(message_type_from_c(t), MessageType::Unknown);
            assert_eq!(message_type_name(t), c"UNKNOWN");
        }
        assert_eq!(message_type_name(KVS_MSG_GO_AWAY as i32), c"GO_AWAY");
        assert_eq!(
            message_type_name(KVS_MSG_RECONNECTED as i32),
            c"RECONNECTED"
        );
    }
}
