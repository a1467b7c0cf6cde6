# ctest: the static link line recorded in CMakeLists.txt (installed into KvsViewerConfig.cmake and
# kvs_viewer.pc's Libs.private) must equal what rustc printed for this build with
# --print native-static-libs, and the generated .pc must carry it with --gc-sections and the
# scoped --as-needed. -DFILE=<native-static-libs.txt> -DEXPECTED=<"-lssl -lcrypto ...">
# -DPC_FILE=<kvs_viewer.pc> -DEXPECTED_PRIVATE=<"-Wl,--gc-sections ... -lssl ... -Wl,--pop-state">
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

if(PC_FILE)
  file(STRINGS "${PC_FILE}" _private REGEX "^Libs.private:")
  string(REGEX REPLACE "^Libs.private: *" "" _private "${_private}")
  if(NOT _private STREQUAL "${EXPECTED_PRIVATE}")
    message(FATAL_ERROR "kvs_viewer.pc Libs.private is\n  '${_private}', expected\n  '${EXPECTED_PRIVATE}'")
  endif()
  if(NOT _private MATCHES "-Wl,--gc-sections")
    message(FATAL_ERROR "kvs_viewer.pc Libs.private lacks -Wl,--gc-sections")
  endif()
  message(STATUS "kvs_viewer.pc Libs.private: ${_private}")
endif()
