//! Without `ca_file`, the library trusts the system store, found the way OpenSSL tools find it
//! (`SSL_CERT_FILE` first, then the usual paths), also with a vendored OpenSSL. Its own test
//! binary: the store is probed once per process.

use kvs_signaling_emulator::{Emulator, EmulatorConfig};
use kvs_viewer::Viewer;

mod roots_common;

#[test]
fn ssl_cert_file_is_the_system_store() {
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let env = emu.env();
    // SAFETY: set before any TLS use, while this process's only test runs alone.
    unsafe { std::env::set_var("SSL_CERT_FILE", &env.ca_file) };
    let config = roots_common::config_without_ca_file(env, "viewer-system-roots");
    let v =
        Viewer::connect(&config).expect("the emulator's CA, given as the system store, is trusted");
    roots_common::offer_gets_an_answer(v);
}
