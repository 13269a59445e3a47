#!/usr/bin/env bash
# The first run on a lent CUDA GPU, as one command (bench/README.md, "GPU"). On a machine with
# an NVIDIA GPU it
#   1. configures and builds the host, the bundled plugins and bench_matmul (Ninja, -j$(nproc))
#      against the LibTorch of the machine's python3 (or MIXLAB_TORCH_DIR), and against the
#      unpacked Debian packages in gpu-deps/ when that folder is there (scripts/gpu_deps.sh);
#   2. runs every bundled plugin's conformance suite with --device cuda (ctest -L conformance);
#   3. trains the quickstart (experiments/quickstart.toml, 300 steps) on cuda in bfloat16 and in
#      float32, and compares their validation losses;
#   4. measures the matmul peak (bench_matmul, 8192^3) in bfloat16 and float32 and trains
#      bench/gpu_speed.toml (d_model 1024) in each: steady tokens/s and MFU against that peak;
#   5. prints one summary, also written as BUILD/gpu-check/<time>/summary.json.
# Each step runs under a time limit so that the whole fits the device tool's 10 minutes; a
# failed step is reported and the steps that do not need its output still run.
# Without a GPU it prints "gpu_check: no CUDA GPU: skipped" and exits 0 without building.
# MIXLAB_GPU_CHECK_FORCE_CPU=1 runs the same steps on the CPU with tiny sizes: a dry run of the
# plumbing (build folder, flags, parsing, summary) before the one run on a GPU.
# Exit status: 0 when every step passed, 1 when one failed.
# Usage: scripts/gpu_check.sh [BUILD_DIR]   (default build-gpu, or build-gpu-cpu in the dry run)
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
force_cpu=${MIXLAB_GPU_CHECK_FORCE_CPU:-0}
smi=${MIXLAB_GPU_CHECK_NVIDIA_SMI:-nvidia-smi}  # the tests point this at `false` to check the skip

if [ "$force_cpu" = 1 ]; then
  device=cpu
  gpu_name="none (MIXLAB_GPU_CHECK_FORCE_CPU=1: CPU dry run, tiny sizes)"
else
  gpus=$("$smi" --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader 2>/dev/null) || gpus=""
  if [ -z "$gpus" ]; then
    echo "gpu_check: no CUDA GPU: skipped"
    exit 0
  fi
  device=cuda
  gpu_name=$(head -1 <<<"$gpus")
fi
build=$(realpath -m "${1:-$repo/build-gpu$([ "$device" = cpu ] && echo -cpu)}")
work="$build/gpu-check/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$work"
jobs=$(nproc)
start_all=$SECONDS
# Seconds the whole may take: the device tool allows 600 per command; the rest is for the caller.
budget=${MIXLAB_GPU_CHECK_BUDGET_S:-570}
step_rc=0
steps=()  # "name<TAB>status<TAB>seconds<TAB>result" per step
failed=0

# step NAME LIMIT_S CMD...: runs CMD with its output in $work/NAME.log under a time limit, cut to
# what is left of the budget; with under 10 s left it does not start (status 125).
step() {
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS left=$((budget - (SECONDS - start_all)))
  last_seconds=0 step_rc=0
  if [ $left -lt 10 ]; then
    step_rc=125
    echo "gpu_check: $name: not started, ${budget} s budget spent" >&2
    return 125
  fi
  [ $limit -gt $left ] && limit=$left
  echo "gpu_check: $name ..." >&2
  timeout --kill-after=10 "$limit" "$@" >"$work/$name.log" 2>&1
  local rc=$?
  step_rc=$rc
  last_seconds=$((SECONDS - t0))
  if [ $rc -ne 0 ]; then
    [ $rc -eq 124 ] && echo "gpu_check: $name: over its ${limit} s limit" >>"$work/$name.log"
    echo "gpu_check: $name failed (exit $rc); the end of $work/$name.log:" >&2
    tail -n 25 "$work/$name.log" >&2
  fi
  return $rc
}
record() {  # record NAME STATUS RESULT (a step that did not start for lack of time is SKIP)
  local status=$2 result=$3
  [ $step_rc -eq 125 ] && status=SKIP result="not started: the ${budget} s budget was spent"
  steps+=("$1"$'\t'"$status"$'\t'"$last_seconds"$'\t'"$result")
  [ "$status" = ok ] || failed=1
  return 0
}

