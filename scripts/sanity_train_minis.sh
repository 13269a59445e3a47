#!/usr/bin/env bash
# Sanity-trains the first two expert minis at a reduced size on this CPU
# machine (docs/results.md): d_model 128 instead of 512, FFN and expert width
# 512, sequences of 128 tokens, float32 on the CPU; the layer schedules, mixer
# settings, expert counts and top-k, tokenizer (SentencePiece 32000) and data
# (KJV) are the presets'. Prints the first and last losses of each run.
#   scripts/sanity_train_minis.sh [STEPS] [OUT_DIR]    (defaults 300, runs/sanity-minis)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
host=${MIXLAB_HOST:-$root/build/host}
steps=${1:-300}
out=${2:-$root/runs/sanity-minis}
common=(--set model.d_model=128 --set model.max_seq_len=256 --set data.seq_len=128
        --set training.batch_size=8 --set training.steps="$steps" --set training.dtype=float32
        --set training.device=cpu --set training.threads=2 --set optimizer.lr=2e-3
        --set lr_scheduler.warmup_steps=30 --set validation.every=100 --set validation.batches=10
        --set checkpoint.every=0 --set metrics.log_every=10)
run() {  # name file template-overrides...
  local name=$1 file=$2
  shift 2
  rm -rf "$out/$name"
  "$host" run "$root/$file" "${common[@]}" "$@" --output-dir "$out/$name"
  python3 - "$out/$name" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")]
train = [(l["step"], l["train/loss"]) for l in lines if "train/loss" in l]
val = [(l["step"], l["val/loss"]) for l in lines if "val/loss" in l]
m = json.load(open(sys.argv[1] + "/manifest.json"))
print(f"{m['name']}: {m['model']['params_total']:,} parameters; train loss {train[0][1]:.3f} (step {train[0][0]}) -> "
      f"{train[-1][1]:.3f} (step {train[-1][0]}); validation loss " + ", ".join(f"{v:.3f} (step {s})" for s, v in val)
      + f"; unigram baseline {m['data']['unigram_baseline_loss']:.3f}; {m['performance']['tok_per_s']:.0f} tok/s")
PY
}
run progressive_stack_mini experiments/mini/01_arch_expert_progressive_stack_mini.toml \
  --set model.templates.hyena_dense.ffn.hidden=512 --set model.templates.mamba_dense.ffn.hidden=512 \
  --set model.templates.retnet_dense.ffn.hidden=512 --set model.templates.attn_moe.ffn.expert_hidden=512
run blackmamba_moe_mini experiments/mini/02_arch_expert_blackmamba_moe_mini.toml \
  --set model.templates.mamba_moe.ffn.expert_hidden=512 --set model.templates.attn_anchor.ffn.hidden=512
