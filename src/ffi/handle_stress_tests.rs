//! Close, shutdown and reconnect racing blocked and busy calls on one handle, through the C
//! entry points, against the emulator. Run under AddressSanitizer (ThreadSanitizer with
//! `KVS_SANITIZERS="address thread"`) by `scripts/test-all.sh sanitize`, 200 iterations
//! each (`KVS_STRESS_ITERATIONS`); plain `cargo test` runs 10.

use std::ffi::c_char;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use kvs_signaling_emulator::{Emulator, EmulatorConfig};

use super::KvsViewer;
use crate::ffi::KvsStatus::{self, KVS_ERR_CLOSED, KVS_OK};
use crate::ffi::{
    KvsMessage, KvsMessageType, kvs_message_init_sized, kvs_viewer_close, kvs_viewer_reconnect,
    kvs_viewer_recv, kvs_viewer_send, kvs_viewer_shutdown,
};
use crate::{Credentials, Viewer, ViewerConfig};

const CANDIDATE: &[u8] = br#"{"candidate":"candidate:1 1 udp 2130706431 192.0.2.20 50000 typ host","sdpMid":"0","sdpMLineIndex":0}"#;
/// Generous bound for what takes milliseconds on loopback (sanitizers are slow).
const BOUND: Duration = Duration::from_secs(30);

