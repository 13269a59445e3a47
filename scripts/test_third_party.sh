#!/usr/bin/env bash
# Installs the SDK from a build folder, builds examples/third_party_plugin out
# of tree against the installed SDK alone, and runs the conformance suite on it
# with the installed host. Usage: scripts/test_third_party.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
src=$(realpath "$(dirname "$0")/..")
prefix="$build/third-party/install"
out="$build/third-party/build"
cmake --install "$build" --prefix "$prefix" > /dev/null
cmake -G Ninja -B "$out" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" "$src/examples/third_party_plugin" > /dev/null
cmake --build "$out"
"$prefix/bin/host" conformance "$out/libshortconv.so" --junit "$build/conformance-third-party.xml"
MIXLAB_PLUGIN_PATH="$out" "$prefix/bin/host" plugins | grep -q "shortconv" || { echo "installed host does not list shortconv"; exit 1; }
echo "third-party plugin: built out of tree, conformance passed, discovered through MIXLAB_PLUGIN_PATH"
