################################################################################
#
# kvs-viewer
#
# SKETCH: not built by the project's test command (which has no Buildroot tree). What it
# relies on is tested there: Buildroot's toolchainfile.cmake sets CMAKE_SYSROOT, and with it
# the CMake build passes --sysroot, the include directories and the linker to cargo and finds
# the sysroot's OpenSSL through its pkg-config files. Copy this directory to package/kvs-viewer
# (and source its Config.in from package/Config.in), or use it from a BR2_EXTERNAL tree.
#
################################################################################

KVS_VIEWER_VERSION = 0.2.0
# Your mirror of this repository.
KVS_VIEWER_SITE = https://git.example.invalid/kvs-viewer.git
KVS_VIEWER_SITE_METHOD = git
KVS_VIEWER_LICENSE = Apache-2.0
KVS_VIEWER_LICENSE_FILES = Cargo.toml
KVS_VIEWER_INSTALL_STAGING = YES
KVS_VIEWER_DEPENDENCIES = host-rustc host-pkgconf openssl

# Vendor the crates at download time (as cargo-package does), build offline from them.
KVS_VIEWER_DOWNLOAD_POST_PROCESS = cargo
KVS_VIEWER_DL_ENV = $(PKG_CARGO_ENV)
KVS_VIEWER_MAKE_ENV = $(PKG_CARGO_ENV)

# The board's OpenSSL, never one built from source; no C tests on the build host.
KVS_VIEWER_CONF_OPTS = \
	-DKVS_RUST_TARGET=$(RUSTC_TARGET_NAME) \
	-DKVS_VENDORED_OPENSSL=OFF \
	-DKVS_BUILD_TESTS=OFF \
	-DKVS_CARGO=$(HOST_DIR)/bin/cargo \
	-DKVS_CARGO_TARGET_DIR=$(@D)/target

$(eval $(cmake-package))
