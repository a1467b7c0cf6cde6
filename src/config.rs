//! What a viewer needs to connect, and its validation.

use std::path::PathBuf;
use std::time::Duration;

use crate::credentials::CredentialProvider;
use crate::envelope::MAX_PAYLOAD;
use crate::error::{Error, Result};
use crate::sigv4::Credentials;
use crate::validate::{self, Endpoint};

/// Presigned URLs live 299 s by default, like the JS and Android SDKs: long enough for any
/// handshake, short enough that a leaked URL is soon useless.
pub const DEFAULT_PRESIGN_EXPIRES_S: u32 = 299;
/// Bound of the whole connect (TCP + TLS + upgrade), as the C SDK's 5 s upgrade wait.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Keepalive ping after this much silence from the server, as the C SDK (10 s). The service
/// closes idle connections after 10 minutes; whether pings reset that timer is undocumented,
/// so ping well within it.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(10);
/// A ping unanswered this long means the peer is dead: with the default interval a frozen
/// server is detected within 15 s.
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(5);
/// Shortest keepalive interval accepted: the interval is also the bound for the answer.
pub const MIN_PING_INTERVAL: Duration = Duration::from_millis(100);
/// First reconnect backoff ceiling (doubling per attempt), as the official SDKs.
pub const DEFAULT_RECONNECT_BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Largest reconnect backoff ceiling, as the official SDKs.
pub const DEFAULT_RECONNECT_BACKOFF_CAP: Duration = Duration::from_secs(10);
/// Bound of a `send` waiting for the connection thread to take the frame.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// What a viewer needs to connect. Start from [`ViewerConfig::new`] (defaults for the rest),
/// then set what differs.
///
/// ```
/// use std::time::Duration;
/// use kvs_viewer::{Credentials, ViewerConfig};
///
/// let mut config = ViewerConfig::new(
///     "us-west-2",
///     "", // no ARN: look it up by name
///     "viewer-1",
///     "", // no endpoint: discover it
///     Credentials::new("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG", None),
/// );
/// config.channel_name = Some("doorbell".into());
/// config.connect_timeout = Duration::from_secs(10);
/// assert!(config.validate().is_ok());
/// config.client_id = "AWS_reserved".into();
/// let e = config.validate().unwrap_err();
/// assert!(e.message.starts_with("client_id"), "{e}");
/// ```
#[derive(Debug, Clone)]
pub struct ViewerConfig {
    /// AWS region, e.g. `us-west-2`.
    pub region: String,
    /// Empty = look it up by `channel_name` (`DescribeSignalingChannel`).
    pub channel_arn: String,
    /// This viewer's id: 1..256 of `[a-zA-Z0-9_.-]`, not starting with `AWS_`.
    pub client_id: String,
    /// `wss://host[:port][/path]`, the viewer WSS endpoint of the channel. Empty = discover it
    /// (`GetSignalingChannelEndpoint`), and fetch the TURN servers on the way.
    pub wss_endpoint: String,
    /// Used only when `channel_arn` is empty.
    pub channel_name: Option<String>,
    /// `https://host[:port][/path]`; None = `https://kinesisvideo.<region>.amazonaws.com`
    /// (`.amazonaws.com.cn` in the China regions).
    pub control_plane_url: Option<String>,
    /// Who signs (unless `credential_source` is set).
    pub credentials: Credentials,
    /// Where the credentials come from instead of the fixed `credentials`: the AWS IoT
    /// credentials provider, a callback, the environment (credentials.rs). Every presign,
    /// control-plane call and reconnect asks it, so they are refreshed before they expire.
    pub credential_source: Option<CredentialProvider>,
    /// A PEM bundle trusted in addition to the system roots.
    pub ca_file: Option<PathBuf>,
    /// Bound of the whole connect: discovery, DNS, TCP, TLS and the WebSocket upgrade. Also
    /// bounds each later control-plane call and the close handshake.
    pub connect_timeout: Duration,
    /// `X-Amz-Expires` of the presigned WebSocket URL, 1..=604800 s.
    pub presign_expires_s: u32,
    /// A keepalive ping after this much silence from the server. Zero disables keepalive pings.
    pub ping_interval: Duration,
    /// How long a ping may go unanswered before the connection is declared dead; at most
    /// `ping_interval` is used.
    pub pong_timeout: Duration,
    /// Bound of a `send` waiting for the connection to take the frame.
    pub send_timeout: Duration,
    /// Largest received payload (decoded, bytes) delivered; a larger message is skipped and
    /// counted in [`Stats::messages_oversized`](crate::Stats::messages_oversized), so it can
    /// never block the messages behind it. Default [`MAX_PAYLOAD`](crate::MAX_PAYLOAD), the
    /// most the service relays.
    pub max_message_len: usize,
    /// Reconnect by itself when the connection is lost, closed by the server, found dead, or
    /// on `GO_AWAY` (make-before-break). Default on.
    pub auto_reconnect: bool,
    /// Wait before reconnect attempt n: random in [0, min(cap, base·2ⁿ)) (full jitter).
    pub reconnect_backoff_base: Duration,
    /// See `reconnect_backoff_base`.
    pub reconnect_backoff_cap: Duration,
    /// Give up after this many failed attempts in a row; 0 = never (the default: devices
    /// keep trying).
    pub reconnect_max_attempts: u32,
    /// Give up after reconnecting this long without success; zero = never (the default).
    pub reconnect_max_duration: Duration,
}

