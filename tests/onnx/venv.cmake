# The Python side of the ONNX tests, run with `cmake -P` as the fixture onnx.venv: a venv at
# VENV with onnxruntime and numpy from PyPI (the only download; skipped when the venv already
# imports both), as scripts/conan-test.sh installs Conan.
#   -DPYTHON=<python3> -DVENV=<directory>
cmake_minimum_required(VERSION 3.21)
foreach(_var PYTHON VENV)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "venv.cmake: -D${_var}=... is required")
  endif()
endforeach()

set(_python "${VENV}/bin/python")
if(NOT EXISTS "${_python}")
  execute_process(COMMAND "${PYTHON}" -m venv "${VENV}" RESULT_VARIABLE _result)
  if(NOT _result EQUAL 0)
    message(FATAL_ERROR "cannot create a venv at ${VENV} with ${PYTHON} -m venv (Debian: apt install python3-venv)")
  endif()
endif()
execute_process(COMMAND "${_python}" -c "import numpy, onnxruntime" RESULT_VARIABLE _have OUTPUT_QUIET ERROR_QUIET)
if(NOT _have EQUAL 0)
  # onnxruntime 1.13 is the first with LayerNormalization of opset 17.
  execute_process(COMMAND "${_python}" -m pip install --quiet --disable-pip-version-check "onnxruntime>=1.13" numpy
                  RESULT_VARIABLE _result)
  if(NOT _result EQUAL 0)
    message(FATAL_ERROR "pip could not install onnxruntime and numpy into ${VENV} (is PyPI reachable?)")
  endif()
endif()
execute_process(COMMAND "${_python}" -c "import numpy, onnxruntime; print('onnxruntime', onnxruntime.__version__, 'numpy', numpy.__version__)"
                RESULT_VARIABLE _result)
if(NOT _result EQUAL 0)
  message(FATAL_ERROR "the venv at ${VENV} cannot import onnxruntime and numpy")
endif()
