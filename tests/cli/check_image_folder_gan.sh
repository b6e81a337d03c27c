#!/usr/bin/env bash
# Trains image_folder_gan for a few steps on a generated folder of 64 images (two class
# subfolders of coloured shapes, 40x36 PNGs) and checks that it exits 0, writes RGB sample
# grids, a generator and checkpoints, caches the decoded images beside the folder, resumes
# from its checkpoint and the cache on a second run, writes grey grids with --channels 1, and
# leaves the image folder untouched. Registered as the CTest test examples.image_folder_gan.
#   check_image_folder_gan.sh SCRATCH_DIR MAKE_IMAGE_FOLDER IMAGE_FOLDER_GAN
set -uo pipefail
scratch=$1 maker=$2 exe=$3
rm -rf "$scratch"
mkdir -p "$scratch"
cd "$scratch" || exit 1
failures=0
fail() {
  echo "FAIL $*"
  failures=$((failures + 1))
}
# png_colour_type FILE: byte 25 of a PNG (IHDR colour type): 0 grey, 2 RGB.
png_colour_type() { od -An -tu1 -j25 -N1 "$1" | tr -d ' '; }

"$maker" shapes 32 || exit 1
before=$(find shapes -type f -exec md5sum {} + | sort)

out=$(timeout 300 "$exe" --data shapes --steps 4 --batch 16 --sample-every 2 --checkpoint-every 2 --out run 2>&1)
rc=$?
((rc == 0)) || fail "first run: exit status $rc: $out"
[[ $out == *"64 images of 3x32x32"* ]] || fail "first run does not report 64 images of 3x32x32: $out"
[[ $out == *"2 class folders"* ]] || fail "first run does not report the 2 class folders: $out"
# generator.onnx where the example is built with the ONNX export (it then says so in --help).
onnx_file=""
[[ $("$exe" --help 2>&1) == *generator.onnx* ]] && onnx_file=run/generator.onnx
for f in run/samples.png run/samples_000002.png run/samples_000004.png run/generator.npy run/log.csv $onnx_file; do
  [[ -s $f ]] || fail "first run did not write $f"
done
[[ -n $(ls run/checkpoints 2>/dev/null) ]] || fail "first run wrote no checkpoint"
[[ -s shapes.forgery-cache/c3_32x32_classes.images.npy ]] || fail "no cache beside the folder"
[[ -f run/samples.png && $(png_colour_type run/samples.png) == 2 ]] || fail "run/samples.png is not an RGB PNG"

out=$(timeout 300 "$exe" --data shapes --steps 6 --batch 16 --sample-every 2 --checkpoint-every 2 --out run 2>&1)
rc=$?
((rc == 0)) || fail "second run: exit status $rc: $out"
[[ $out == *"from the cache"* ]] || fail "second run did not load the cache: $out"
[[ $out == *"resumed from"*"at step 4 of 6"* ]] || fail "second run did not resume at step 4: $out"
[[ -s run/samples_000006.png ]] || fail "second run did not write run/samples_000006.png"

out=$(timeout 300 "$exe" --data shapes --channels 1 --size 28 --steps 2 --batch 8 --cache off --out grey 2>&1)
rc=$?
((rc == 0)) || fail "grey run: exit status $rc: $out"
[[ -f grey/samples.png && $(png_colour_type grey/samples.png) == 0 ]] || fail "grey/samples.png is not a grey PNG"
[[ ! -e shapes.forgery-cache/c1_28x28_classes.key ]] || fail "--cache off wrote a cache"

[[ $(find shapes -type f -exec md5sum {} + | sort) == "$before" ]] || fail "the image folder was modified"

echo "examples.image_folder_gan: $failures failures"
((failures == 0))
