#!/usr/bin/env bash
# Builds the demo example with the release preset and runs it; arguments are passed on to
# it. Override the example with DEMO=<name> (an examples/<name>/ folder).
set -euo pipefail

DEMO="${DEMO:-loss_zoo}"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-deps.sh
cmake --preset release
cmake --build --preset release --target "$DEMO"
exec "build/release/examples/$DEMO" "$@"
