#!/usr/bin/env bash
# Data-parallel speed-up: tokens/s of 2 processes x 1 thread (torchrun, Gloo) against
# 1 process x 1 thread, the same per-rank batch (so a 2-process step does twice the work),
# on bench/distributed.toml (d_model 512), for both gradient synchronisations
# (MIXLAB_GRAD_SYNC=overlap: all-reduce overlapped with backward; after_backward: the naive
# form), and for two independent processes side by side (no communication: the ceiling of
# the speed-up on this machine). Rounds alternate the configurations; the table reports
# medians. Speed is measured from step 2 to the last step (metrics.jsonl), so start-up, the
# first step and the final validation are excluded. From rank 0's manifest: seconds with an
# all-reduce in flight, the part of them before backward ended (hidden), and the seconds the
# step waited after backward (exposed), each as a share of rank 0's training time. BATCH is the
# batch per rank (distributed.toml's 4 by default): a larger one does more compute per all-reduce.
# Usage: bench/bench_distributed.sh [BUILD_DIR] [ROUNDS] [STEPS] [BUCKET_MIB] [BATCH]
set -euo pipefail
build=${1:-build}
rounds=${2:-3}
steps=${3:-8}
bucket=${4:-25}
batch=${5:-4}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
sets="--set training.steps=$steps --set data.cache_dir=$out/cache --set training.bucket_mib=$bucket --set training.batch_size=$batch"

for round in $(seq "$rounds"); do
  # OMP_NUM_THREADS=1 as torchrun sets it for the ranks: without it the one process's OpenMP
  # keeps a second thread busy (about 0.3 core), with the same tokens/s.
  env -u WORLD_SIZE -u RANK OMP_NUM_THREADS=1 "$build/host" run "$here/distributed.toml" --output-dir "$out/one-$round" $sets \
    > "$out/one-$round.log" 2>&1
  # The ceiling: two independent processes side by side, no communication (what sharing the
  # machine's cores, caches and memory bandwidth costs by itself).
  for i in 1 2; do
    env -u WORLD_SIZE -u RANK OMP_NUM_THREADS=1 "$build/host" run "$here/distributed.toml" --output-dir "$out/pair$i-$round" \
      $sets > "$out/pair$i-$round.log" 2>&1 &
  done
  wait
  for mode in overlap after_backward; do
    env -u WORLD_SIZE -u RANK -u OMP_NUM_THREADS MIXLAB_GRAD_SYNC=$mode python3 -m torch.distributed.run --standalone \
      --nproc-per-node 2 --no-python "$build/host" run "$here/distributed.toml" --output-dir "$out/$mode-$round" $sets \
      > "$out/$mode-$round.log" 2>&1
  done
  echo "round $round of $rounds done" >&2
done

python3 - "$out" "$rounds" "$batch" <<'PY'
import json, statistics, sys
out, rounds, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def measure_one(run):
    lines = [json.loads(l) for l in open(f"{out}/{run}/metrics.jsonl") if "train/loss" in l]
    return (lines[-1]["tokens"] - lines[0]["tokens"]) / (lines[-1]["time_s"] - lines[0]["time_s"])
def measure(kind):
    rows = []
    for r in range(1, rounds + 1):
        d = f"{out}/{kind}-{r}"
        lines = [json.loads(l) for l in open(d + "/metrics.jsonl") if "train/loss" in l]
        seconds = lines[-1]["time_s"] - lines[0]["time_s"]
        m = json.load(open(d + "/manifest.json"))
        dist, total = m.get("distributed", {}), lines[-1]["time_s"]
        rows.append({"tok_s": (lines[-1]["tokens"] - lines[0]["tokens"]) / seconds,
                     "allreduce": dist.get("rank0_allreduce_seconds", 0.0) / total,
                     "hidden": dist.get("rank0_allreduce_hidden_seconds", 0.0) / total,
                     "exposed": dist.get("rank0_allreduce_exposed_seconds", 0.0) / total,
                     "ms": 1000 * dist.get("rank0_allreduce_seconds", 0.0) / lines[-1]["step"],
                     "bucket": dist.get("bucket_mib", 0), "buckets": dist.get("buckets", 0),
                     "params": m["model"]["params_total"]})
    return {k: statistics.median(row[k] for row in rows) for k in rows[0]}
one = measure("one")
pair = statistics.median(measure_one(f"pair1-{r}") + measure_one(f"pair2-{r}") for r in range(1, rounds + 1))
print(f"| config | tok/s (median of {rounds}) | speed-up | all-reduce in flight | of it hidden by backward | exposed (step waits) |")
print("|---|---|---|---|---|---|")
print(f"| 1 process x 1 thread | {one['tok_s']:.0f} | 1.00x | | | |")
print(f"| 2 independent processes x 1 thread (no communication: the ceiling) | {pair:.0f} | {pair / one['tok_s']:.2f}x | | | |")
for mode in ("overlap", "after_backward"):
    t = measure(mode)
    hidden = t["hidden"] / t["allreduce"] if t["allreduce"] else 0
    print(f"| 2 processes x 1 thread, {mode} | {t['tok_s']:.0f} | {t['tok_s'] / one['tok_s']:.2f}x | "
          f"{100 * t['allreduce']:.1f}% ({t['ms']:.0f} ms/step) | {100 * hidden:.0f}% | {100 * t['exposed']:.1f}% |")
print(f"\n{one['params']} parameters, batch {batch} per rank, bucket {t['bucket']} MiB, {t['buckets']} buckets per step; "
      "shares are of rank 0's training time")
PY
