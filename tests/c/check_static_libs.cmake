# ctest: the static link line recorded in CMakeLists.txt (installed into KvsViewerConfig.cmake and
# kvs_viewer.pc's Libs.private) must equal what rustc printed for this build with
# --print native-static-libs. -DFILE=<native-static-libs.txt> -DEXPECTED=<"-lssl -lcrypto ...">
if(NOT EXISTS "${FILE}")
  message(FATAL_ERROR "${FILE} is missing: the cargo build did not report native-static-libs")
endif()
file(READ "${FILE}" _got)
string(STRIP "${_got}" _got)
string(REGEX REPLACE "[ \t]+" " " _got "${_got}")
string(REGEX REPLACE "[ \t]+" " " _want "${EXPECTED}")
if(NOT _got STREQUAL _want)
  message(FATAL_ERROR "static link libraries changed:\n  rustc:    ${_got}\n  recorded: ${_want}\n"
                      "Update KVS_STATIC_LINK_LIBS in CMakeLists.txt (and the README).")
endif()
message(STATUS "static link libraries: ${_got}")
