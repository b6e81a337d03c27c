#!/usr/bin/env bash
# Builds the demo example with the release preset and runs it; arguments are passed on to
# it. The default demo trains the class-conditional DCGAN on Fashion-MNIST
# (examples/fashion_cgan: projection discriminator, spectral norm, hinge loss) and writes
# its sample grids, one row per class, under demo_out/. Override the example with DEMO=<name> (an
# examples/<name>/ folder); other examples get only the arguments given here.
set -euo pipefail

DEMO="${DEMO:-fashion_cgan}"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-deps.sh
cmake --preset release
cmake --build --preset release --target "$DEMO"
if [[ "$DEMO" == fashion_* && "$DEMO" != fashion_classifier && $# -eq 0 ]]; then
  # The metric classifier is trained on the first run (about 40 s) and reused after. The
  # examples resume from OUT/checkpoints; the demo starts afresh each time so that it
  # reproduces the README's figures (and a changed network never meets an old checkpoint).
  rm -rf "demo_out/$DEMO/checkpoints"
  set -- --steps 2000 --out "demo_out/$DEMO" --classifier demo_out/classifier.npy
fi
exec "build/release/examples/$DEMO" "$@"
