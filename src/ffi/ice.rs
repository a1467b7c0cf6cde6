//! ICE servers to C: count + get by index into a caller-owned, size-versioned struct.

use std::ffi::c_char;

use crate::error::Error;
use crate::ice::IceServer;

use super::types::copy_c_string;
use super::versioned::{
    frozen_size, read_prefix, struct_size_of, usable_size, write_prefix, zero_init,
};
use super::{KvsStatus, KvsViewer, fail, null_pointer, with_viewer};

/// Most ICE servers a viewer reports: the STUN server plus at most 5 TURN servers.
pub const KVS_MAX_ICE_SERVERS: usize = 6;
/// Most URIs of one ICE server (a service answer with more is refused).
pub const KVS_MAX_ICE_URIS: usize = 4;
/// Size of each string array in `KvsIceServer`: 256 characters and the NUL.
pub const KVS_ICE_STRING_BUF_LEN: usize = 257;

/// One ICE server, filled by `kvs_viewer_ice_server_get` into caller-owned memory.
/// Initialise with `kvs_ice_server_init`. Strings are NUL-terminated. Size-versioned: the
/// library writes only the fields that fit in `struct_size`.
#[repr(C)]
pub struct KvsIceServer {
    /// `sizeof(KvsIceServer)` of the caller's header, set by `kvs_ice_server_init`.
    pub struct_size: u32,
    /// Number of valid entries in `uris` (1..KVS_MAX_ICE_URIS).
    pub uri_count: u32,
    /// `stun:host:port`, `turn:host:port?transport=udp`, `turns:...`.
    pub uris: [[c_char; KVS_ICE_STRING_BUF_LEN]; KVS_MAX_ICE_URIS],
    /// TURN user name; empty for the STUN server.
    pub username: [c_char; KVS_ICE_STRING_BUF_LEN],
    /// TURN password; empty for the STUN server. A credential: never log it.
    pub password: [c_char; KVS_ICE_STRING_BUF_LEN],
    /// Lifetime of the credentials in seconds, as the service gave it (300 today); 0 for the
    /// STUN server, which does not expire.
    pub ttl_s: u32,
}

/// `sizeof(KvsIceServer)` in the 0.1 header, frozen; the smallest `struct_size` accepted.
pub(crate) const ICE_SERVER_SIZE_0_1: usize = frozen_size(
    std::mem::offset_of!(KvsIceServer, ttl_s) + size_of::<u32>(),
    align_of::<u32>(),
);

fn ice_server_defaults() -> KvsIceServer {
    KvsIceServer {
        struct_size: 0,
        uri_count: 0,
        uris: [[0; KVS_ICE_STRING_BUF_LEN]; KVS_MAX_ICE_URIS],
        username: [0; KVS_ICE_STRING_BUF_LEN],
        password: [0; KVS_ICE_STRING_BUF_LEN],
        ttl_s: 0,
    }
}

/// 0.1 entry point, kept for binaries built against the 0.1 header: zeroes a 0.1-sized
/// server. New code reaches `kvs_ice_server_init_sized` through the
/// `kvs_ice_server_init(server)` macro below, which passes `sizeof *(server)`.
///
/// # Safety
/// `server` must be NULL or point to a writable 0.1-sized `KvsIceServer`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_ice_server_init(server: *mut KvsIceServer) {
    // SAFETY: forwarded contract, with the 0.1 size.
    let _ = unsafe { kvs_ice_server_init_sized(server, ICE_SERVER_SIZE_0_1) };
}

/// Zeroes the caller's `size` bytes at `server` and sets `struct_size = size`. Use the
/// `kvs_ice_server_init` macro, which passes `sizeof *(server)`. Thread-safe.
///
/// Errors: `KVS_ERR_NULL_POINTER`, `KVS_ERR_INVALID_ARGUMENT` (`size` below the 0.1 layout
/// or above 4 GiB; nothing written).
///
/// # Safety
/// `server` must be NULL or point to `size` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_ice_server_init_sized(
    server: *mut KvsIceServer,
    size: usize,
) -> KvsStatus {
    if server.is_null() {
        return null_pointer("server");
    }
    super::guard(|| {
        if size < ICE_SERVER_SIZE_0_1 || u32::try_from(size).is_err() {
            return Err(fail(Error::invalid(
                "size",
                format!(
                    "{size} is not a kvs_ice_server_init struct size (at least \
                     {ICE_SERVER_SIZE_0_1}); pass sizeof the struct"
                ),
            )));
        }
        // SAFETY: non-NULL; `size` writable bytes per the contract.
        unsafe { zero_init(server, size) };
        Ok(())
    })
}

fn as_bytes_mut(buf: &mut [c_char]) -> &mut [u8] {
    // SAFETY: c_char and u8 have the same size and alignment; the slice covers the same memory.
    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), buf.len()) }
}

