#!/usr/bin/env bash
# Installs what is missing, then configures, builds and tests the debug (ASan + UBSan) and
# release presets from scratch, stopping at the first failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh
cmake --workflow --preset debug
cmake --workflow --preset release
