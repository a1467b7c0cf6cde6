//! Soak: one viewer, default reconnect behaviour, driven through random faults of the
//! project's emulator (started in this process, on 127.0.0.1) for minutes or hours:
//!
//!     cargo bench --bench soak                  # 3 minutes
//!     cargo bench --bench soak -- --minutes 240 # hours
//!
//! Each round injects one fault (RST, server close 1000/1001/4000, GO_AWAY, ignored pings,
//! freeze, idle cut, service down), then, with no app action beyond recv/send, sends an offer
//! and waits for its answer, and sends candidates. Prints offers sent, answers received,
//! candidates sent vs arrived and reconnects, and exits non-zero if anything was lost.
//! Candidates are sent once the viewer is reconnected, and the next fault waits until they
//! arrived: a frame already in a dead socket's kernel buffer is the one loss the library
//! documents, and this soak is about the rest.

use std::time::{Duration, Instant};

use kvs_signaling_emulator::{Emulator, EmulatorConfig, Fault};
use kvs_viewer::{Credentials, MessageType, Viewer, ViewerConfig};

const OFFER: &str = r#"{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\na=rtpmap:96 H264/90000\r\n"}"#;
const ID: &str = "viewer-soak";
const CANDIDATES_PER_ROUND: usize = 20;

/// xorshift: the faults' order only needs to vary, not to be unpredictable.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn fault(dice: &mut Dice) -> (&'static str, Vec<Fault>, Option<Fault>) {
    let id = || Some(ID.to_owned());
    match dice.roll(8) {
        0 => ("rst", vec![Fault::DropConnection { client_id: id() }], None),
        1 => {
            let code = [1000, 1001, 4000][dice.roll(3) as usize];
            let close = Fault::Close {
                client_id: id(),
                code,
                reason: "soak".into(),
            };
            ("close", vec![close], None)
        }
        2 => {
            let go_away = Fault::GoAway {
                client_id: id(),
                grace_ms: 60_000,
            };
            ("go_away", vec![go_away], None)
        }
        3 => (
            "pings ignored",
            vec![Fault::StopPongs(true)],
            Some(Fault::StopPongs(false)),
        ),
        4 => (
            "freeze",
            vec![Fault::Freeze {
                client_id: id(),
                ms: 0,
            }],
            None,
        ),
        5 => (
            "idle cut",
            vec![Fault::IdleTimeout { secs: 1 }],
            Some(Fault::IdleTimeout { secs: 0 }),
        ),
        6 => {
            let ms = 500 + dice.roll(3000);
            ("service down", vec![Fault::ServerDown { ms }], None)
        }
        _ => ("none", Vec::new(), None),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let minutes: u64 = args
        .iter()
        .position(|a| a == "--minutes")
        .and_then(|i| args.get(i + 1))
        .and_then(|m| m.parse().ok())
        .unwrap_or(3);
    let emu = Emulator::start(EmulatorConfig::default()).expect("emulator starts");
    let env = emu.env();
    let mut config = ViewerConfig::new(
        &env.region,
        &env.channel_arn,
        ID,
        &env.wss_endpoint,
        Credentials::new(&env.access_key_id, &env.secret_access_key, None),
    );
    config.ca_file = Some(env.ca_file.clone());
    // Shorter keepalive than the default, so frozen-peer rounds take seconds, not 15 s.
    config.ping_interval = Duration::from_secs(2);
    config.pong_timeout = Duration::from_secs(1);
    let viewer = Viewer::connect(&config).expect("viewer connects");

    let end = Instant::now() + Duration::from_secs(minutes * 60);
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15 ^ std::process::id() as u64);
    let (mut offers, mut answers, mut sent, mut rounds) = (0u64, 0u64, 0usize, 0u64);
    let mut worst = Duration::ZERO;
    while Instant::now() < end {
        rounds += 1;
        let (name, faults, undo) = fault(&mut dice);
        let reconnects_before = viewer.stats().reconnects;
        let started = Instant::now();
        for f in faults {
            emu.inject(f).expect("fault accepted");
        }
        // Wait for the reconnect the fault causes (if it causes one), bounded.
        if name != "none" {
            let until = Instant::now() + Duration::from_secs(60);
            while viewer.stats().reconnects == reconnects_before && Instant::now() < until {
                match viewer.recv(Some(Duration::from_millis(500))) {
                    Ok(_) => {}
                    Err(e) if e.kind == kvs_viewer::ErrorKind::Timeout => {}
                    Err(e) => panic!("round {rounds} ({name}): {e}"),
                }
            }
        }
        if let Some(undo) = undo {
            emu.inject(undo).expect("fault undone");
        }
        offers += 1;
        viewer
            .send(MessageType::SdpOffer, OFFER.as_bytes(), None)
            .unwrap_or_else(|e| panic!("round {rounds} ({name}): offer: {e}"));
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match viewer.recv(Some(left)) {
                Ok(m) if m.message_type == MessageType::SdpAnswer => break,
                Ok(_) => {}
                Err(e) => panic!("round {rounds} ({name}): no answer: {e}"),
            }
        }
        answers += 1;
        worst = worst.max(started.elapsed());
        for _ in 0..CANDIDATES_PER_ROUND {
            let c = format!(
                r#"{{"candidate":"candidate:{sent} 1 udp 1 10.0.0.1 {} typ host","sdpMid":"0","sdpMLineIndex":0}}"#,
                10_000 + sent % 50_000
            );
            viewer
                .send(MessageType::IceCandidate, c.as_bytes(), None)
                .unwrap_or_else(|e| panic!("round {rounds} ({name}): candidate: {e}"));
            sent += 1;
        }
        // The next fault waits until this round's candidates arrived: what a fault destroys
        // in the kernel's buffers is the documented loss, not what this soak measures.
        let last = format!("candidate:{} ", sent - 1);
        emu.wait_for_event(
            |e| {
                e["type"] == "viewer_candidate"
                    && e["candidate"]
                        .as_str()
                        .is_some_and(|c| c.starts_with(&last))
            },
            Duration::from_secs(30),
        );
        println!(
            "round {rounds}: {name}, answered after {:?}",
            started.elapsed()
        );
    }
    // Every candidate sent must have reached the master.
    let last = format!("candidate:{} ", sent.saturating_sub(1));
    emu.wait_for_event(
        |e| {
            e["type"] == "viewer_candidate"
                && e["candidate"]
                    .as_str()
                    .is_some_and(|c| c.starts_with(&last))
        },
        Duration::from_secs(30),
    );
    let arrived = emu
        .events()
        .iter()
        .filter(|e| e["type"] == "viewer_candidate" && e["client_id"] == ID)
        .count();
    let stats = viewer.stats();
    println!(
        "soak {minutes} min: {rounds} rounds, offers sent {offers}, answers received {answers}, \
         candidates sent {sent}, arrived {arrived}, reconnects {}, slowest recovery {worst:?}",
        stats.reconnects
    );
    let _ = viewer.close();
    if answers != offers || arrived != sent {
        eprintln!(
            "LOST: {} answers, {} candidates",
            offers - answers,
            sent - arrived
        );
        std::process::exit(1);
    }
}
