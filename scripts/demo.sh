#!/usr/bin/env bash
# Builds the demo example with the release preset and runs it; arguments are passed on to
# it. The default demo trains the DCGAN on Fashion-MNIST (examples/fashion_dcgan) and
# writes its sample grids under demo_out/. Override the example with DEMO=<name> (an
# examples/<name>/ folder); other examples get only the arguments given here.
set -euo pipefail

DEMO="${DEMO:-fashion_dcgan}"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-deps.sh
cmake --preset release
cmake --build --preset release --target "$DEMO"
if [[ "$DEMO" == fashion_dcgan && $# -eq 0 ]]; then
  # The metric classifier is trained on the first run (about 1.5 min) and reused after.
  set -- --steps 2500 --out demo_out/fashion_dcgan --classifier demo_out/classifier.npy
fi
exec "build/release/examples/$DEMO" "$@"