# ------------------------------------------------------------ 1. configure and build
config=(-G Ninja -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMIXLAB_CONFORMANCE_DEVICE="$device"
        -DPython3_EXECUTABLE="$(command -v python3)")
if [ -d "$repo/gpu-deps/usr" ]; then
  config+=(-DMIXLAB_DEPS_DIR="$repo/gpu-deps")
  # Their libraries' own dependencies (spdlog -> fmt) are not on the build's run path.
  export LD_LIBRARY_PATH="$repo/gpu-deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
[ -n "${MIXLAB_TORCH_DIR:-}" ] && config+=(-DMIXLAB_TORCH_DIR="$MIXLAB_TORCH_DIR")
[ "$device" = cuda ] && config+=(-DTORCH_CUDA_ARCH_LIST="$(cut -d, -f2 <<<"$gpu_name" | tr -d ' ')")
built=0
if step configure 180 cmake "${config[@]}"; then
  torch_version=$(sed -n 's/^Torch_DIR:PATH=//p' "$build/CMakeCache.txt" | xargs -I{} sed -n 's/^set(PACKAGE_VERSION "\(.*\)")/\1/p' {}/TorchConfigVersion.cmake)
  record configure ok "LibTorch $torch_version$([ -d "$repo/gpu-deps/usr" ] && echo ", gpu-deps/")"
  plugins=$(ctest --test-dir "$build" -N -L conformance | sed -n 's/.*conformance\.\([A-Za-z0-9_]*\)$/\1/p')
  if step build 420 cmake --build "$build" -j "$jobs" --target host bench_matmul $plugins; then
    record build ok "host, bench_matmul, $(wc -w <<<"$plugins") plugins, -j $jobs"
    built=1
  else
    record build FAIL "see $work/build.log"
  fi
else
  record configure FAIL "see $work/configure.log"
fi

# ------------------------------------------------------------ 2. conformance on the device
if [ $built = 1 ]; then
  rm -f "$build"/conformance-*.xml  # this run's reports only
  step conformance 300 ctest --test-dir "$build" -L conformance -j "$(wc -w <<<"$plugins")" --output-on-failure --timeout 280
  rc=$?
  counts=$(python3 - "$build" $plugins <<'PY'
import sys, xml.etree.ElementTree as ET
build, plugins = sys.argv[1], sys.argv[2:]
total = {"tests": 0, "failures": 0, "skipped": 0}
failing = []
for p in plugins:
    try:
        root = ET.parse(f"{build}/conformance-{p}.xml").getroot()
    except (OSError, ET.ParseError):
        failing.append(f"{p} (no report)")
        continue
    for suite in root.iter("testsuite"):
        for k in total:
            total[k] += int(suite.get(k, 0))
        failing += [f"{suite.get('name')}:{tc.get('name')}" for tc in suite.iter("testcase") if tc.find("failure") is not None]
passed = total["tests"] - total["failures"] - total["skipped"]
print(f"{len(plugins)} plugins: {passed} passed, {total['failures']} failed, {total['skipped']} skipped"
      + (f"; failing: {', '.join(failing[:8])}" if failing else ""))
PY
)
  record conformance "$([ $rc -eq 0 ] && echo ok || echo FAIL)" "$counts"
fi

# ------------------------------------------------------------ 3, 4. quickstart and speed, bf16 first
# Reads a finished run: final validation loss and tokens/s from its manifest.
run_result() {
  python3 - "$1" <<'PY'
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json"))
r, p = m["results"], m["performance"]
print(f"{r.get('final_val_loss', float('nan')):.4f} {p['tok_per_s']:.0f}")
PY
}
# Steady tokens/s of a run from its metrics (from step WARM on) and MFU against PEAK GFLOP/s.
speed_result() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
run, warm, peak = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
lines = [json.loads(l) for l in open(run + "/metrics.jsonl") if "train/loss" in l]
first = next(l for l in lines if l["step"] >= warm)
last = lines[-1]
tok_s = (last["tokens"] - first["tokens"]) / (last["time_s"] - first["time_s"])
m = json.load(open(run + "/manifest.json"))
flops = m["model"]["train_flops_per_token"]
mfu = f"MFU {100 * flops * tok_s / (peak * 1e9):.1f}% of the measured peak" if peak > 0 else "no peak measured"
print(f"{tok_s:.0f} tok/s (steps {first['step']}..{last['step']}), {mfu}, "
      f"{m['model']['params_total'] / 1e6:.1f}M params, d_model {m['config']['model']['d_model']}")
