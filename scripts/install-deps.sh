#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages that building and testing forgery needs, if any are
# missing. Set FORGERY_SKIP_DEPS=1 to skip this check (e.g. on another distribution, with
# the equivalents installed by hand).
set -euo pipefail

# Add new build or test dependencies here, one Debian package name per entry.
PACKAGES=(
  build-essential
  cmake
  ninja-build
  pkg-config
  libeigen3-dev
  libxtensor-dev
  xtl-dev
  doctest-dev
  zlib1g-dev
  libstb-dev
  dataset-fashion-mnist
  python3-matplotlib
  # The examples' command lines (examples/CMakeLists.txt: find_package(CLI11 CONFIG)):
  # header-only; the library itself does not use it.
  libcli11-dev
  # The benchmarks' GEMM provider comparison (benchmarks/blas_compare.hpp): OpenBLAS built
  # on OpenMP, so that it shares forgery's thread pool. The library itself needs no BLAS.
  libopenblas-openmp-dev
  # scripts/conan-test.sh (Conan) and the ONNX tests (onnxruntime) install from PyPI into
  # venvs.
  python3-venv
  # ONNX export (forgery/io/onnx.hpp, the forgery::onnx target): libonnx's protobuf classes
  # and checker, and the protobuf headers and library those classes are built on.
  libonnx-dev
  libprotobuf-dev
  # Data-parallel training (forgery/distributed/mpi.hpp, the forgery::mpi target) and its
  # tests: Open MPI's library and headers, and mpirun.
  libopenmpi-dev
  openmpi-bin
  # The fuzz preset: clang with libFuzzer and the sanitizer runtimes, and clang's OpenMP
  # (the top-level CMakeLists.txt finds OpenMP in every configuration).
  clang-14
  libclang-rt-14-dev
  libomp-14-dev
)

if [[ "${FORGERY_SKIP_DEPS:-0}" == 1 ]]; then
  echo "install-deps: FORGERY_SKIP_DEPS=1, not checking system packages."
  exit 0
fi

is_installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

cannot_install() {
  echo "install-deps: $1" >&2
  echo "install-deps: install these packages (or your system's equivalents) by hand:" >&2
  echo "  ${missing[*]}" >&2
  echo "install-deps: or set FORGERY_SKIP_DEPS=1 if they are installed another way." >&2
  exit 1
}

missing=()
if [[ ! -f /etc/debian_version ]] || ! command -v dpkg-query >/dev/null 2>&1; then
  missing=("${PACKAGES[@]}")
  cannot_install "this is not a Debian or Ubuntu system (no /etc/debian_version or dpkg-query), so packages cannot be checked or installed automatically."
fi

for package in "${PACKAGES[@]}"; do
  if ! is_installed "$package"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} required packages are installed."
  exit 0
fi

echo "install-deps: missing packages: ${missing[*]}"
if [[ "$(id -u)" == 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  cannot_install "not running as root and sudo is not available without a password, so apt-get cannot be run."
fi

"${as_root[@]}" apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"

still_missing=()
for package in "${missing[@]}"; do
  if ! is_installed "$package"; then
    still_missing+=("$package")
  fi
done
if ((${#still_missing[@]} > 0)); then
  missing=("${still_missing[@]}")
  cannot_install "apt-get finished but some packages are still not installed."
fi
echo "install-deps: installed ${missing[*]}"
