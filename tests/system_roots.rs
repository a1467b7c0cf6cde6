//! Without `ca_file`, the library trusts the system store, found the way OpenSSL tools find it
//! (`SSL_CERT_FILE` first, then the usual paths), also with a vendored OpenSSL. Its own test
//! binary: the store is probed once per process.

use kvs_signaling_emulator::{Emulator, EmulatorConfig};
use kvs_viewer::{Credentials, MessageType, Viewer, ViewerConfig};
use std::time::Duration;

#[test]
fn ssl_cert_file_is_the_system_store() {
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let env = emu.env();
    // SAFETY: set before any TLS use, while this process's only test runs alone.
    unsafe { std::env::set_var("SSL_CERT_FILE", &env.ca_file) };
    let config = ViewerConfig::new(
        &env.region,
        &env.channel_arn,
        "viewer-system-roots",
        &env.wss_endpoint,
        Credentials::new(&env.access_key_id, &env.secret_access_key, None),
    );
    assert!(config.ca_file.is_none());
    let v =
        Viewer::connect(&config).expect("the emulator's CA, given as the system store, is trusted");
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
