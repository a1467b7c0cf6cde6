//! ICE server URIs to C in the form a given WebRTC stack takes them.

use std::ffi::c_char;

use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind};
use crate::ice_uri::{self, IceUriStyle};

use super::types::copy_c_string;
use super::{KvsStatus, KvsViewer, fail, null_pointer, with_viewer};

/// `style` of `kvs_viewer_ice_server_uri`: libwebrtc / browser / libdatachannel / KVS C SDK
/// form, `turn:host:port?transport=udp`; user name and credential are passed separately
/// (`KvsIceServer.username` / `.password`).
pub const KVS_ICE_URI_WEBRTC: i32 = 0;
/// `style` of `kvs_viewer_ice_server_uri`: GStreamer webrtcbin / libnice form,
/// `stun://host:port` (the `stun-server` property) and
/// `turn://user:password@host:port?transport=udp` / `turns://user:password@host:port` (one
/// `add-turn-server` call each), user and password percent-encoded.
pub const KVS_ICE_URI_GSTREAMER: i32 = 1;

/// Formats URI `uri_index` of ICE server `server_index` (0 = STUN, as
/// `kvs_viewer_ice_server_get`) in `style` (`KVS_ICE_URI_WEBRTC` or `KVS_ICE_URI_GSTREAMER`).
///
/// Writes the length (without the NUL) to `*out_len` and the URI, NUL-terminated, to `buf`;
/// when `cap` is too small it is cut and `KVS_ERR_BUFFER_TOO_SMALL` returned with the length
/// (1024 bytes hold any URI). **An empty result (`*out_len` 0, `KVS_OK`) means: skip this
/// URI** — the stack cannot use it (`stuns:` in libnice) or it repeats another URI of the same
/// server (KVS lists `turns:…?transport=udp`, TURN over DTLS, which both stacks run as TLS over
/// TCP, next to `turns:…?transport=tcp`; alone, it is formatted as TLS over TCP).
///
/// The GStreamer form contains the TURN password: never log it. Refreshes the servers near
/// their TTL like `kvs_viewer_ice_server_count`; take the URI count from
/// `kvs_viewer_ice_server_get` (`uri_count`).
///
/// Errors: `KVS_ERR_NULL_POINTER` (`viewer`, `out_len`), `KVS_ERR_INVALID_ARGUMENT`
/// (`server_index` or `uri_index` past the list, an unknown `style`, `buf` NULL with `cap`
/// > 0), `KVS_ERR_BUFFER_TOO_SMALL`, and the fetch errors of `kvs_viewer_ice_server_count`.
///
/// Thread-safety: as `kvs_viewer_ice_server_count`.
///
/// # Safety
/// `viewer` must come from `kvs_viewer_connect` and not be closed; `buf` NULL or `cap`
/// writable bytes; `out_len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_viewer_ice_server_uri(
    viewer: *mut KvsViewer,
    server_index: usize,
    uri_index: usize,
    style: i32,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> KvsStatus {
    if out_len.is_null() {
        return null_pointer("out_len");
    }
    if buf.is_null() && cap > 0 {
        return fail(Error::invalid("buf", format!("is NULL but cap is {cap}")));
    }
    with_viewer(viewer, |v| {
        let style = match style {
            KVS_ICE_URI_WEBRTC => IceUriStyle::WebRtc,
            KVS_ICE_URI_GSTREAMER => IceUriStyle::GStreamer,
            other => {
                return Err(fail(Error::invalid(
                    "style",
                    format!(
                        "{other} is neither KVS_ICE_URI_WEBRTC (0) nor KVS_ICE_URI_GSTREAMER (1)"
                    ),
                )));
            }
        };
        let servers = v.ice_servers().map_err(fail)?;
        let server = servers.get(server_index).ok_or_else(|| {
            fail(Error::invalid(
                "server_index",
                format!("{server_index} is past the {} ICE servers", servers.len()),
            ))
        })?;
        let uri = Zeroizing::new(
            ice_uri::format(server, uri_index, style)
                .map_err(fail)?
                .unwrap_or_default(),
        );
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out_len.write(uri.len()) };
        if !buf.is_null() && cap > 0 {
            // SAFETY: `cap` writable bytes per the contract.
            let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), cap) };
            copy_c_string(&uri, out);
        }
        if uri.len() < cap || uri.is_empty() && cap == 0 {
            return Ok(());
        }
        Err(fail(Error::new(
            ErrorKind::BufferTooSmall,
            format!(
                "buf: the URI needs {} bytes plus the NUL, the buffer holds {cap}; the length \
                 was written",
                uri.len()
            ),
        )))
    })
}
