//! A pollable handle: an fd for event loops instead of a thread blocked in `kvs_viewer_recv`.

use std::os::fd::AsRawFd;

use super::{KvsStatus, KvsViewer, with_viewer};

/// A file descriptor that is readable exactly while `kvs_viewer_recv(viewer, &msg, 0)` would
/// return at once: with a message, or with the code that ends the handle (`KVS_ERR_CLOSED`
/// after `kvs_viewer_shutdown`, or the failure that ended it). For GLib (`g_unix_fd_add(fd,
/// G_IO_IN, ...)`), `epoll` or `select` loops: when it is readable, call `kvs_viewer_recv`
/// with timeout 0 until it returns `KVS_ERR_TIMEOUT`. Level-triggered: it stays readable while
/// messages are queued (a `KVS_ERR_BUFFER_TOO_SMALL` leaves the message, and the fd, as they
/// were).
///
/// Returns the fd (≥ 0), or a negative `KvsStatus`: `KVS_ERR_NULL_POINTER`, or
/// `KVS_ERR_CLOSED` once `kvs_viewer_close` has started. The same fd for the handle's whole
/// life, reconnects included. Only poll it: never read, write or close it; it is closed by
/// `kvs_viewer_close`, so remove it from your loop before. Thread-safety: any thread.
///
/// # Safety
/// `viewer` must be NULL or come from `kvs_viewer_connect` and not be closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_viewer_get_fd(viewer: *const KvsViewer) -> i32 {
    let mut fd = -1;
    let code = with_viewer(viewer, |v| {
        fd = v.ready_fd().as_raw_fd();
        Ok(())
    });
    if code == KvsStatus::KVS_OK {
        fd
    } else {
        code as i32
    }
}
