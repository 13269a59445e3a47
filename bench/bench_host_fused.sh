#!/usr/bin/env bash
# tokens/s of `host run` with the host's fast paths (training.fused = true) over the
# references (false) on bench/host_step.toml (d_model 512 Llama-style, batch 16 x 128,
# 2 threads). Rounds alternate the two settings and the table reports medians. Speed is
# measured from step 2 to the last step (metrics.jsonl), so start-up, the first step
# and the final validation are excluded.
# Usage: bench/bench_host_fused.sh [BUILD_DIR] [ROUNDS] [STEPS] [DTYPE]
set -euo pipefail
build=${1:-build}
rounds=${2:-3}
steps=${3:-8}
dtype=${4:-float32}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
sets="--set training.steps=$steps --set training.dtype=$dtype --set data.cache_dir=$out/cache"

for round in $(seq "$rounds"); do
  for fused in false true; do
    "$build/host" run "$here/host_step.toml" --output-dir "$out/$fused-$round" $sets --set training.fused=$fused \
      > "$out/$fused-$round.log" 2>&1 || { cat "$out/$fused-$round.log" >&2; exit 1; }
  done
  echo "round $round of $rounds done" >&2
done

python3 - "$out" "$rounds" "$dtype" <<'PY'
import json, statistics, sys
out, rounds, dtype = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def speeds(kind):
    rows = []
    for r in range(1, rounds + 1):
        lines = [json.loads(l) for l in open(f"{out}/{kind}-{r}/metrics.jsonl") if "train/loss" in l]
        rows.append((lines[-1]["tokens"] - lines[0]["tokens"]) / (lines[-1]["time_s"] - lines[0]["time_s"]))
    return rows
ref, fused = speeds("false"), speeds("true")
print(f"| {dtype} | tok/s, each round | median |")
print("|---|---|---|")
print(f"| training.fused = false | {', '.join(f'{x:.0f}' for x in ref)} | {statistics.median(ref):.0f} |")
print(f"| training.fused = true | {', '.join(f'{x:.0f}' for x in fused)} | {statistics.median(fused):.0f} |")
print(f"\nfused / reference: {statistics.median(fused) / statistics.median(ref):.3f}x")
PY
