//! What the system-store tests share (each is its own test binary: the store is probed once
//! per process).

use kvs_signaling_emulator::EmulatorEnv;
use kvs_viewer::{Credentials, MessageType, Viewer, ViewerConfig};
use std::time::Duration;

/// A viewer config for the emulator with no `ca_file`: only the system store is trusted.
pub fn config_without_ca_file(env: &EmulatorEnv, client_id: &str) -> ViewerConfig {
    let config = ViewerConfig::new(
        &env.region,
        &env.channel_arn,
        client_id,
        &env.wss_endpoint,
        Credentials::new(&env.access_key_id, &env.secret_access_key, None),
    );
    assert!(config.ca_file.is_none());
    config
}

/// The offer goes out, the emulator's answer comes back, the viewer closes.
pub fn offer_gets_an_answer(v: Viewer) {
    v.send(
        MessageType::SdpOffer,
        br#"{"type":"offer","sdp":"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"}"#,
        None,
    )
    .unwrap();
    let answer = v.recv(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(answer.message_type, MessageType::SdpAnswer);
    v.close().unwrap();
}
