#!/usr/bin/env bash
# Installs what is missing, then configures, builds and tests the debug (ASan + UBSan) and
# release presets from scratch, then fuzzes the parsers, stopping at the first failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh
cmake --workflow --preset debug
cmake --workflow --preset release
# The parsers' libFuzzer targets (clang 14, ASan + UBSan), FORGERY_FUZZ_SECONDS (60) each.
cmake --workflow --preset fuzz
