# Compile-fail check, run with `cmake -P`: building TARGET in BUILD_DIR must fail, and the
# build output must contain the text of SOURCE's `// expect: <text>` line, so the failure
# is the intended diagnostic and not some other error.
#   -DBUILD_DIR=<build tree> -DTARGET=<target> -DSOURCE=<file> [-DMULTI_CONFIG=1 -DCONFIG=<config>]
cmake_minimum_required(VERSION 3.21)
foreach(_var BUILD_DIR TARGET SOURCE)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "expect_build_failure.cmake: -D${_var}=... is required")
  endif()
endforeach()

file(STRINGS "${SOURCE}" _lines REGEX "^[ \t]*//[ \t]*expect:")
if(NOT _lines)
  message(FATAL_ERROR "${SOURCE} has no `// expect: <text>` line")
endif()
list(GET _lines 0 _expect)
string(REGEX REPLACE "^[ \t]*//[ \t]*expect:[ \t]*" "" _expect "${_expect}")
string(STRIP "${_expect}" _expect)
if(_expect STREQUAL "")
  message(FATAL_ERROR "${SOURCE}: the `// expect:` line has no text")
endif()

set(_config_args "")
if(MULTI_CONFIG AND CONFIG)
  set(_config_args --config "${CONFIG}")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${BUILD_DIR}" --target "${TARGET}" ${_config_args}
                RESULT_VARIABLE _result OUTPUT_VARIABLE _output ERROR_VARIABLE _output)

if(_result EQUAL 0)
  message(NOTICE "${_output}")
  message(FATAL_ERROR "${TARGET} compiled, but ${SOURCE} must not compile.")
endif()
string(FIND "${_output}" "${_expect}" _at)
if(_at EQUAL -1)
  message(NOTICE "${_output}")
  message(FATAL_ERROR "${TARGET} failed to compile, but the build output (above) does not contain the expected "
                      "text \"${_expect}\" from ${SOURCE}.")
endif()
message(STATUS "${TARGET} failed to compile as expected (found \"${_expect}\")")
