# A Python virtual environment for tests that need packages from PyPI, run with `cmake -P` as
# a CTest fixture: creates VENV with PYTHON where missing, and pip installs PACKAGES into it
# unless it already imports IMPORTS (so the download happens once per build tree), as
# scripts/conan-test.sh installs Conan. Fails naming the venv and what is missing.
#   -DPYTHON=<python3> -DVENV=<directory> -DPACKAGES=<pip requirement;...> -DIMPORTS=<module;...>
cmake_minimum_required(VERSION 3.21)
foreach(_var PYTHON VENV PACKAGES IMPORTS)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "python_venv.cmake: -D${_var}=... is required")
  endif()
endforeach()

list(JOIN IMPORTS ", " _imports)
set(_python "${VENV}/bin/python")
if(NOT EXISTS "${_python}")
  execute_process(COMMAND "${PYTHON}" -m venv "${VENV}" RESULT_VARIABLE _result)
  if(NOT _result EQUAL 0)
    message(FATAL_ERROR "cannot create a venv at ${VENV} with ${PYTHON} -m venv (Debian: apt install python3-venv)")
  endif()
endif()
execute_process(COMMAND "${_python}" -c "import ${_imports}" RESULT_VARIABLE _have OUTPUT_QUIET ERROR_QUIET)
if(NOT _have EQUAL 0)
  execute_process(COMMAND "${_python}" -m pip install --quiet --disable-pip-version-check ${PACKAGES}
                  RESULT_VARIABLE _result)
  if(NOT _result EQUAL 0)
    message(FATAL_ERROR "pip could not install ${PACKAGES} into ${VENV} (is PyPI reachable?)")
  endif()
endif()
execute_process(COMMAND "${_python}" -c "import ${_imports}" RESULT_VARIABLE _result)
if(NOT _result EQUAL 0)
  message(FATAL_ERROR "the venv at ${VENV} cannot import ${_imports}")
endif()
