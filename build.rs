// Gives the shared library a SONAME carrying the major version, so firmware images can
// ship libkvs_viewer.so.0 next to a future libkvs_viewer.so.1.
fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "android" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libkvs_viewer.so.{major}");
    }
}