fn fill(out: &mut KvsIceServer, s: &IceServer) {
    // The core refuses servers with more URIs or longer strings, so nothing is cut here.
    let n = s.uris.len().min(KVS_MAX_ICE_URIS);
    for (slot, uri) in out.uris.iter_mut().zip(&s.uris[..n]) {
        copy_c_string(uri, as_bytes_mut(slot));
    }
    for slot in &mut out.uris[n..] {
        slot[0] = 0;
    }
    out.uri_count = n as u32;
    copy_c_string(&s.username, as_bytes_mut(&mut out.username));
    copy_c_string(s.password(), as_bytes_mut(&mut out.password));
    out.ttl_s = s.ttl_s;
}

/// Number of ICE servers: the regional STUN server (always index 0) plus the TURN servers,
/// at most `KVS_MAX_ICE_SERVERS`. Writes it to `*out_count`.
///
/// The TURN servers were fetched by `kvs_viewer_connect` when it discovered the channel; a
/// viewer connected with a configured `wss_endpoint` fetches them on the first call (one
/// GetSignalingChannelEndpoint, kept, and one GetIceServerConfig). When the servers are within
/// 30 s of their TTL this call fetches new ones, so the servers read right after it are
/// usable; call it before reading them with `kvs_viewer_ice_server_get`.
///
/// Errors: `KVS_ERR_NULL_POINTER`, and when a fetch fails the codes of `kvs_viewer_connect`
/// with the step (`get_endpoint` or `get_ice_config`) named in the detail. The handle stays
/// usable.
///
/// Thread-safety: may run while other threads are in `kvs_viewer_recv` or `kvs_viewer_send`
/// on the same handle; it never blocks the connection. Concurrent ICE calls on one handle
/// wait for each other (one fetch at a time, bounded by the connect timeout). It does not
/// wait for a `kvs_viewer_reconnect` (no WebSocket is needed); `kvs_viewer_close` waits for it.
///
/// # Safety
/// `viewer` must come from `kvs_viewer_connect` and not be closed; `out_count` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_viewer_ice_server_count(
    viewer: *mut KvsViewer,
    out_count: *mut usize,
) -> KvsStatus {
    if out_count.is_null() {
        return null_pointer("out_count");
    }
    with_viewer(viewer, |v| {
        let n = v.ice_servers().map_err(fail)?.len();
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out_count.write(n) };
        Ok(())
    })
}

/// Copies ICE server `index` (0 = STUN) into `*out`, which `kvs_ice_server_init` prepared.
/// Refreshes the TURN servers like `kvs_viewer_ice_server_count` when they are near their TTL.
///
/// Errors: `KVS_ERR_NULL_POINTER`, `KVS_ERR_INVALID_ARGUMENT` (`index` past the count, or
/// `out->struct_size` too small), and the fetch errors of `kvs_viewer_ice_server_count`.
/// `*out` is written only on success.
///
/// Thread-safety: as `kvs_viewer_ice_server_count`.
///
/// # Safety
/// `viewer` must come from `kvs_viewer_connect` and not be closed; `out` must point to a
/// writable `KvsIceServer`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_viewer_ice_server_get(
    viewer: *mut KvsViewer,
    index: usize,
    out: *mut KvsIceServer,
) -> KvsStatus {
    if out.is_null() {
        return null_pointer("out");
    }
    with_viewer(viewer, |v| {
        // SAFETY: non-NULL; the caller guarantees `struct_size` readable, writable bytes.
        let given = unsafe { struct_size_of(out) };
        let n = usable_size::<KvsIceServer>(
            given,
            ICE_SERVER_SIZE_0_1,
            "out.struct_size",
            "kvs_ice_server_init",
        )
        .map_err(fail)?;
        // SAFETY: `n <= given` readable bytes; KvsIceServer is plain data.
        let mut local = unsafe { read_prefix(out, n, ice_server_defaults()) };
        let servers = v.ice_servers().map_err(fail)?;
        let server = servers.get(index).ok_or_else(|| {
            fail(Error::invalid(
                "index",
                format!("{index} is past the {} ICE servers", servers.len()),
            ))
        })?;
        fill(&mut local, server);
        // SAFETY: `n <= given` writable bytes.
        unsafe { write_prefix(out, n, &local) };
        // The local copy held a TURN password.
        zeroize::Zeroize::zeroize(&mut local.password);
        Ok(())
    })
}