impl ViewerConfig {
    /// The pong wait actually used: never longer than the ping interval.
    pub(crate) fn pong_deadline(&self) -> Duration {
        if self.ping_interval.is_zero() {
            self.pong_timeout
        } else {
            self.pong_timeout.min(self.ping_interval)
        }
    }

    /// How long the socket may hold unacknowledged data before the kernel fails it
    /// (`TCP_USER_TIMEOUT`): the keepalive's own bound, or 30 s without pings.
    pub(crate) fn dead_peer_bound(&self) -> Duration {
        if self.ping_interval.is_zero() {
            Duration::from_secs(30)
        } else {
            self.ping_interval + self.pong_deadline()
        }
    }

    /// The required fields; everything else at its default.
    pub fn new(
        region: &str,
        channel_arn: &str,
        client_id: &str,
        wss_endpoint: &str,
        credentials: Credentials,
    ) -> Self {
        ViewerConfig {
            region: region.to_owned(),
            channel_arn: channel_arn.to_owned(),
            client_id: client_id.to_owned(),
            wss_endpoint: wss_endpoint.to_owned(),
            channel_name: None,
            control_plane_url: None,
            credentials,
            credential_source: None,
            ca_file: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            presign_expires_s: DEFAULT_PRESIGN_EXPIRES_S,
            ping_interval: DEFAULT_PING_INTERVAL,
            pong_timeout: DEFAULT_PONG_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            max_message_len: MAX_PAYLOAD,
            auto_reconnect: true,
            reconnect_backoff_base: DEFAULT_RECONNECT_BACKOFF_BASE,
            reconnect_backoff_cap: DEFAULT_RECONNECT_BACKOFF_CAP,
            reconnect_max_attempts: 0,
            reconnect_max_duration: Duration::ZERO,
        }
    }

    /// Checks every field; returns the parsed WSS endpoint, or None when it is to be
    /// discovered. No I/O.
    pub fn validate(&self) -> Result<Option<Endpoint>> {
        validate::region(&self.region)?;
        match (self.channel_arn.as_str(), &self.channel_name) {
            ("", None) => {
                return Err(Error::invalid(
                    "channel_arn",
                    "is required, or channel_name to look the ARN up",
                ));
            }
            ("", Some(name)) => validate::channel_name(name)?,
            (arn, _) => validate::channel_arn(arn)?,
        }
        validate::client_id(&self.client_id)?;
        let endpoint = match self.wss_endpoint.as_str() {
            "" => None,
            e => Some(validate::wss_endpoint(e)?),
        };
        if let Some(url) = &self.control_plane_url {
            validate::https_endpoint("control_plane_url", url)?;
        }
        match &self.credential_source {
            Some(source) => source.source().validate()?,
            None => {
                validate::secret_like("access_key_id", &self.credentials.access_key_id, 128)?;
                validate::secret_like(
                    "secret_access_key",
                    self.credentials.secret_access_key(),
                    128,
                )?;
                if let Some(token) = self.credentials.session_token() {
                    validate::secret_like("session_token", token, 8192)?;
                }
            }
        }
        validate::presign_expires(self.presign_expires_s)?;
        if !self.ping_interval.is_zero() && self.ping_interval < MIN_PING_INTERVAL {
            return Err(Error::invalid(
                "ping_interval",
                format!(
                    "{:?} is below {MIN_PING_INTERVAL:?}; a ping that short would call a healthy \
                     link dead",
                    self.ping_interval
                ),
            ));
        }
        if self.pong_timeout.is_zero() {
            return Err(Error::invalid("pong_timeout", "must be greater than zero"));
        }
        if self.connect_timeout.is_zero() {
            return Err(Error::invalid(
                "connect_timeout",
                "must be greater than zero",
            ));
        }
        if self.send_timeout.is_zero() {
            return Err(Error::invalid("send_timeout", "must be greater than zero"));
        }
        if self.reconnect_backoff_base.is_zero() {
            return Err(Error::invalid(
                "reconnect_backoff_base",
                "must be greater than zero",
            ));
        }
        if self.reconnect_backoff_cap < self.reconnect_backoff_base {
            return Err(Error::invalid(
                "reconnect_backoff_cap",
                format!(
                    "{:?} is below reconnect_backoff_base {:?}",
                    self.reconnect_backoff_cap, self.reconnect_backoff_base
                ),
            ));
        }
        if self.max_message_len == 0 {
            return Err(Error::invalid(
                "max_message_len",
                "must be greater than zero",
            ));
        }
        Ok(endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frozen_server_is_detected_within_15_s_by_default() {
        let mut c = ViewerConfig::new("us-west-2", "", "v", "", Credentials::new("a", "b", None));
        assert_eq!(c.dead_peer_bound(), Duration::from_secs(15));
        assert!(c.pong_deadline() < c.ping_interval);
        // The pong wait never exceeds a shorter interval.
        c.ping_interval = Duration::from_secs(2);
        assert_eq!(c.pong_deadline(), Duration::from_secs(2));
        assert_eq!(c.dead_peer_bound(), Duration::from_secs(4));
        c.ping_interval = Duration::ZERO;
        assert_eq!(c.dead_peer_bound(), Duration::from_secs(30));
    }
}
