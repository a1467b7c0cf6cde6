//! The committed C header must be exactly what cbindgen generates from the current source.

use std::path::Path;

#[test]
fn committed_header_is_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_src(root.join("src/ffi/mod.rs"))
        .with_config(config)
        .generate()
        .expect("cbindgen could not parse src/")
        .write(&mut fresh);
    let path = root.join("include/kvs_viewer.h");
    if std::env::var_os("KVS_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &fresh).expect("writing include/kvs_viewer.h");
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/kvs_viewer.h is stale: regenerate it with \
         `KVS_UPDATE_HEADER=1 cargo test --test header` and commit it"
    );
}

#[test]
fn header_version_macros_match_the_package() {
    let header = include_str!("../include/kvs_viewer.h");
    for (name, value) in [
        ("KVS_VIEWER_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("KVS_VIEWER_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("KVS_VIEWER_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        let line = format!("#define {name} {value}\n");
        assert!(header.contains(&line), "header lacks {line:?}");
    }
}
