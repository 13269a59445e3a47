#!/usr/bin/env bash
# Lab 00 (../shared/seeds/lab-00-moe-vs-dense-grammar-tutor.txt) in one command:
# the dense grammar tutor against the same model with one FFN replaced by a
# 4-expert top-2 MoE, 3 seeds each; the routing analysis of the MoE model; the
# lab's manifest.json and findings.md written from the measured numbers.
#   experiments/moe_vs_dense/run.sh [OUT_DIR]   (default runs/lab00-moe-vs-dense)
# A finished run is reused, so an interrupted protocol continues where it stopped.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
host=${MIXLAB_HOST:-$root/build/host}
out=${1:-$root/runs/lab00-moe-vs-dense}
"$host" compare "$here/dense.toml" "$here/moe.toml" --seeds 3 --first-seed 36000 --output-dir "$out"
"$host" analyze "$out/moe/seed-36000" --output-dir "$out" --prompts "$here/prompts.tsv"
python3 "$here/report.py" "$out"
