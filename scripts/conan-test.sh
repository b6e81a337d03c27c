#!/usr/bin/env bash
# Creates the forgery Conan package and runs its test package (test_package/), offline:
# Conan 2 from PyPI in a venv under build/conan/venv, an isolated CONAN_HOME under
# build/conan/home with no remotes, and the profile conan/profiles/debian12, whose
# [platform_requires] let the Debian packages (libeigen3-dev, libxtensor-dev, zlib1g-dev,
# libstb-dev) satisfy the recipe's requirements. Everything it writes is under build/conan.
# Set FORGERY_CONAN_PROFILE to use another profile.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"
work="$root/build/conan"
profile="${FORGERY_CONAN_PROFILE:-$root/conan/profiles/debian12}"

# Conan itself: the only download, from PyPI.
if [[ ! -x "$work/venv/bin/conan" ]]; then
  python3 -m venv "$work/venv"
  "$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "conan>=2,<3"
fi
conan="$work/venv/bin/conan"

export CONAN_HOME="$work/home"
mkdir -p "$CONAN_HOME"
# No remotes: nothing that Conan does from here on can download anything.
for remote in $("$conan" remote list --format=json | "$work/venv/bin/python" -c \
  'import json, sys; print(" ".join(r["name"] for r in json.load(sys.stdin)))'); do
  "$conan" remote remove "$remote"
done
"$conan" --version

# The test package builds under build/conan/test_package, and no CMakeUserPresets.json is
# written into the source tree.
"$conan" create "$root" --profile:all="$profile" \
  -c tools.cmake.cmake_layout:test_folder="$work/test_package" \
  -c tools.cmake.cmaketoolchain:user_presets=""
