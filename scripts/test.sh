#!/usr/bin/env bash
# Installs what is missing, then configures, builds and tests the debug (ASan + UBSan) and
# release presets from scratch, then fuzzes the parsers, then compiles the CUDA backend's
# tests and example (the cuda preset), then creates and tests the Conan package, stopping at
# the first failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh
cmake --workflow --preset debug
cmake --workflow --preset release
# The parsers' libFuzzer targets (clang 14, ASan + UBSan), FORGERY_FUZZ_SECONDS (60) each.
cmake --workflow --preset fuzz
# The CUDA backend: compiles every CUDA test and example with nvcc (/usr/local/cuda); the
# tests run where a GPU exists and are reported as skipped where none does.
if [[ ! -x /usr/local/cuda/bin/nvcc ]]; then
  echo "scripts/test.sh: /usr/local/cuda/bin/nvcc not found: the cuda preset needs the CUDA toolkit" \
    "(nvcc and cuBLAS; no GPU needed) installed at /usr/local/cuda" >&2
  exit 1
fi
cmake --workflow --preset cuda
# The Conan 2 package: conan create and its test package, offline (Conan from PyPI in a venv
# under build/conan, no remotes, Debian's packages as platform requirements).
bash scripts/conan-test.sh
