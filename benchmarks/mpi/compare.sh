#!/usr/bin/env bash
# Data-parallel scaling on this machine, in turns: one process with 2 threads (1 shard, and
# 2 shards: the same computation as 2 ranks) against mpirun -np 2 with 1 thread per rank,
# at the same global batch of 64; ROUNDS turns of each (default 3). Prints every turn's
# table; quote the shortest and the median across turns.
# Usage: benchmarks/mpi/compare.sh BUILD_DIR [ROUNDS]
set -euo pipefail
bench=$1/benchmarks/bench_data_parallel
rounds=${2:-3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
echo "model    mode                   batch shards   med ms    min ms  exchange"
for turn in $(seq "$rounds"); do
  echo "# turn $turn"
  OMP_NUM_THREADS=2 "$bench" --local --shards 1
  OMP_NUM_THREADS=2 "$bench" --local --shards 2
  mpirun -np 2 --bind-to core -x OMP_NUM_THREADS=1 "$bench" --shards 2
done
