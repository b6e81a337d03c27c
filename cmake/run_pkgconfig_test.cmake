# pkg-config test, run with `cmake -P` after the consumer test installed into PREFIX:
# `pkg-config --cflags forgery` must succeed on the installed forgery.pc and give an
# include directory that holds forgery/forgery.hpp, and --modversion must be VERSION.
#   -DPKG_CONFIG=<pkg-config> -DPREFIX=<install prefix> -DPC_DIR=<.pc dir, relative> -DVERSION=<x.y.z>
cmake_minimum_required(VERSION 3.21)
foreach(_var PKG_CONFIG PREFIX PC_DIR VERSION)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "run_pkgconfig_test.cmake: -D${_var}=... is required")
  endif()
endforeach()

if(IS_ABSOLUTE "${PC_DIR}")
  set(_pc_path "${PC_DIR}")
else()
  set(_pc_path "${PREFIX}/${PC_DIR}")
endif()
if(NOT EXISTS "${_pc_path}/forgery.pc")
  message(FATAL_ERROR "${_pc_path}/forgery.pc was not installed")
endif()
set(ENV{PKG_CONFIG_PATH} "${_pc_path}")

execute_process(COMMAND "${PKG_CONFIG}" --cflags forgery RESULT_VARIABLE _result OUTPUT_VARIABLE _cflags
                ERROR_VARIABLE _error OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _result EQUAL 0)
  message(FATAL_ERROR "pkg-config --cflags forgery failed (${_result}):\n${_error}")
endif()
message(STATUS "pkg-config --cflags forgery: ${_cflags}")

separate_arguments(_flags UNIX_COMMAND "${_cflags}")
set(_found FALSE)
foreach(_flag IN LISTS _flags)
  if(_flag MATCHES "^-I(.+)$")
    if(EXISTS "${CMAKE_MATCH_1}/forgery/forgery.hpp")
      set(_found TRUE)
    endif()
  endif()
endforeach()
if(NOT _found)
  message(FATAL_ERROR "pkg-config --cflags forgery gives no -I directory holding forgery/forgery.hpp: ${_cflags}")
endif()

execute_process(COMMAND "${PKG_CONFIG}" --modversion forgery RESULT_VARIABLE _result OUTPUT_VARIABLE _version
                ERROR_VARIABLE _error OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _result EQUAL 0 OR NOT _version STREQUAL "${VERSION}")
  message(FATAL_ERROR "pkg-config --modversion forgery gave '${_version}', expected '${VERSION}' ${_error}")
endif()
