#!/usr/bin/env bash
# The README's main job on a built-in default: the paper's whole experiment,
# run by eelsvae-bench. It synthesises the BiFeO3-like SI, trains the 3D-CVAE
# (fast preset) once on the clean SI, injects the paper's eight Fe L-edge
# shifts inside four disks, detects them with the VAE and with PCA (3, 4, 5
# components), sweeps the anomaly concentration, measures reconstruction
# fidelity, and writes results.csv, summary.md, report.html and the figures.
#   tools/demo.sh                  the full default run (about 10 minutes on 2 cores)
#   tools/demo.sh --quick          a small version (under a minute)
#   tools/demo.sh --out DIR …      any other eelsvae-bench option (see --help)
# Output goes to out/demo unless --out is given.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools/install-deps.sh
if [[ ! -d build ]]; then meson setup build >/dev/null; fi
ninja -C build >/dev/null
args=("$@")
if [[ " ${args[*]-} " != *" --out "* ]]; then args=(--out out/demo "${args[@]}"); fi
exec build/examples/eelsvae-bench "${args[@]}"
