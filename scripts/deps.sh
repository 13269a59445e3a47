#!/usr/bin/env bash
# Installs what mixlab needs on Debian bookworm, outside the repository.
# Idempotent: checks first and installs only what is missing, so a second run
# takes a second. Needs root (or sudo) for apt-get.
set -euo pipefail

TORCH_VERSION="2.15.0"  # keep in sync with MIXLAB_TORCH_VERSION in CMakeLists.txt
TRANSFORMERS_VERSION="5.24.0"  # the interop test's peer (docs/interop.md)
APT_PACKAGES=(
  g++ cmake ninja-build ccache pkg-config make
  libboost-dev libssl-dev libdlpack-dev libtomlplusplus-dev libspdlog-dev libfmt-dev
  doctest-dev libcli11-dev nlohmann-json3-dev libsentencepiece-dev
  bible-kjv bible-kjv-text gnuplot-nox
  clang libclang-rt-14-dev  # the libFuzzer targets (scripts/fuzz.sh)
  libgloo-dev  # Gloo's headers for c10d's ProcessGroupGloo.hpp (declarations only; docs/dependencies.md)
)
PIP_PACKAGES=("torch==${TORCH_VERSION}" "safetensors" "numpy" "transformers==${TRANSFORMERS_VERSION}")

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing Debian packages: ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! python3 - <<PY 2>/dev/null
import importlib.metadata as m
assert m.version("torch").split("+")[0] == "${TORCH_VERSION}"
m.version("safetensors"); m.version("numpy")
assert m.version("transformers") == "${TRANSFORMERS_VERSION}"
PY
then
  echo "deps: installing ${PIP_PACKAGES[*]} from PyPI (LibTorch comes from the torch wheel)"
  python3 -m pip install --quiet --disable-pip-version-check "${PIP_PACKAGES[@]}"
fi
echo "deps: ok (torch ${TORCH_VERSION}, $(cmake --version | head -1))"
