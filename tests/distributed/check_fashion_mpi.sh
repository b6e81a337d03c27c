#!/usr/bin/env bash
# examples.mpi: the Fashion-MNIST recipes run under mpirun with --mpi and nothing else
# changed. fashion_dcgan and fashion_resnet_gan, 2 ranks with 1 thread each, write the same
# checkpoint bytes as one process with 2 threads and --shards 2, and only rank 0 writes the
# outputs (one log line per step, one set of files).
# Usage: check_fashion_mpi.sh SCRATCH MPIRUN DCGAN RESNET_GAN
set -euo pipefail
scratch=$1 mpirun=$2
declare -A exe=([fashion_dcgan]=$3 [fashion_resnet_gan]=$4)
rm -rf "$scratch"
mkdir -p "$scratch"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
# Under AddressSanitizer (the debug preset) leak checking is off for these runs: Open MPI
# keeps allocations past MPI_Finalize by design, from code built without frame pointers,
# so LeakSanitizer can neither attribute nor suppress them. The same Trainer code runs
# under LeakSanitizer in every other test; the other sanitizer checks stay on here.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
fail() {
  echo "examples.mpi: FAIL: $*" >&2
  exit 1
}
steps=2
for name in fashion_dcgan fashion_resnet_gan; do
  common=(--steps $steps --batch 16 --eval 0 --checkpoint-every $steps --sample-every $steps)
  "$mpirun" -np 2 --oversubscribe --bind-to none -x ASAN_OPTIONS -x OMP_NUM_THREADS=1 "${exe[$name]}" --mpi \
    "${common[@]}" --out "$scratch/$name-mpi" >"$scratch/$name-mpi.log" 2>&1 ||
    {
      cat "$scratch/$name-mpi.log" >&2
      fail "$name under mpirun -np 2 failed"
    }
  OMP_NUM_THREADS=2 "${exe[$name]}" --shards 2 "${common[@]}" --out "$scratch/$name-one" >"$scratch/$name-one.log" 2>&1 ||
    {
      cat "$scratch/$name-one.log" >&2
      fail "$name --shards 2 failed"
    }
  ck=$(printf 'checkpoints/step-%012d.fgck' $steps)
  cmp "$scratch/$name-mpi/$ck" "$scratch/$name-one/$ck" || fail "$name: 2 ranks and 1 process with 2 shards differ"
  cmp "$scratch/$name-mpi/generator.npy" "$scratch/$name-one/generator.npy" || fail "$name: generator.npy differs"
  [[ $(wc -l <"$scratch/$name-mpi/log.csv") -eq $((steps + 1)) ]] || fail "$name: log.csv is not one header and $steps rows"
  grep -q "data-parallel: 2 ranks, 2 shards of 8 samples" "$scratch/$name-mpi.log" || fail "$name: no data-parallel line"
  echo "examples.mpi: $name: mpirun -np 2 --mpi and one process with --shards 2 wrote the same checkpoint and generator"
done