PY
}
if [ "$device" = cuda ]; then
  matmul_n=8192 warm_step=20 tiny_quickstart=() tiny_speed=()
else
  matmul_n=256 warm_step=2
  tiny_quickstart=(--set training.steps=20 --set validation.every=10 --set validation.batches=2 --set checkpoint.every=0)
  tiny_speed=(--set model.d_model=64 --set model.max_seq_len=32 --set data.seq_len=32 --set training.batch_size=2
              --set training.steps=6 --set metrics.log_every=2 --set model.schedule.0.repeat=2
              --set model.templates.block.mixer.n_heads=4)
fi
declare -A val_loss
for dtype in bfloat16 float32; do
  [ $built = 1 ] || break
  name=quickstart-$dtype
  if step "$name" 240 "$build/host" run "$repo/experiments/quickstart.toml" --output-dir "$work/$name" \
       --set training.device="$device" --set training.dtype="$dtype" --set data.cache_dir="$work/cache" \
       "${tiny_quickstart[@]}" && read -r loss tok < <(run_result "$work/$name"); then
    val_loss[$dtype]=$loss
    record "$name" ok "val loss $loss, $tok tok/s"
  else
    record "$name" FAIL "see $work/$name.log"
  fi

  peak=""
  if step "matmul-$dtype" 60 "$build/bench/bench_matmul" --device "$device" --dtype "$dtype" --n "$matmul_n" --repeats 10 --json; then
    peak=$(python3 -c 'import json,sys; print(f"{json.loads(sys.stdin.read())[\"gflops\"]:.0f}")' <"$work/matmul-$dtype.log")
    record "matmul peak $dtype" ok "$peak GFLOP/s (${matmul_n}^3, bench_matmul)"
  else
    record "matmul peak $dtype" FAIL "see $work/matmul-$dtype.log"
  fi
  name=speed-d1024-$dtype
  if step "$name" 180 "$build/host" run "$repo/bench/gpu_speed.toml" --output-dir "$work/$name" \
       --set training.device="$device" --set training.dtype="$dtype" --set data.cache_dir="$work/cache" "${tiny_speed[@]}" &&
     result=$(speed_result "$work/$name" "$warm_step" "${peak:-0}"); then
    record "speed d1024 $dtype" ok "$result"
  else
    record "speed d1024 $dtype" FAIL "see $work/$name.log"
  fi
done
if [ -n "${val_loss[bfloat16]:-}" ] && [ -n "${val_loss[float32]:-}" ]; then
  last_seconds=0 step_rc=0
  record "quickstart bf16/fp32" ok "val loss ratio $(python3 -c "print(f'{${val_loss[bfloat16]} / ${val_loss[float32]}:.4f}')") (goal: within 2%)"
fi

# ------------------------------------------------------------ 5. summary
last_seconds=$((SECONDS - start_all)) step_rc=0
record total "$([ $failed = 0 ] && echo ok || echo FAIL)" "$work"
printf '%s\n' "${steps[@]}" | python3 - "$work/summary.json" "$device" "$gpu_name" <<'PY'
import json, sys, os
path, device, gpu = sys.argv[1:4]
rows = [line.rstrip("\n").split("\t") for line in sys.stdin if line.strip()]
steps = [{"step": n, "status": s, "seconds": int(t), "result": r} for n, s, t, r in rows]
tmp = path + ".tmp"
with open(tmp, "w") as f:
    json.dump({"device": device, "gpu": gpu, "steps": steps}, f, indent=2)
os.replace(tmp, path)
print(f"gpu_check summary: device {device}, GPU {gpu}")
width = max(len(s["step"]) for s in steps)
for s in steps:
    print(f"  {s['step']:<{width}}  {s['status']:<4}  {s['seconds']:>4} s  {s['result']}")
PY
exit $failed
