#!/usr/bin/env bash
# tokens/s of `host run` with a fast path over its reference on bench/host_step.toml (d_model 512
# Llama-style, batch 16 x 128, 2 threads): by default the host's fast paths (training.fused = true
# over false); SETTING=KEY=REFERENCE,FAST A/Bs any other switch, e.g. the attention plugin's fused
# RoPE: model.templates.block.mixer.kernels=reference,fused. EXPERIMENT replaces host_step.toml (e.g.
# bench/peer/moe.toml with model.templates.block.ffn.impl=sparse,grouped). Rounds alternate the two values and
# the table reports medians. Speed is measured from step 2 to the last step (metrics.jsonl), so
# start-up, the first step and the final validation are excluded.
# Usage: bench/bench_host_fused.sh [BUILD_DIR] [ROUNDS] [STEPS] [DTYPE] [SETTING] [EXPERIMENT]
set -euo pipefail
build=${1:-build}
rounds=${2:-3}
steps=${3:-8}
dtype=${4:-float32}
setting=${5:-training.fused=false,true}
key=${setting%%=*}
values=${setting#*=}
reference=${values%%,*}
fast=${values#*,}
if [ "$key" = "$setting" ] || [ "$reference" = "$values" ] || [ -z "$reference" ] || [ -z "$fast" ]; then
  echo "bench_host_fused.sh: SETTING must be KEY=REFERENCE,FAST (e.g. training.fused=false,true), got '$setting'" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
experiment=${6:-$here/host_step.toml}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
sets="--set training.steps=$steps --set training.dtype=$dtype --set data.cache_dir=$out/cache"

for round in $(seq "$rounds"); do
  for side in reference fast; do
    value=$reference; [ "$side" = fast ] && value=$fast
    "$build/host" run "$experiment" --output-dir "$out/$side-$round" $sets --set "$key=$value" \
      > "$out/$side-$round.log" 2>&1 || { cat "$out/$side-$round.log" >&2; exit 1; }
  done
  echo "round $round of $rounds done" >&2
done

python3 - "$out" "$rounds" "$dtype" "$key" "$reference" "$fast" <<'PY'
import json, statistics, sys
out, rounds, dtype, key, reference, fast = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
def speeds(side):
    rows = []
    for r in range(1, rounds + 1):
        lines = [json.loads(l) for l in open(f"{out}/{side}-{r}/metrics.jsonl") if "train/loss" in l]
        rows.append((lines[-1]["tokens"] - lines[0]["tokens"]) / (lines[-1]["time_s"] - lines[0]["time_s"]))
    return rows
ref, fused = speeds("reference"), speeds("fast")
print(f"| {dtype} | tok/s, each round | median |")
print("|---|---|---|")
print(f"| {key} = {reference} | {', '.join(f'{x:.0f}' for x in ref)} | {statistics.median(ref):.0f} |")
print(f"| {key} = {fast} | {', '.join(f'{x:.0f}' for x in fused)} | {statistics.median(fused):.0f} |")
print(f"\n{fast} / {reference}: {statistics.median(fused) / statistics.median(ref):.3f}x")
PY
