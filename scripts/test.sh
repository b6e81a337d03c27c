#!/usr/bin/env bash
# Installs what is missing, then, stopping at the first failure: compiles the CUDA backend's
# tests and example (the cuda preset), creates and tests the Conan package, fuzzes the parsers,
# and configures, builds and tests the debug (ASan + UBSan) and release presets from scratch.
# The release suite runs last, so the last ctest summary printed is the full suite's; the last
# line totals the tests of every stage ("tests: N passed, N failed, N skipped"). Where no GPU
# exists, the CUDA stage's own ctest summary counts only skipped tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

logs=build/test-logs
passed=0 failed=0 skipped=0

# Runs one workflow preset, its output also kept in $logs/NAME.log, and adds its ctest
# summary ("N% tests passed, F tests failed out of T" and the "(Skipped)" list) to the totals.
workflow() {
  local log="$logs/$1.log" total fails skips
  cmake --workflow --preset "$1" 2>&1 | tee "$log"
  total=$(sed -nE 's/.*tests passed, [0-9]+ tests? failed out of ([0-9]+).*/\1/p' "$log" | tail -n 1)
  fails=$(sed -nE 's/.*tests passed, ([0-9]+) tests? failed out of [0-9]+.*/\1/p' "$log" | tail -n 1)
  skips=$(grep -cE '^[[:space:]]*[0-9]+ - .*\(Skipped\)$' "$log" || true)
  if [[ -z "$total" ]]; then
    echo "scripts/test.sh: the $1 workflow printed no ctest summary" >&2
    exit 1
  fi
  passed=$((passed + total - fails - skips)) failed=$((failed + fails)) skipped=$((skipped + skips))
}

bash scripts/install-deps.sh
rm -rf "$logs"
mkdir -p "$logs"
# The CUDA backend: compiles every CUDA test and example with nvcc (/usr/local/cuda); the
# tests run where a GPU exists and are reported as skipped where none does.
if [[ ! -x /usr/local/cuda/bin/nvcc ]]; then
  echo "scripts/test.sh: /usr/local/cuda/bin/nvcc not found: the cuda preset needs the CUDA toolkit" \
    "(nvcc and cuBLAS; no GPU needed) installed at /usr/local/cuda" >&2
  exit 1
fi
workflow cuda
# The Conan 2 package: conan create and its test package, offline (Conan from PyPI in a venv
# under build/conan, no remotes, Debian's packages as platform requirements).
bash scripts/conan-test.sh
passed=$((passed + 1))
# The parsers' libFuzzer targets (clang 14, ASan + UBSan), FORGERY_FUZZ_SECONDS (60) each.
workflow fuzz
workflow debug
workflow release

echo "tests: $passed passed, $failed failed, $skipped skipped"
