//! The object behind `KvsViewer *`, and what makes every call on it safe against every
//! other call on it, `kvs_viewer_close` included.
//!
//! - A gate counts the threads inside any call. `close` shuts the gate (later calls get
//!   `KVS_ERR_CLOSED`), ends the connection so blocked calls return, waits for the count to
//!   reach zero, and only then frees.
//! - `reconnect` first marks the gate "reconnecting" (new send/recv wait there, bounded by
//!   their own timeout), then ends the old connection so blocked calls return, and reconnects
//!   the core viewer (itself safe against concurrent calls). A send or recv that fails with
//!   `Closed` because a reconnect began retries on the new connection. Calls that need no
//!   connection (stats, the fd) never wait for a reconnect, so a log callback may make them
//!   from the I/O thread while the app's `kvs_viewer_reconnect` runs.
//! - The `RwLock` is for `close`: it takes the viewer out only once every call has left.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind};
use crate::session::Viewer;

use super::{KvsStatus, fail};

/// A connected viewer. Opaque: created by `kvs_viewer_connect`, destroyed by
/// `kvs_viewer_close`.
pub struct KvsViewer {
    viewer: RwLock<Viewer>,
    gate: Gate,
    /// How long a send may wait for a reconnect in progress (the core's send bound).
    pub(crate) send_timeout: Duration,
    /// Set when a call panicked mid-operation; the handle then answers `KVS_ERR_CLOSED`.
    poisoned: AtomicBool,
}

#[derive(Default)]
struct GateState {
    /// Threads inside any call on the handle (waiting at the gate included).
    inside: usize,
    closing: bool,
    shut_down: bool,
    reconnecting: bool,
    /// Counts reconnects begun, so a call can tell "closed by a reconnect" from "closed".
    reconnects_begun: u64,
}

#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

/// Proof that a thread is inside a call; leaving the call (or unwinding) lets it out.
pub(crate) struct Pass<'a> {
    gate: &'a Gate,
    reconnects_begun: u64,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut s = self.gate.lock();
        s.inside -= 1;
        if s.inside == 0 {
            self.gate.changed.notify_all();
        }
    }
}

fn closing_error() -> Error {
    Error::closed(None, "the handle is being closed (kvs_viewer_close)")
}

fn poisoned_error() -> Error {
    Error::closed(
        None,
        "this handle is unusable after an internal error; close it",
    )
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Enters a call; waits while a reconnect runs, until `deadline` (`None` = until it ends,
    /// which its connect timeout bounds).
    fn enter(&self, deadline: Option<Instant>) -> Result<Pass<'_>, Error> {
        let mut pass: Pass<'_>; // declared first, so dropped after the lock
        let mut s = self.lock();
        s.inside += 1;
        // From here on, `pass` accounts for this thread, also on the error paths.
        pass = Pass {
            gate: self,
            reconnects_begun: 0,
        };
        loop {
            if s.closing {
                drop(s);
                return Err(closing_error());
            }
            if !s.reconnecting {
                pass.reconnects_begun = s.reconnects_begun;
                return Ok(pass);
            }
            s = match deadline {
                None => self.changed.wait(s).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        drop(s);
                        return Err(Error::new(
                            ErrorKind::Timeout,
                            "a kvs_viewer_reconnect on another thread did not finish in time",
                        ));
                    }
                    self.changed
                        .wait_timeout(s, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }

    /// Enters a call that needs no connection (stats, the fd): never waits for a reconnect.
    fn enter_now(&self) -> Result<Pass<'_>, Error> {
        let mut s = self.lock();
        if s.closing {
            return Err(closing_error());
        }
        s.inside += 1;
        Ok(Pass {
            gate: self,
            reconnects_begun: s.reconnects_begun,
        })
    }

    /// Whether a reconnect began after `pass` entered.
    fn reconnect_began_since(&self, pass: &Pass<'_>) -> bool {
        self.lock().reconnects_begun != pass.reconnects_begun
    }
}

/// Clears "reconnecting" when the reconnect ends, also by a panic, so no call waits forever.
struct Reconnecting<'a>(&'a Gate);

impl Reconnecting<'_> {
    /// Clears the flag; true when a shutdown or close arrived meanwhile.
    fn finish(self) -> bool {
        // One critical section: a shutdown that saw "reconnecting" is seen here.
        let mut s = self.0.lock();
        s.reconnecting = false;
        let end_again = s.closing || s.shut_down;
        drop(s);
        self.0.changed.notify_all();
        std::mem::forget(self);
        end_again
    }
}

impl Drop for Reconnecting<'_> {
    fn drop(&mut self) {
        self.0.lock().reconnecting = false;
        self.0.changed.notify_all();
    }
}

