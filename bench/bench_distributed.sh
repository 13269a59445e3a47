#!/usr/bin/env bash
# Data-parallel speed-up: tokens/s of 2 processes x 1 thread (torchrun, Gloo) against
# 1 process x 1 thread, the same per-rank batch (so a 2-process step does twice the work),
# on bench/distributed.toml (d_model 512). Rounds alternate the two configurations and the
# table reports medians. Speed is measured from step 2 to the last step (metrics.jsonl), so
# start-up, the first step and the final validation are excluded; the all-reduce share is
# rank 0's time in gradient all-reduce (manifest) over its training time (metrics.jsonl).
# Usage: bench/bench_distributed.sh [BUILD_DIR] [ROUNDS] [STEPS]
set -euo pipefail
build=${1:-build}
rounds=${2:-3}
steps=${3:-8}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
sets="--set training.steps=$steps --set data.cache_dir=$out/cache"

for round in $(seq "$rounds"); do
  env -u WORLD_SIZE -u RANK "$build/host" run "$here/distributed.toml" --output-dir "$out/one-$round" $sets > "$out/one-$round.log" 2>&1
  env -u WORLD_SIZE -u RANK -u OMP_NUM_THREADS python3 -m torch.distributed.run --standalone --nproc-per-node 2 --no-python \
    "$build/host" run "$here/distributed.toml" --output-dir "$out/two-$round" $sets > "$out/two-$round.log" 2>&1
  echo "round $round of $rounds done" >&2
done

python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def measure(kind):
    rows = []
    for r in range(1, rounds + 1):
        d = f"{out}/{kind}-{r}"
        lines = [json.loads(l) for l in open(d + "/metrics.jsonl") if "train/loss" in l]
        seconds = lines[-1]["time_s"] - lines[0]["time_s"]
        m = json.load(open(d + "/manifest.json"))
        dist = m.get("distributed", {})
        rows.append(((lines[-1]["tokens"] - lines[0]["tokens"]) / seconds,
                     dist.get("rank0_allreduce_seconds", 0.0) / lines[-1]["time_s"],
                     dist.get("bucket_mib", 0), dist.get("buckets", 0), m["model"]["params_total"]))
    return rows
one, two = measure("one"), measure("two")
t1 = statistics.median(r[0] for r in one)
t2 = statistics.median(r[0] for r in two)
share = statistics.median(r[1] for r in two)
print(f"| config | tok/s (median of {rounds}) |")
print("|---|---|")
print(f"| 1 process x 1 thread | {t1:.0f} |")
print(f"| 2 processes x 1 thread (gloo) | {t2:.0f} |")
print(f"\nspeed-up 2/1: {t2 / t1:.2f}x; gradient all-reduce: {100 * share:.1f}% of rank 0's training time "
      f"(after backward, no overlap); {two[0][4]} parameters, bucket {two[0][2]} MiB, {two[0][3]} buckets per step")
PY
