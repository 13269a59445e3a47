#!/usr/bin/env bash
# Builds gpu-deps/: the Debian packages the build needs (headers, CMake packages, shared
# libraries), downloaded with apt-get and unpacked with dpkg-deb -x, for a machine that has
# a compiler, CMake, Ninja and its own torch but none of our -dev packages and no network (the
# lent GPU machine, docs/dependencies.md). The build finds it with -DMIXLAB_DEPS_DIR=gpu-deps
# (scripts/gpu_check.sh does that when the folder is there); at run time the libraries come
# from gpu-deps/usr/lib/x86_64-linux-gnu (the build's run path, and LD_LIBRARY_PATH for theirs).
# Boost is cut to the header libraries the host includes, so the folder fits the device tool's
# 64 MiB carry limit together with the source. Runs on Debian bookworm (this machine), as root
# or with sudo-free apt-get download (no installation happens).
# Usage: scripts/gpu_deps.sh [DIR]   (default gpu-deps, ignored by git: carry it)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$repo/gpu-deps}
packages=(
  libtomlplusplus-dev libtomlplusplus3 libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 libcli11-dev
  nlohmann-json3-dev doctest-dev libsentencepiece-dev libsentencepiece0 libssl-dev libssl3
  libboost1.74-dev libdlpack-dev libgloo-dev
)
debs=$(mktemp -d)
trap 'rm -rf "$debs"' EXIT
rm -rf "$dir.tmp"
mkdir -p "$dir.tmp"
(cd "$debs" && apt-get download -qq "${packages[@]}" 2>&1 | grep -v 'Download is performed unsandboxed' >&2 || true)
[ "$(ls "$debs"/*.deb | wc -l)" -eq ${#packages[@]} ] ||
  { echo "gpu_deps: apt-get download fetched $(ls "$debs"/*.deb 2>/dev/null | wc -l) of ${#packages[@]} packages" >&2; exit 1; }
for deb in "$debs"/*.deb; do
  dpkg-deb -x "$deb" "$dir.tmp"
  dpkg-deb -W --showformat='${Package} ${Version}\n' "$deb" >> "$dir.tmp/PACKAGES"
done

# Keep what a build and a run use (CMake packages are under lib/ and share/cmake): no docs,
# static libraries or OpenSSL engines.
find "$dir.tmp/usr/share" -mindepth 1 -maxdepth 1 ! -name cmake -exec rm -rf {} +
rm -rf "$dir.tmp"/usr/lib/x86_64-linux-gnu/{engines-3,ossl-modules} "$dir.tmp"/usr/bin
find "$dir.tmp" -name '*.a' -delete
# Boost: only the libraries (whole folders, so another g++ version's branches are there too)
# that the host's Boost includes reach, found with g++ -M against the unpacked headers.
includes=$(grep -rhoE '^#include <boost/[^>]+>' "$repo/host" "$repo/sdk" | sort -u)
used=$(printf '%s\n' "$includes" | g++ -std=c++20 -DBOOST_DLL_USE_STD_FS -I "$dir.tmp/usr/include" -M -x c++ - |
  tr ' \\' '\n\n' | sed -n 's#.*/usr/include/boost/\([^/]*\)/.*#\1#p' | sort -u)
for lib in "$dir.tmp"/usr/include/boost/*/; do
  name=$(basename "$lib")
  grep -qx "$name" <<<"$used" || rm -rf "$lib"
done

rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "gpu_deps: ${#packages[@]} packages in $dir ($(du -sh "$dir" | cut -f1); Boost libraries kept: $(echo $used))"
