//! kvs-viewer: join an Amazon Kinesis Video Streams WebRTC signaling channel as a viewer.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod config;
pub mod control_plane;
pub mod envelope;
pub mod error;
pub mod ice;
pub mod session;
pub mod sigv4;
mod transport;
pub mod validate;

pub use config::ViewerConfig;
pub use control_plane::{ChannelInfo, Endpoints};
pub use envelope::{Message, MessageType, StatusResponse};
pub use error::{Error, ErrorKind, Result};
pub use ice::IceServer;
pub use session::{Stats, Viewer};
pub use sigv4::Credentials;
pub mod ffi;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod payload;
