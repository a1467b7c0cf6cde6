//! kvs-viewer: join an Amazon Kinesis Video Streams WebRTC signaling channel as a viewer.
//!
//! The Rust surface is this page: [`Viewer`] (connect, send, receive, ICE servers),
//! [`ViewerConfig`] and [`Credentials`] (what it needs), [`Message`] and [`MessageType`]
//! (what travels), [`IceServer`] (for the peer connection), [`Error`] / [`ErrorKind`] (what
//! went wrong) and [`Stats`]. The C API (`include/kvs_viewer.h`) is a thin layer over it.
//!
//! ```no_run
//! use std::time::Duration;
//! use kvs_viewer::{Credentials, MessageType, Viewer, ViewerConfig};
//!
//! # fn main() -> kvs_viewer::Result<()> {
//! let mut config = ViewerConfig::new(
//!     "us-west-2",
//!     "",         // no ARN: DescribeSignalingChannel by name
//!     "viewer-1",
//!     "",         // no endpoint: GetSignalingChannelEndpoint, GetIceServerConfig
//!     Credentials::new("AKIA...", "secret", None),
//! );
//! config.channel_name = Some("doorbell".into());
//! let viewer = Viewer::connect(&config)?;
//! let ice = viewer.ice_servers()?; // STUN first, then TURN
//! # let _ = ice;
//! viewer.send(MessageType::SdpOffer, br#"{"type":"offer","sdp":"v=0..."}"#, None)?;
//! let answer = viewer.recv(Some(Duration::from_secs(10)))?;
//! assert_eq!(answer.message_type, MessageType::SdpAnswer);
//! viewer.close()?;
//! # Ok(())
//! # }
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod backoff;
mod clock;
mod config;
mod connection;
mod control_plane;
mod credentials;
mod datetime;
mod deadline;
mod diag;
mod envelope;
mod error;
mod http;
mod ice;
mod session;
mod sigv4;
mod tls;
mod transport;
mod upgrade;
mod validate;

pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_PING_INTERVAL, DEFAULT_PONG_TIMEOUT,
    DEFAULT_PRESIGN_EXPIRES_S, DEFAULT_RECONNECT_BACKOFF_BASE, DEFAULT_RECONNECT_BACKOFF_CAP,
    DEFAULT_SEND_TIMEOUT, MIN_PING_INTERVAL, ViewerConfig,
};
pub use control_plane::{ChannelInfo, Endpoints};
pub use credentials::{
    CredentialCallback, CredentialProvider, CredentialSource, DEFAULT_REFRESH_JITTER,
    DEFAULT_REFRESH_MARGIN, ExpiringCredentials, IotSettings,
};
pub use diag::{CauseCounts, Disconnect, DisconnectCause, MessageCounts};
pub use envelope::{MAX_ENCODED_PAYLOAD, MAX_PAYLOAD, Message, MessageType, StatusResponse};
pub use error::{Error, ErrorKind, Result};
pub use ice::{IceServer, IceSnapshot, MAX_ICE_STRING_LEN, MAX_TURN_SERVERS, MAX_URIS_PER_SERVER};
pub use session::{Stats, Viewer};
pub use sigv4::Credentials;
pub mod ffi;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod ice_uri;
pub(crate) mod payload;