/// Copies every ICE server of one fetch at once (STUN first) into `servers[0..count]`, with
/// that fetch's generation: a number that grows with every refresh (`kvs_viewer_refresh_ice_servers`,
/// `KVS_MSG_RECONNECT_ICE_SERVER`, the TTL), so a changed number means new TURN credentials.
/// Unlike `kvs_viewer_ice_server_count` + `_get`, the list cannot mix two fetches. Fetches
/// like `kvs_viewer_ice_server_count` when the servers are near their TTL.
///
/// `servers` is an array of `cap` structs, each prepared by `kvs_ice_server_init` (their
/// `struct_size` is the array's stride); `KVS_MAX_ICE_SERVERS` always suffices.
///
/// Errors: `KVS_ERR_NULL_POINTER` (`servers` with `cap` > 0, `out_count`),
/// `KVS_ERR_BUFFER_TOO_SMALL` (`cap` below the count: only `*out_count` is written, with the
/// count needed), `KVS_ERR_INVALID_ARGUMENT` (`servers[0].struct_size` too small), and the
/// fetch errors of `kvs_viewer_ice_server_count`. `out_generation` may be NULL.
///
/// Thread-safety: as `kvs_viewer_ice_server_count`.
///
/// # Safety
/// `viewer` must come from `kvs_viewer_connect` and not be closed; `servers` must point to
/// `cap` writable structs of the size in `servers[0].struct_size`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_viewer_ice_servers_snapshot(
    viewer: *mut KvsViewer,
    servers: *mut KvsIceServer,
    cap: usize,
    out_count: *mut usize,
    out_generation: *mut u64,
) -> KvsStatus {
    if out_count.is_null() {
        return null_pointer("out_count");
    }
    if servers.is_null() && cap > 0 {
        return null_pointer("servers");
    }
    with_viewer(viewer, |v| {
        let snapshot = v.ice_snapshot().map_err(fail)?;
        let count = snapshot.servers.len();
        if cap < count {
            // SAFETY: checked non-NULL; writable per the contract.
            unsafe { out_count.write(count) };
            return Err(fail(Error::new(
                crate::error::ErrorKind::BufferTooSmall,
                format!("cap: {cap} is below the {count} ICE servers"),
            )));
        }
        if count > 0 {
            // SAFETY: `cap >= count > 0` structs at `servers`; read its `struct_size`.
            let stride = unsafe { struct_size_of(servers) };
            let n = usable_size::<KvsIceServer>(
                stride,
                ICE_SERVER_SIZE_0_1,
                "servers[0].struct_size",
                "kvs_ice_server_init",
            )
            .map_err(fail)?;
            for (i, server) in snapshot.servers.iter().enumerate() {
                // SAFETY: element `i < cap` starts `i * stride` bytes in, and holds `stride >= n`
                // bytes, per the contract.
                let out = unsafe { servers.cast::<u8>().add(i * stride).cast::<KvsIceServer>() };
                // SAFETY: `n` readable bytes at `out`; KvsIceServer is plain data.
                let mut local = unsafe { read_prefix(out, n, ice_server_defaults()) };
                fill(&mut local, server);
                // SAFETY: `n` writable bytes at `out`.
                unsafe { write_prefix(out, n, &local) };
                zeroize::Zeroize::zeroize(&mut local.password);
            }
        }
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out_count.write(count) };
        if !out_generation.is_null() {
            // SAFETY: non-NULL; writable per the contract.
            unsafe { out_generation.write(snapshot.generation) };
        }
        Ok(())
    })
}

/// Fetches the TURN servers now (one GetIceServerConfig; the endpoints are kept), e.g. after
/// a `KVS_MSG_RECONNECT_ICE_SERVER` message or before an ICE restart. Read them afterwards
/// with `kvs_viewer_ice_server_count` / `kvs_viewer_ice_server_get`.
///
/// Errors: `KVS_ERR_NULL_POINTER` and the fetch errors of `kvs_viewer_ice_server_count`; on
/// failure the previous servers stay readable while they are not yet near their TTL.
///
/// Thread-safety: as `kvs_viewer_ice_server_count`.
///
/// # Safety
/// `viewer` must come from `kvs_viewer_connect` and not be closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_viewer_refresh_ice_servers(viewer: *mut KvsViewer) -> KvsStatus {
    with_viewer(viewer, |v| {
        v.refresh_ice_servers().map(|_| ()).map_err(fail)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ice::{MAX_ICE_STRING_LEN, MAX_TURN_SERVERS, MAX_URIS_PER_SERVER};

    /// The header's literals (cbindgen cannot see the core's constants) follow the core.
    #[test]
    fn sizes_match_the_core_limits() {
        assert_eq!(KVS_MAX_ICE_SERVERS, MAX_TURN_SERVERS + 1);
        assert_eq!(KVS_MAX_ICE_URIS, MAX_URIS_PER_SERVER);
        assert_eq!(KVS_ICE_STRING_BUF_LEN, MAX_ICE_STRING_LEN + 1);
    }

    #[test]
    fn frozen_0_1_size() {
        assert_eq!(ICE_SERVER_SIZE_0_1, 1556);
        assert!(size_of::<KvsIceServer>() >= ICE_SERVER_SIZE_0_1);
    }
}
