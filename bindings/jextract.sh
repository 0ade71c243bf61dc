#!/usr/bin/env bash
# Regenerates the FFM bindings in bindings/src/main/java/dev/moe4j/bindings from native/include/moe4j.h.
# Needs jextract (the OpenJDK tool, a build for JDK 22 or newer) on PATH. The checked-in bindings stay
# valid until moe4j.h changes; the Java test BindingsTest fails when an exported symbol has no binding.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
header="$here/../native/include/moe4j.h"
out="$here/src/main/java"

if ! command -v jextract >/dev/null 2>&1; then
  echo "jextract.sh: jextract is not on PATH, so the bindings were not regenerated." >&2
  echo "  Get a jextract build for JDK 22+ (the openjdk/jextract project publishes them), put its bin/ on PATH, rerun." >&2
  exit 1
fi

args=()
for f in $(grep -oE '\bmoe4j_[a-z0-9_]+\(' "$header" | tr -d '(' | sort -u); do args+=(--include-function "$f"); done
for s in $(grep -oE 'typedef struct moe4j_[a-z_]+ \{' "$header" | awk '{print $3}'); do args+=(--include-struct "$s"); done
for c in $(grep -oE '^\s+MOE4J_[A-Z0-9_]+ =' "$header" | awk '{print $1}'); do args+=(--include-constant "$c"); done

rm -rf "$out/dev/moe4j/bindings"
jextract --output "$out" --target-package dev.moe4j.bindings --header-class-name moe4j_h "${args[@]}" "$header"
echo "jextract.sh: regenerated $(ls "$out/dev/moe4j/bindings" | wc -l) files in $out/dev/moe4j/bindings"
