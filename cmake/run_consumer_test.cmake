# Consumer test, run with `cmake -P`: installs the build tree into a scratch prefix, then
# configures, builds and runs tests/consumer, a standalone project that finds the
# installed package with find_package(forgery) and builds the README example.
#   -DBUILD_DIR=<forgery build tree> -DFORGERY_SOURCE_DIR=<forgery sources>
#   -DCONSUMER_SOURCE_DIR=<tests/consumer> -DGENERATOR=<generator> -DCXX_COMPILER=<path>
#   [-DMAKE_PROGRAM=<path>] [-DCONFIG=<build type>] [-DMULTI_CONFIG=1]
#   [-DEXPECT_MPI=ON] (the installed package must offer the mpi component)
cmake_minimum_required(VERSION 3.21)
foreach(_var BUILD_DIR FORGERY_SOURCE_DIR CONSUMER_SOURCE_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "run_consumer_test.cmake: -D${_var}=... is required")
  endif()
endforeach()

set(_prefix "${BUILD_DIR}/consumer-prefix")
set(_build "${BUILD_DIR}/consumer-build")

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE _result OUTPUT_VARIABLE _output ERROR_VARIABLE _output)
  if(NOT _result EQUAL 0)
    string(REPLACE ";" " " _command "${ARGN}")
    message(NOTICE "${_output}")
    message(FATAL_ERROR "consumer test: ${what} failed (${_result}); its output is above.\n  ${_command}")
  endif()
  message(STATUS "consumer test: ${what}: ok")
  set(step_output "${_output}" PARENT_SCOPE)
endfunction()

set(_config_args "")
set(_consumer_args "")
if(MULTI_CONFIG AND CONFIG)
  set(_config_args --config "${CONFIG}")
  set(_consumer_args --config Release)
endif()

file(REMOVE_RECURSE "${_prefix}" "${_build}")
run_step("install" "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${_prefix}" ${_config_args})

set(_configure "${CMAKE_COMMAND}" -S "${CONSUMER_SOURCE_DIR}" -B "${_build}" -G "${GENERATOR}"
               "-DCMAKE_PREFIX_PATH=${_prefix}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
               "-DFORGERY_SOURCE_DIR=${FORGERY_SOURCE_DIR}" "-DFORGERY_EXPECT_MPI=${EXPECT_MPI}")
if(MAKE_PROGRAM)
  list(APPEND _configure "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
# The consumer is always optimised: it checks packaging, and the README example trains a
# GAN, which takes minutes unoptimised.
set(_consumer_config Release)
if(NOT MULTI_CONFIG)
  list(APPEND _configure "-DCMAKE_BUILD_TYPE=${_consumer_config}")
endif()
run_step("configure" ${_configure})
run_step("build" "${CMAKE_COMMAND}" --build "${_build}" ${_consumer_args})

if(MULTI_CONFIG AND CONFIG)
  set(_program "${_build}/Release/consumer")
else()
  set(_program "${_build}/consumer")
endif()
run_step("run" "${_program}")
message(STATUS "consumer output: ${step_output}")
