#!/usr/bin/env bash
# distributed.mpi: data-parallel training on Open MPI gives the same bits for any rank count.
#   1. bn (conditional, BatchNorm, Dropout, EMA), gp (WGAN-GP in double, 3 critic updates)
#      and rel (relativistic loss, BatchNorm critic), 6 shards: the single-process Trainer
#      on 2 threads and mpirun with 1 rank (2 threads), 2, 3 and 4 ranks (1 thread each; 6
#      shards over 4 ranks are 2, 2, 1, 1) write identical checkpoints (weights, layer and
#      optimizer states, streams) and per-step losses, on every rank.
#   2. A run stopped at step 3 on 2 ranks and resumed on 3 (and one on 3 resumed on 1)
#      ends with the bits of the uninterrupted run.
#   3. Ranks that disagree on the configuration (rank 1 with another seed) refuse to start,
#      naming rank 1.
#   4. Rank 1 alone throwing (as on a file it cannot write) ends the job, naming rank 1.
#   5. kill -9 of rank 1 in a 2-rank run ends the job within 30 s with an error naming
#      rank 1; resuming from its last checkpoint continues bit for bit.
# Usage: check_mpi.sh WORKER MPIRUN
set -euo pipefail
worker=$(readlink -f "$1") mpirun=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/forgery-mpi.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

# Open MPI refuses root unless told, and the CI machine runs as root: allowed here, for these
# runs only. 3 ranks on 2 cores need oversubscription; containers often forbid the
# cross-memory-attach single copy.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
# Under AddressSanitizer (the debug preset) leak checking is off for these runs: Open MPI
# keeps allocations past MPI_Finalize by design, from code built without frame pointers,
# so LeakSanitizer can neither attribute nor suppress them. The same Trainer code runs
# under LeakSanitizer in every other test; the other sanitizer checks stay on here.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
launch() { # launch NP THREADS ARGS...
  local np=$1 threads=$2
  shift 2
  "$mpirun" -np "$np" --oversubscribe --bind-to none -x ASAN_OPTIONS -x OMP_NUM_THREADS="$threads" "$worker" "$@"
}
fail() {
  echo "distributed.mpi: FAIL: $*" >&2
  exit 1
}
same() { # same REFERENCE FILES...: byte-identical
  local ref=$1 f
  shift
  for f in "$@"; do cmp -s "$ref" "$f" || fail "$f differs from $ref"; done
}

steps=4
for model in bn gp rel; do
  OMP_NUM_THREADS=2 "$worker" "$model" --local --shards 6 --steps $steps --out "$model.local"
  launch 1 2 "$model" --shards 6 --steps $steps --out "$model.np1"
  launch 2 1 "$model" --shards 6 --steps $steps --out "$model.np2"
  launch 3 1 "$model" --shards 6 --steps $steps --out "$model.np3"
  launch 4 1 "$model" --shards 6 --steps $steps --out "$model.np4"
  same "$model.local.rank0.fgc" "$model".np*.rank*.fgc
  same "$model.local.rank0.losses" "$model".np*.rank*.losses
  [[ $(wc -l <"$model.local.rank0.losses") -eq $steps ]] || fail "$model: expected $steps loss lines"
  # The shards matter: one shard is another computation (a check that the comparison can fail).
  OMP_NUM_THREADS=2 "$worker" "$model" --local --shards 1 --steps $steps --out "$model.one"
  cmp -s "$model.local.rank0.fgc" "$model.one.rank0.fgc" && fail "$model: 6 shards gave the bits of 1"
  echo "distributed.mpi: $model: 1, 2, 3, 4 ranks and the single-process Trainer agree bit for bit ($steps steps, 6 shards)"
done

