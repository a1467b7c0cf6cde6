//! Without `ca_file` and with a hashed certificate directory (`SSL_CERT_DIR`, or the system's
//! `/etc/ssl/certs`), the library looks roots up there on demand: the directory here holds only
//! `<subject hash>.0`, no bundle, and the emulator's certificate verifies. The file is read when
//! a handshake needs it, not when the connector is built: added after a failed connect, it is
//! found by the next one. Its own test binary: the store is probed once per process.

use kvs_signaling_emulator::{Emulator, EmulatorConfig};
use kvs_viewer::{Credentials, MessageType, Viewer, ViewerConfig};
use std::time::Duration;

#[test]
fn a_hashed_directory_is_the_system_store() {
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let env = emu.env();
    let ca = openssl::x509::X509::from_pem(&std::fs::read(&env.ca_file).unwrap()).unwrap();
    let dir = std::env::temp_dir().join(format!("kvs-hashed-roots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("{:08x}.0", ca.subject_name_hash());
    // SAFETY: set before any TLS use, while this process's only test runs alone.
    unsafe {
        std::env::remove_var("SSL_CERT_FILE");
        std::env::set_var("SSL_CERT_DIR", &dir);
    }
    let config = ViewerConfig::new(
        &env.region,
        &env.channel_arn,
        "viewer-hashed-roots",
        &env.wss_endpoint,
        Credentials::new(&env.access_key_id, &env.secret_access_key, None),
    );
    assert!(config.ca_file.is_none());
    let err = Viewer::connect(&config).expect_err("an empty directory trusts nothing");
    assert!(err.to_string().contains("certificate"), "{err}");

    std::fs::copy(&env.ca_file, dir.join(&name)).unwrap();
    let v = Viewer::connect(&config).expect("the emulator's CA, found by its hash, is trusted");
    v.send(
        MessageType::SdpOffer,
        br#"{"type":"offer","sdp":"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"}"#,
        None,
    )
    .unwrap();
    let answer = v.recv(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(answer.message_type, MessageType::SdpAnswer);
    v.close().unwrap();

    std::fs::remove_dir_all(&dir).unwrap();
}
