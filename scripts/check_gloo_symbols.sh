#!/usr/bin/env bash
# Checks that the host's c10d code compiled against Debian's (older) Gloo headers uses
# nothing of Gloo but names (docs/dependencies.md): the object file that includes
# ProcessGroupGloo.hpp must neither define nor reference a symbol of Gloo's own, nor a
# vtable or type_info of a Gloo class or of ProcessGroupGloo (those come from libtorch_cpu).
# Standard-library templates over Gloo pointers (shared_ptr<gloo::...>) only move pointers.
# Usage: scripts/check_gloo_symbols.sh BUILD_DIR
set -euo pipefail
object=$(find "${1:?usage: $0 BUILD_DIR}" -name 'gloo_group.cpp.o' | head -1)
[ -n "$object" ] || { echo "check_gloo_symbols: no gloo_group.cpp.o under $1 (build first)"; exit 1; }
names=$(nm -C "$object" | sed -E 's/^[0-9a-f ]{16} //; s/^[0-9a-f]* *//' | cut -c3-)
bad=$(grep -E '^(gloo::|(vtable|typeinfo|typeinfo name|VTT|construction vtable) for (gloo::|c10d::ProcessGroupGloo\b))|c10d::ProcessGroupGloo::GlooStore' <<<"$names" || true)
if [ -n "$bad" ]; then
  echo "check_gloo_symbols: $object uses Gloo beyond its declarations:"
  echo "$bad"
  exit 1
fi
echo "check_gloo_symbols: $(wc -l <<<"$names") symbols in $(basename "$object"), none of Gloo's own"
