//! Fidelity proof with the official KVS WebRTC JS SDK (`amazon-kinesis-video-streams-webrtc`,
//! unmodified, `ws` as its WebSocket) from the npm registry: MASTER and VIEWER through the relay
//! (open, offer → answer, candidates both ways), STATUS_RESPONSE for bad payloads, GO_AWAY, and
//! a bad signature. The script is `tests/js/fidelity.js`; its packages are pinned in
//! `tests/js/package-lock.json` and installed by `scripts/test-all.sh` (setup stage) with
//! `npm ci --omit=optional` into `tests/js/node_modules`.

mod common;

use std::path::Path;
use std::process::Command;

use kvs_signaling_emulator::{Emulator, EmulatorConfig};

const JS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js");

fn require_node_modules() {
    let sdk = Path::new(JS_DIR).join("node_modules/amazon-kinesis-video-streams-webrtc");
    assert!(
        sdk.is_dir(),
        "the JS SDK is not installed: run `npm ci --omit=optional` in {JS_DIR} \
         (scripts/test-all.sh's setup stage does)"
    );
}

fn run(emu: &Emulator) -> Vec<String> {
    let mut cmd = Command::new("timeout");
    cmd.args(["120", "node", "fidelity.js"])
        .current_dir(JS_DIR)
        .env("NODE_EXTRA_CA_CERTS", &emu.env().ca_file)
        .env_remove("AWS_SESSION_TOKEN");
    for (k, v) in emu.env().vars() {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("node runs (Node.js 18+ is required)");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "JS SDK script failed: {}", out.status);
    stdout.lines().map(str::to_string).collect()
}

fn check(lines: &[String]) {
    for case in [
        "MASTER opens",
        "VIEWER opens",
        "offer VIEWER -> MASTER (sdpOffer with the viewer id)",
        "answer MASTER -> VIEWER (sdpAnswer from the master, no sender id)",
        "candidates both ways",
        "STATUS_RESPONSE for an oversized payload (statusResponse event)",
        "STATUS_RESPONSE for a payload that is not base64",
        "GO_AWAY reaches the viewer, then the server closes it",
        "a bad signature fails the upgrade: error event with HTTP 403",
    ] {
        assert!(
            lines.iter().any(|l| l == &format!("PASS {case}")),
            "case '{case}' did not pass: {lines:#?}"
        );
    }
}

#[test]
fn official_js_sdk_as_master_and_viewer() {
    require_node_modules();
    let emu = Emulator::start(EmulatorConfig {
        auto_answer: false,
        ..EmulatorConfig::default()
    })
    .unwrap();
    check(&run(&emu));
    // The emulator saw the JS SDK's frames as the service would.
    let events = emu.events();
    assert!(events.iter().any(|e| e["type"] == "frame_in"
        && e["action"] == "SDP_OFFER"
        && e["from"] == "js-sdk-viewer"));
    assert!(
        events.iter().any(|e| e["type"] == "auth"
            && e["verdict"] == "rejected"
            && e["operation"] == "Connect")
    );
}

#[test]
fn official_js_sdk_with_session_credentials() {
    require_node_modules();
    // The session token goes inside the presigned URL's signature (the SDK's own signer).
    let emu = Emulator::start(EmulatorConfig {
        auto_answer: false,
        credentials: vec![kvs_signaling_emulator::Credential::random_session()],
        ..EmulatorConfig::default()
    })
    .unwrap();
    check(&run(&emu));
}