# Resume on another rank count.
launch 2 1 bn --shards 6 --steps 3 --out bn.half
launch 3 1 bn --shards 6 --steps $steps --resume bn.half.rank0.fgc --out bn.resumed
same bn.local.rank0.fgc bn.resumed.rank*.fgc
tail -n 1 bn.local.rank0.losses | cmp -s - bn.resumed.rank0.losses || fail "bn: resumed losses differ"
launch 3 1 gp --shards 6 --steps 2 --out gp.half
launch 1 2 gp --shards 6 --steps $steps --resume gp.half.rank0.fgc --out gp.resumed
same gp.local.rank0.fgc gp.resumed.rank0.fgc
echo "distributed.mpi: runs stopped on 2 (3) ranks and resumed on 3 (1) continue bit for bit"

# Ranks that disagree refuse to start.
if launch 2 1 bn --shards 6 --steps 2 --out vary --vary-rank1 >vary.log 2>&1; then
  fail "ranks with different seeds trained"
fi
grep -q "rank 1's differs from rank 0's" vary.log || {
  cat vary.log >&2
  fail "the refusal does not name rank 1"
}
echo "distributed.mpi: ranks with different seeds refuse to start: $(grep -m1 "rank 1's differs" vary.log)"

# A rank that fails alone ends the job (fg::mpi::abort_job), naming itself.
start=$(date +%s%3N)
rc=0
timeout 60 "$mpirun" -np 2 --oversubscribe --bind-to none -x ASAN_OPTIONS -x OMP_NUM_THREADS=1 "$worker" bn \
  --shards 6 --steps 1000 --fail-rank1-at 5 --out failed >failed.log 2>&1 || rc=$?
[[ $rc -ne 0 && $rc -ne 124 ]] || {
  cat failed.log >&2
  fail "a rank failing alone gave status $rc (124: the job hung)"
}
grep -q "rank 1 fails alone on purpose" failed.log && grep -q "rank 1 of 2 ends the job" failed.log || {
  cat failed.log >&2
  fail "the job's error does not name rank 1"
}
echo "distributed.mpi: rank 1 failing alone ended the job in $(($(date +%s%3N) - start)) ms: $(grep -m1 "ends the job" failed.log)"

# A killed rank ends the job, naming it; the last checkpoint resumes bit for bit.
mkdir pids
launch 2 1 bn --shards 6 --steps 100000000 --checkpoint-dir ck --every 50 --pid-dir pids --out killed \
  >killed.log 2>&1 &
job=$!
for _ in $(seq 600); do
  [[ -s pids/rank1.pid ]] && compgen -G "ck/step-*.fgck" >/dev/null && break
  sleep 0.1
done
[[ -s pids/rank1.pid ]] || fail "rank 1 never started"
sleep 1
kill -9 "$(cat pids/rank1.pid)"
killed_at=$(date +%s%3N)
for _ in $(seq 300); do
  kill -0 "$job" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$job" 2>/dev/null; then
  kill -9 "$job" || true
  fail "the job still ran 30 s after rank 1 was killed"
fi
rc=0
wait "$job" || rc=$?
ended_ms=$(($(date +%s%3N) - killed_at))
[[ $rc -ne 0 ]] || fail "the job exited with status 0 after rank 1 was killed"
grep -q "rank 1" killed.log || {
  cat killed.log >&2
  fail "the job's error does not name rank 1"
}
echo "distributed.mpi: rank 1 killed: the job ended in ${ended_ms} ms with status $rc:"
grep "rank 1" killed.log | head -n 2
last=$(ls ck | sed -nE 's/^step-0*([0-9]+)\.fgck$/\1/p' | sort -n | tail -n 1)
[[ -n "$last" ]] || fail "no checkpoint was written before the kill"
target=$((last + 7))
launch 2 1 bn --shards 6 --steps $target --resume ck --out after_kill
OMP_NUM_THREADS=2 "$worker" bn --local --shards 6 --steps $target --out straight
same straight.rank0.fgc after_kill.rank*.fgc
echo "distributed.mpi: resumed from step $last to $target on 2 ranks: the bits of an uninterrupted run"
