# Runs cargo for the kvs-viewer library (cmake -P script, called by the kvs_viewer_cargo target).
#
# Inputs (-D): CARGO, CARGO_ARGS and CARGO_ENV ('|'-separated), WORKDIR, OUT_DIR (cargo's output
# directory for the profile/target), STAGE_DIR, SHARED_REAL (libkvs_viewer.so.X.Y.Z),
# SHARED_SONAME (libkvs_viewer.so.X), NATIVE_LIBS_FILE.
#
# Stages the artifacts in the installed layout (real file + SONAME link + dev link + .a) and
# records rustc's `--print native-static-libs` line (cargo replays it when the crate is fresh).
cmake_minimum_required(VERSION 3.20)

string(REPLACE "|" ";" _args "${CARGO_ARGS}")
string(REPLACE "|" ";" _env "${CARGO_ENV}")

execute_process(
  COMMAND "${CMAKE_COMMAND}" -E env ${_env} "${CARGO}" ${_args}
  WORKING_DIRECTORY "${WORKDIR}"
  RESULT_VARIABLE _rc
  ERROR_VARIABLE _err
  ECHO_ERROR_VARIABLE)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "cargo failed (${_rc})")
endif()

string(REGEX MATCH "native-static-libs: ([^\r\n]*)" _m "${_err}")
if(_m)
  string(STRIP "${CMAKE_MATCH_1}" _libs)
  set(_old "")
  if(EXISTS "${NATIVE_LIBS_FILE}")
    file(READ "${NATIVE_LIBS_FILE}" _old)
  endif()
  if(NOT _old STREQUAL "${_libs}\n")
    file(WRITE "${NATIVE_LIBS_FILE}" "${_libs}\n")
  endif()
endif()

foreach(_f libkvs_viewer.so libkvs_viewer.a)
  if(NOT EXISTS "${OUT_DIR}/${_f}")
    message(FATAL_ERROR "cargo did not produce ${OUT_DIR}/${_f}")
  endif()
endforeach()

file(MAKE_DIRECTORY "${STAGE_DIR}")
execute_process(COMMAND "${CMAKE_COMMAND}" -E copy_if_different
                        "${OUT_DIR}/libkvs_viewer.so" "${STAGE_DIR}/${SHARED_REAL}"
                COMMAND_ERROR_IS_FATAL ANY)
execute_process(COMMAND "${CMAKE_COMMAND}" -E copy_if_different
                        "${OUT_DIR}/libkvs_viewer.a" "${STAGE_DIR}/libkvs_viewer.a"
                COMMAND_ERROR_IS_FATAL ANY)
file(CREATE_LINK "${SHARED_REAL}" "${STAGE_DIR}/${SHARED_SONAME}" SYMBOLIC)
file(CREATE_LINK "${SHARED_SONAME}" "${STAGE_DIR}/libkvs_viewer.so" SYMBOLIC)
