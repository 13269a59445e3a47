#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/) with clang in BUILD_DIR (default
# build-fuzz, beside the main build) and runs each for SECONDS seconds
# (default 40), starting from seed corpora from the repository: the experiment
# files, a few small safetensors files written by the Python package, and
# whatever earlier runs found (BUILD_DIR/corpus/). Exits non-zero when a target
# finds a crash; the input is saved as BUILD_DIR/artifacts/<target>-crash-*.
# Usage: scripts/fuzz.sh [SECONDS] [BUILD_DIR]   (docs/fuzzing.md)
set -euo pipefail

SECONDS_EACH="${1:-40}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$(realpath -m "${2:-$ROOT/build-fuzz}")"
JOBS="${FUZZ_BUILD_JOBS:-2}"

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$ROOT/tests/fuzz" -B "$BUILD" "${generator[@]}" "${launcher[@]}" \
    -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" -j "$JOBS"

# Seeds: experiment files of the repository (tests/fuzz/seeds/ adds some with
# a "#set" line, see fuzz_experiment.cpp); small valid safetensors files.
seeds="$BUILD/seeds"
mkdir -p "$seeds/experiment" "$seeds/safetensors" "$seeds/descriptor" "$BUILD/artifacts"
find "$ROOT/experiments" "$ROOT/tests/experiments" "$ROOT/tests/fuzz/seeds" -name '*.toml' -exec cp -f {} "$seeds/experiment/" \;
python3 - "$seeds/safetensors" <<'PY'
import sys, numpy as np
from safetensors.numpy import save_file
out = sys.argv[1]
save_file({}, f"{out}/empty.safetensors")
save_file({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, f"{out}/one.safetensors", metadata={"format": "pt"})
save_file({"a": np.zeros((0, 4), np.float64), "b": np.ones(3, np.int64), "c": np.array([True, False]),
           "d": np.arange(4, dtype=np.float16), "e": np.arange(5, dtype=np.uint8)}, f"{out}/many.safetensors",
          metadata={"step": "40", "note": "seed"})
PY
printf 'seed' >"$seeds/descriptor/seed"

status=0
for target in fuzz_experiment fuzz_safetensors fuzz_descriptor; do
  name="${target#fuzz_}"
  corpus="$BUILD/corpus/$name"
  mkdir -p "$corpus"
  echo "fuzz: $target for ${SECONDS_EACH}s (corpus $corpus)"
  log="$BUILD/$target.log"
  if "$BUILD/$target" "$corpus" "$seeds/$name" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
      -max_len=16384 -print_final_stats=1 -artifact_prefix="$BUILD/artifacts/$target-" >"$log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$log" | sed "s/^/  /"
  else
    status=1
    echo "fuzz: $target FOUND A PROBLEM (log: $log, input: $BUILD/artifacts/$target-*)"
    grep -A30 -E 'ERROR: |runtime error|deadly signal' "$log" | head -60
  fi
done
exit $status
