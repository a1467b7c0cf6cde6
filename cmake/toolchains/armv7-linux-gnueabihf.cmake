# Cross-compiling kvs-viewer for 32-bit ARM Linux boards (ARMv7-A, hard float) with Debian's
# cross gcc:
#
#   apt-get install gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user
#   rustup target add armv7-unknown-linux-gnueabihf
#   cmake -S . -B build-armv7 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/armv7-linux-gnueabihf.cmake \
#         -DCMAKE_SYSROOT=$(scripts/sysroot.sh armhf)     # or your board's sysroot
#
# The Rust target (armv7-unknown-linux-gnueabihf) is derived from CMAKE_SYSTEM_PROCESSOR; OpenSSL
# comes from the sysroot, or is built from source without one (KVS_VENDORED_OPENSSL).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7)

set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
# C++ only if your project enables it (package g++-arm-linux-gnueabihf); never the host's c++.
set(CMAKE_CXX_COMPILER arm-linux-gnueabihf-g++)

set(CMAKE_FIND_ROOT_PATH /usr/arm-linux-gnueabihf)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

if(NOT DEFINED CMAKE_CROSSCOMPILING_EMULATOR)
  if(CMAKE_SYSROOT)
    # A full target sysroot (scripts/sysroot.sh, an SDK): its loader, libc and OpenSSL.
    set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm -L "${CMAKE_SYSROOT}")
  elseif(EXISTS /lib/ld-linux-armhf.so.3)
    set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm)
  else()
    set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm -L /usr/arm-linux-gnueabihf)
  endif()
endif()