impl KvsViewer {
    pub(crate) fn new(viewer: Viewer, send_timeout: Duration) -> KvsViewer {
        KvsViewer {
            viewer: RwLock::new(viewer),
            gate: Gate::default(),
            send_timeout,
            poisoned: AtomicBool::new(false),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Viewer> {
        self.viewer.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn check_poisoned(&self) -> Result<(), Error> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(poisoned_error());
        }
        Ok(())
    }

    /// Runs `f`; a panic in it (caught later by the FFI guard) poisons the handle first,
    /// while the caller still holds its pass, so the handle is still alive.
    fn poison_on_panic<T>(&self, f: impl FnOnce() -> T) -> T {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(v) => v,
            Err(panic) => {
                self.poisoned.store(true, Ordering::Release);
                resume_unwind(panic)
            }
        }
    }

    /// Runs `f`, which needs no connection, on the viewer at once, also while a reconnect runs.
    pub(crate) fn call<T>(
        &self,
        f: impl FnOnce(&Viewer) -> Result<T, KvsStatus>,
    ) -> Result<T, KvsStatus> {
        let _pass = self.gate.enter_now().map_err(fail)?;
        self.check_poisoned().map_err(fail)?;
        self.poison_on_panic(|| f(&self.read()))
    }

    /// Runs `f` inside the gate until `deadline`, again on the new connection when it failed
    /// with `Closed` because a reconnect began meanwhile. Nothing is lost; a frame the old
    /// connection flushed together with its close frame may be reported failed although it
    /// arrived, so a send interrupted by a reconnect can, rarely, arrive twice.
    pub(crate) fn call_across_reconnects<T>(
        &self,
        deadline: Option<Instant>,
        mut f: impl FnMut(&Viewer, Option<Instant>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        loop {
            let pass = self.gate.enter(deadline)?;
            self.check_poisoned()?;
            match self.poison_on_panic(|| f(&self.read(), deadline)) {
                Err(e) if e.kind == ErrorKind::Closed && self.gate.reconnect_began_since(&pass) => {
                    continue;
                }
                r => return r,
            }
        }
    }

    /// `kvs_viewer_shutdown`: ends the connection; the handle stays valid until close.
    pub(crate) fn shutdown(&self) {
        let _pass: Pass<'_>; // declared first, so dropped after the lock
        let mut s = self.gate.lock();
        if s.closing {
            return; // close is ending it already
        }
        s.inside += 1;
        _pass = Pass {
            gate: &self.gate,
            reconnects_begun: 0,
        };
        s.shut_down = true;
        // A reconnect in progress holds the viewer; it ends its new connection itself when
        // it sees `shut_down`.
        let reconnecting = s.reconnecting;
        drop(s);
        if !reconnecting {
            self.read().request_close();
        }
    }

    /// `kvs_viewer_reconnect`, safe against every other call but close-after-return.
    pub(crate) fn reconnect(&self) -> Result<(), Error> {
        let _pass: Pass<'_>; // declared first, so dropped after the lock
        let mut s = self.gate.lock();
        s.inside += 1;
        _pass = Pass {
            gate: &self.gate,
            reconnects_begun: 0,
        };
        // One reconnect at a time; later ones wait for it (bounded by its connect timeout).
        while s.reconnecting && !s.closing && !s.shut_down {
            s = self.gate.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if s.closing {
            return Err(closing_error());
        }
        if s.shut_down {
            return Err(Error::closed(
                None,
                "the handle was shut down (kvs_viewer_shutdown); close it",
            ));
        }
        self.check_poisoned()?;
        s.reconnecting = true;
        s.reconnects_begun += 1;
        drop(s);
        let flag = Reconnecting(&self.gate);

        // Blocked recv and send calls return `Closed` and leave the read side; they come back
        // through the gate and wait there.
        let result = self.poison_on_panic(|| {
            let viewer = self.read();
            viewer.request_close();
            viewer.reconnect()
        });

        let end_again = flag.finish();
        if end_again {
            // Shutdown or close came meanwhile and left the new connection to us.
            self.read().request_close();
        }
        result
    }

    /// The first half of `kvs_viewer_close`: shuts the gate, ends the connection when calls
    /// are inside so they return, and waits until none is left. `Err` when another close is
    /// already running on this handle.
    pub(crate) fn drain_for_close(&self) -> Result<(), Error> {
        let mut s = self.gate.lock();
        if s.closing {
            return Err(Error::closed(
                None,
                "kvs_viewer_close is already running on this handle",
            ));
        }
        s.closing = true;
        let busy = s.inside > 0;
        let reconnecting = s.reconnecting;
        drop(s);
        self.gate.changed.notify_all(); // calls waiting for a reconnect leave now
        if busy && !reconnecting {
            self.read().request_close();
        }
        let mut s = self.gate.lock();
        while s.inside > 0 {
            // Every call inside is bounded (a woken recv returns at once, a send within its
            // send timeout, a fetch or a reconnect within the connect timeout).
            s = self.gate.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        Ok(())
    }

    /// The second half of `kvs_viewer_close`, once nobody is inside.
    pub(crate) fn into_viewer(self) -> Viewer {
        self.viewer.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
#[path = "handle_stress_tests.rs"]
mod stress_tests;
