#!/usr/bin/env bash
# Runs what the cuda preset built, on a machine with a GPU: every CUDA test executable, the
# cuda_ring example (with its CPU comparison) and the GPU step benchmark, each output kept in
# OUTDIR (default BUILD/gpu-check). The executables run directly, not through ctest, so a
# build copied to another path or machine runs as well. Exits non-zero if any part failed.
#   scripts/gpu-check.sh [BUILD (build/cuda)] [OUTDIR]
set -uo pipefail
build=${1:-build/cuda}
out=${2:-$build/gpu-check}
mkdir -p "$out"
status=0

run() { # NAME COMMAND...: runs COMMAND, its output in OUTDIR/NAME.log and on stdout
  local name=$1
  shift
  echo "== $name: $*"
  local start=$SECONDS
  "$@" >"$out/$name.log" 2>&1
  local rc=$?
  cat "$out/$name.log"
  echo "== $name: exit $rc after $((SECONDS - start)) s"
  ((rc == 0)) || status=1
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv >"$out/gpu.txt" 2>&1 || true
cat "$out/gpu.txt"
for test in "$build"/tests/cuda/test_cuda_*; do
  [[ -x $test ]] && run "$(basename "$test")" "$test" --duration=true
done
run cuda_ring "$build/examples/cuda_ring/cuda_ring" --steps 2000 --compare 1
run bench_cuda_steps "$build/benchmarks/cuda/bench_cuda_steps" --json "$out/cuda_steps.json"
exit $status
