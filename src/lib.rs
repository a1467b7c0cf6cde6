//! kvs-viewer: join an Amazon Kinesis Video Streams WebRTC signaling channel as a viewer.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod envelope;
pub mod error;
pub mod sigv4;
pub mod validate;
