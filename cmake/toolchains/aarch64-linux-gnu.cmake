# Cross-compiling kvs-viewer (and your firmware) for 64-bit ARM Linux with Debian's cross gcc:
#
#   apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
#   rustup target add aarch64-unknown-linux-gnu
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#         -DCMAKE_SYSROOT=$(scripts/sysroot.sh arm64)     # or your board's sysroot
#
# The Rust target (aarch64-unknown-linux-gnu) is derived from CMAKE_SYSTEM_PROCESSOR. With
# CMAKE_SYSROOT, cargo compiles and links against the sysroot and finds its OpenSSL through the
# sysroot's pkg-config files; without one (or with a sysroot lacking OpenSSL), OpenSSL is built
# from source (KVS_VENDORED_OPENSSL). For a board vendor's SDK, use the SDK's own toolchain file
# (it sets CMAKE_SYSROOT), or copy this one and point the compiler and CMAKE_SYSROOT at the SDK.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
# C++ only if your project enables it (package g++-aarch64-linux-gnu); never the host's c++.
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# Consequence of PACKAGE ONLY: consumers outside the sysroot pass -DKvsViewer_DIR=<prefix>/lib/cmake/KvsViewer.

# Run target binaries (ctest, try_run) through user-mode qemu. With only the cross libc
# (libc6-dev-arm64-cross) qemu needs -L to find the aarch64 loader; once Debian's multiarch
# libc6:arm64 is installed the loader is at /lib and -L must go (with it, threaded programs spin).
if(NOT DEFINED CMAKE_CROSSCOMPILING_EMULATOR)
  if(CMAKE_SYSROOT)
    # A full target sysroot (scripts/sysroot.sh, an SDK): its loader, libc and OpenSSL.
    set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L "${CMAKE_SYSROOT}")
  elseif(EXISTS /lib/ld-linux-aarch64.so.1)
    set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
  else()
    set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
  endif()
endif()
