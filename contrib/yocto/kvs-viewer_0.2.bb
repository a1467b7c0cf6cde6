# kvs-viewer: Kinesis Video Streams WebRTC signaling for viewers, with a small C API.
#
# SKETCH: not built by the project's test command (which has no Yocto tree). What it relies on
# is tested there: a CMake cross build whose toolchain file sets CMAKE_SYSROOT (cmake.bbclass
# does) finds the sysroot's OpenSSL through its pkg-config files and passes --sysroot, the
# multiarch include directory and the linker to cargo; RUSTFLAGS from the environment (Yocto's
# rust classes export it) is extended, not replaced. Check it against your release (written for
# scarthgap-era oe-core classes: cargo_common, cmake, pkgconfig).
#
# The crates: generate kvs-viewer-crates.inc with `bitbake -c update_crates kvs-viewer`
# (cargo-update-recipe-crates), so the build runs offline from the crate:// fetcher.
SUMMARY = "Amazon KVS WebRTC signaling (viewer) with a blocking C API"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://Cargo.toml;md5=0000000000000000000000000000000"

# Your mirror of this repository, at the v0.2.0 tag.
SRC_URI = "git://git.example.invalid/kvs-viewer.git;protocol=https;branch=main"
SRCREV = "${AUTOREV}"
S = "${WORKDIR}/git"

require ${BPN}-crates.inc

DEPENDS = "openssl"

inherit cargo_common cmake pkgconfig
# cargo-update-recipe-crates provides the update_crates task.
inherit cargo-update-recipe-crates

# The board's OpenSSL (DEPENDS), never one built from source; no C tests on the build host.
# RUST_HOST_SYS is the Rust triple of the machine the package runs on (Yocto's naming).
EXTRA_OECMAKE = " \
    -DKVS_RUST_TARGET=${RUST_HOST_SYS} \
    -DKVS_VENDORED_OPENSSL=OFF \
    -DKVS_BUILD_TESTS=OFF \
    -DKVS_CARGO=${CARGO} \
    -DKVS_CARGO_TARGET_DIR=${B}/target \
"

# cargo_common writes CARGO_HOME/config (vendored crates, the target's linker wrapper);
# cmake.bbclass's do_configure does not call it.
do_configure:prepend() {
    cargo_common_do_configure
}

# libkvs_viewer.so.0.2.0 + .so.0 in ${PN}; .so link, .a, header, CMake package, .pc in -dev and
# -staticdev: the default FILES rules split them this way.
