#!/usr/bin/env bash
# Runs the example programs with command lines they must refuse, and checks that each one
# stops at once (no training), with a non-zero status that is not a signal, and a message
# naming the flag or the directory at fault. Registered as the CTest test examples.cli.
#   check_examples.sh SCRATCH_DIR NAME=EXECUTABLE...
# SCRATCH_DIR is a directory the test may fill (it runs there, so nothing lands in the source
# tree); each NAME=EXECUTABLE gives the path of one built example.
set -uo pipefail
scratch=$1
shift
declare -A exes
for pair in "$@"; do
  exes[${pair%%=*}]=${pair#*=}
done
rm -rf "$scratch"
mkdir -p "$scratch"
cd "$scratch" || exit 1
# Where the Fashion-MNIST examples look for data, so that a refusal never depends on it.
export FORGERY_FASHION_MNIST="$scratch/no-data"

failures=0
checked=0

# expect_refusal EXAMPLE EXPECTED_TEXT ARGS...: EXAMPLE with ARGS must exit with 1..125
# within 20 s, and its stderr must contain EXPECTED_TEXT.
expect_refusal() {
  local example=$1 expected=$2
  shift 2
  local exe=${exes[$example]:-}
  checked=$((checked + 1))
  if [[ -z $exe || ! -x $exe ]]; then
    echo "FAIL $example: $exe is not built"
    failures=$((failures + 1))
    return
  fi
  local err
  err=$(timeout 20 "$exe" "$@" 2>&1 >/dev/null)
  local rc=$?
  local what="$example $(printf '%q ' "$@")"
  if ((rc == 124)); then
    echo "FAIL $what: still running after 20 s (it accepted the command line and started)"
  elif ((rc == 0)); then
    echo "FAIL $what: exit status 0, expected a refusal"
  elif ((rc > 125)); then
    echo "FAIL $what: exit status $rc (killed by signal $((rc - 128))?)"
  elif [[ $err == *"Sanitizer"* || $err == *"runtime error:"* ]]; then
    echo "FAIL $what: a sanitizer reported an error: $err"
  elif [[ $err != *"$expected"* ]]; then
    echo "FAIL $what: the message does not name '$expected': $err"
  else
    return
  fi
  failures=$((failures + 1))
}

# expect_help EXAMPLE FLAG...: --help exits 0 and lists every FLAG.
expect_help() {
  local example=$1
  shift
  local exe=${exes[$example]:-} out rc
  checked=$((checked + 1))
  out=$(timeout 20 "$exe" --help 2>&1)
  rc=$?
  if ((rc != 0)); then
    echo "FAIL $example --help: exit status $rc"
    failures=$((failures + 1))
    return
  fi
  for flag in "$@"; do
    if [[ $out != *"$flag"* ]]; then
      echo "FAIL $example --help: '$flag' is not listed"
      failures=$((failures + 1))
    fi
  done
}

file="$scratch/a-regular-file"
touch "$file"
huge_batch=4611686018427387904 # 2^62: batch x 784 wraps to 0 in 64 bits

for example in fashion_mlp_gan fashion_dcgan fashion_cgan fashion_resnet_gan fashion_resnet_cgan; do
  expect_help $example --steps --batch --seed --out --data --classifier --eval --sample-every --ema \
    --checkpoint-every --on-divergence --shards --mpi
  expect_refusal $example --shards --shards -1
  expect_refusal $example --shards --shards abc
  # 3 shards do not divide the batch of 64: refused before training, naming the setting.
  expect_refusal $example Trainer.shards --shards 3 --out "$scratch/$example-shards"
  expect_refusal $example --steps --steps -1
  expect_refusal $example --steps --steps 99999999999999999999
  expect_refusal $example --steps --steps abc
  expect_refusal $example --steps --steps ""
  expect_refusal $example --steps --steps 12junk
  expect_refusal $example --steps --steps 1e3
  expect_refusal $example --steps --steps # value missing
  expect_refusal $example --batch --batch $huge_batch
  expect_refusal $example --batch --batch 0
  expect_refusal $example --batch --batch -4
  expect_refusal $example --batch --batch 18446744073709551616
  expect_refusal $example --ema --ema abc
  expect_refusal $example --ema --ema 0.5junk
  expect_refusal $example --ema --ema ""
  expect_refusal $example --ema --ema nan
  expect_refusal $example --ema --ema inf
  expect_refusal $example --ema --ema 1
  expect_refusal $example --ema --ema -0.1
  expect_refusal $example --seed --seed -1
  expect_refusal $example --seed --seed 18446744073709551616
  expect_refusal $example --eval --eval 1
  expect_refusal $example --sample-every --sample-every -5
  expect_refusal $example --checkpoint-every --checkpoint-every -1
  expect_refusal $example --on-divergence --on-divergence maybe
  expect_refusal $example --out --out ""
  expect_refusal $example --data --data ""
  expect_refusal $example --classifier --classifier ""
  expect_refusal $example "$file/out" --out "$file/out" # ENOTDIR
  expect_refusal $example "$file" --out "$file"
  expect_refusal $example "$file/c" --classifier "$file/c/classifier.npy"
  expect_refusal $example --bogus --bogus 1
  expect_refusal $example stray --steps 10 stray
done
if [[ -d /proc/self ]]; then # /proc takes no new files, even from root, whom chmod does not stop
  expect_refusal fashion_mlp_gan /proc/forgery-cli-test --out /proc/forgery-cli-test
  expect_refusal fashion_mlp_gan /proc --out /proc
  expect_refusal resumable /proc --out /proc
fi

expect_help fashion_classifier --epochs --seed --out --data
expect_refusal fashion_classifier --epochs --epochs 0
expect_refusal fashion_classifier --epochs --epochs 2x
expect_refusal fashion_classifier --epochs --epochs 99999999999
expect_refusal fashion_classifier --out --out ""
expect_refusal fashion_classifier "$file/out" --out "$file/out"
expect_refusal fashion_classifier --bogus --bogus

expect_help toy_ring --steps --seed --out
expect_refusal toy_ring --steps --steps -1
expect_refusal toy_ring --steps --steps 99999999999999999999
expect_refusal toy_ring --seed --seed x
expect_refusal toy_ring --out --out ""
expect_refusal toy_ring "$file/out" --out "$file/out"
expect_refusal toy_ring --bogus --bogus

expect_help resumable --steps --out
expect_refusal resumable --steps --steps -1
expect_refusal resumable --steps --steps 99999999999999999999
expect_refusal resumable --steps --steps 3000x
expect_refusal resumable --out --out ""
expect_refusal resumable "$file/out" --out "$file/out"
expect_refusal resumable --out --out # value missing

expect_help loss_zoo --steps --seed
expect_refusal loss_zoo --steps --steps -1
expect_refusal loss_zoo --steps --steps 99999999999999999999
expect_refusal loss_zoo --seed --seed 1.5
expect_refusal loss_zoo --out --out x # loss_zoo writes nothing and takes no --out

expect_refusal custom_loss --steps --steps 10 # takes no options at all

mkdir -p "$scratch/images" "$scratch/empty" "$scratch/text"
touch "$scratch/text/notes.txt"
expect_help image_folder_gan --data --channels --size --steps --batch --seed --out --cache --on-bad-file \
  --progress-every --sample-every --ema --checkpoint-every
expect_refusal image_folder_gan "--data: a folder of images is required" --steps 10
expect_refusal image_folder_gan --data --data ""
expect_refusal image_folder_gan "$scratch/no-such: no such folder" --data "$scratch/no-such"
expect_refusal image_folder_gan "$file is not a folder" --data "$file"
expect_refusal image_folder_gan "$scratch/empty: empty folder" --data "$scratch/empty"
expect_refusal image_folder_gan "no images among the 1 files" --data "$scratch/text"
expect_refusal image_folder_gan --channels --data "$scratch/images" --channels 2
expect_refusal image_folder_gan --size --data "$scratch/images" --size 30
expect_refusal image_folder_gan --steps --data "$scratch/images" --steps -1
expect_refusal image_folder_gan --batch --data "$scratch/images" --batch 0
expect_refusal image_folder_gan --batch --data "$scratch/images" --batch $huge_batch
expect_refusal image_folder_gan --ema --data "$scratch/images" --ema 1
expect_refusal image_folder_gan --on-bad-file --data "$scratch/images" --on-bad-file ignore
expect_refusal image_folder_gan --cache --data "$scratch/images" --cache ""
expect_refusal image_folder_gan "$file/out" --data "$scratch/images" --out "$file/out"
expect_refusal image_folder_gan --bogus --data "$scratch/images" --bogus

echo "examples.cli: $checked command lines, $failures failures"
((failures == 0))
