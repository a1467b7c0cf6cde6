//! Without `ca_file` and with a hashed certificate directory (`SSL_CERT_DIR`, or the system's
//! `/etc/ssl/certs`), the library looks roots up there on demand: the directory here holds only
//! `<subject hash>.0`, no bundle, and the emulator's certificate verifies. The file is read when
//! a handshake needs it, not when the connector is built: added after a failed connect, it is
//! found by the next one. Its own test binary: the store is probed once per process.

use kvs_signaling_emulator::{Emulator, EmulatorConfig};
use kvs_viewer::Viewer;

mod roots_common;

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
    let config = roots_common::config_without_ca_file(env, "viewer-hashed-roots");
    let err = Viewer::connect(&config).expect_err("an empty directory trusts nothing");
    assert!(err.to_string().contains("certificate"), "{err}");

    std::fs::copy(&env.ca_file, dir.join(&name)).unwrap();
    let v = Viewer::connect(&config).expect("the emulator's CA, found by its hash, is trusted");
    roots_common::offer_gets_an_answer(v);

    std::fs::remove_dir_all(&dir).unwrap();
}