fn iterations() -> usize {
    std::env::var("KVS_STRESS_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10)
}

/// A handle shared with the test's threads, as a C application shares its `KvsViewer *`.
#[derive(Clone, Copy)]
struct Handle(*mut KvsViewer);
// SAFETY: the handle is documented as safe to use from any thread.
unsafe impl Send for Handle {}

impl Handle {
    fn inside(self) -> usize {
        // SAFETY: the tests read this only while the handle is alive (before close).
        unsafe { &*self.0 }.gate.lock().inside
    }

    /// Waits (bounded) until at least `n` threads are inside calls on the handle, so a close
    /// that follows never races a call that has not started (that would be the caller's
    /// use-after-free, not the library's).
    fn wait_inside(self, n: usize) {
        let deadline = Instant::now() + BOUND;
        while self.inside() < n {
            assert!(
                Instant::now() < deadline,
                "threads never entered their calls"
            );
            thread::yield_now();
        }
    }
}

fn connect(emu: &Emulator, client_id: &str) -> Handle {
    let env = emu.env();
    let mut config = ViewerConfig::new(
        &env.region,
        &env.channel_arn,
        client_id,
        &env.wss_endpoint,
        Credentials::new(
            &env.access_key_id,
            &env.secret_access_key,
            env.session_token.as_deref(),
        ),
    );
    config.ca_file = Some(env.ca_file.clone());
    // Sanitizers on a loaded machine make a TLS handshake take seconds; the bounds under test
    // are the library's own logic, not its defaults.
    config.connect_timeout = BOUND;
    config.send_timeout = BOUND;
    let viewer = Viewer::connect(&config).expect("viewer connects");
    Handle(Box::into_raw(Box::new(KvsViewer::new(
        viewer,
        config.send_timeout,
    ))))
}

/// `kvs_viewer_recv` with a private message and buffer, until it fails; returns that code.
fn recv_until_failure(h: Handle) -> KvsStatus {
    let mut buf = vec![0 as c_char; 16384];
    let mut msg = MaybeUninit::<KvsMessage>::uninit();
    loop {
        // SAFETY: `msg` has room for a KvsMessage; `buf` outlives the calls.
        let rc = unsafe {
            kvs_message_init_sized(
                msg.as_mut_ptr(),
                size_of::<KvsMessage>(),
                buf.as_mut_ptr(),
                buf.len(),
            );
            kvs_viewer_recv(h.0, msg.as_mut_ptr(), -1)
        };
        if rc != KVS_OK {
            return rc;
        }
    }
}

fn send_candidate(h: Handle) -> KvsStatus {
    // SAFETY: a live handle; the payload is `CANDIDATE.len()` readable bytes.
    unsafe {
        kvs_viewer_send(
            h.0,
            KvsMessageType::KVS_MSG_ICE_CANDIDATE as i32,
            CANDIDATE.as_ptr().cast(),
            CANDIDATE.len(),
            std::ptr::null(),
        )
    }
}

fn emulator() -> Emulator {
    Emulator::start(EmulatorConfig::default()).expect("emulator starts")
}

#[test]
fn close_while_recv_is_blocked() {
    let emu = emulator();
    for i in 0..iterations() {
        let h = connect(&emu, "stress-close");
        let receiver = thread::spawn(move || recv_until_failure(h));
        h.wait_inside(1);
        let started = Instant::now();
        // SAFETY: from connect; the receiver is inside its call, none starts after this.
        assert_eq!(unsafe { kvs_viewer_close(h.0) }, KVS_OK, "iteration {i}");
        assert_eq!(receiver.join().unwrap(), KVS_ERR_CLOSED, "iteration {i}");
        assert!(started.elapsed() < BOUND);
    }
}

#[test]
fn shutdown_while_sends_and_recv_run() {
    let emu = emulator();
    for i in 0..iterations() {
        let h = connect(&emu, "stress-shutdown");
        let receiver = thread::spawn(move || recv_until_failure(h));
        let senders: Vec<_> = (0..2)
            .map(|_| {
                thread::spawn(move || {
                    loop {
                        let rc = send_candidate(h);
                        if rc != KVS_OK {
                            return rc;
                        }
                    }
                })
            })
            .collect();
        h.wait_inside(2);
        // SAFETY (all calls below): a live handle until the close at the end.
        assert_eq!(unsafe { kvs_viewer_shutdown(h.0) }, KVS_OK, "iteration {i}");
        assert_eq!(unsafe { kvs_viewer_shutdown(h.0) }, KVS_OK, "idempotent");
        for s in senders {
            assert_eq!(s.join().unwrap(), KVS_ERR_CLOSED, "iteration {i}");
        }
        assert_eq!(receiver.join().unwrap(), KVS_ERR_CLOSED, "iteration {i}");
        assert_eq!(unsafe { kvs_viewer_reconnect(h.0) }, KVS_ERR_CLOSED);
        assert_eq!(unsafe { kvs_viewer_close(h.0) }, KVS_OK, "iteration {i}");
    }
}

#[test]
fn reconnect_while_sends_and_recv_run() {
    let emu = emulator();
    let client = "stress-reconnect";
    let h = connect(&emu, client);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let receiver = thread::spawn(move || recv_until_failure(h));
    let sender = {
        let (stop, sent) = (stop.clone(), sent.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                // Every send succeeds: during a reconnect it waits and goes out on the new
                // connection.
                assert_eq!(send_candidate(h), KVS_OK);
                sent.fetch_add(1, Ordering::AcqRel);
            }
        })
    };
    for i in 0..iterations() {
        h.wait_inside(2); // the receiver, and the sender in or between its sends
        // SAFETY: a live handle.
        assert_eq!(
            unsafe { kvs_viewer_reconnect(h.0) },
            KVS_OK,
            "reconnect {i}"
        );
    }
    stop.store(true, Ordering::Release);
    sender.join().unwrap();
    // SAFETY (both): a live handle; the receiver is inside recv until the shutdown.
    assert_eq!(unsafe { kvs_viewer_shutdown(h.0) }, KVS_OK);
    assert_eq!(receiver.join().unwrap(), KVS_ERR_CLOSED);
    // SAFETY: nobody uses the handle after this.
    assert_eq!(unsafe { kvs_viewer_close(h.0) }, KVS_OK);

    // Every candidate reported sent reached the service (a send caught by a reconnect may
    // arrive twice: see `call_across_reconnects`).
    let sent = sent.load(Ordering::Acquire);
    let arrived = || {
        emu.events()
            .iter()
            .filter(|e| {
                e["type"] == "frame_in" && e["from"] == client && e["action"] == "ICE_CANDIDATE"
            })
            .count()
    };
    let deadline = Instant::now() + BOUND;
    while arrived() < sent && Instant::now() < deadline {
        thread::yield_now();
    }
    let arrived = arrived();
    assert!(
        arrived >= sent,
        "{sent} candidates sent, only {arrived} arrived"
    );
    assert!(sent > 0);
    println!(
        "reconnect while sending: {} reconnects, {sent} candidates sent, {arrived} arrived \
         ({} twice)",
        iterations(),
        arrived - sent
    );
}
