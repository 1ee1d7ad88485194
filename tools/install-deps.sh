#!/usr/bin/env bash
# Install the Debian packages libeelsvae needs, when any is missing.
#   tools/install-deps.sh            build + test dependencies (HyperSpy is the
#                                    oracle of the file-format tests)
#   tools/install-deps.sh --bench    also the speed peer PyTorch
#   tools/install-deps.sh --fuzz     also clang's libFuzzer (fuzz/run.sh)
set -euo pipefail

packages=(gcc g++ meson ninja-build pkg-config libfftw3-dev libopenblas-dev liblapacke-dev valgrind abigail-tools
          libcmocka-dev libpng-dev libtiff-dev libhdf5-dev doxygen python3-numpy python3-scipy python3-sklearn
          python3-pytest python3-hyperspy python3-tifffile)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3-torch)
fi
if [[ "${1:-}" == "--fuzz" ]]; then
  packages+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "installing: ${missing[*]}" >&2
if [[ $(id -u) -eq 0 ]]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
  echo "not root and no sudo: run as root: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
