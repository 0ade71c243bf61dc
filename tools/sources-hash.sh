#!/usr/bin/env bash
# Prints the hash of the sources one part of moe4j is built from: `native` (libmoe4j, libmoe4j_cuda) or `java` (the
# jars). ./moe4j gpu-bundle records it beside a build; bench/gpu.sh compares it to decide whether a carried build is
# current. Usage: tools/sources-hash.sh native|java
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case "${1:-}" in
  native) paths=(CMakeLists.txt native) ;;
  java) paths=(pom.xml bindings java cli bench/pom.xml bench/src) ;;
  *)
    echo "usage: tools/sources-hash.sh native|java" >&2
    exit 2
    ;;
esac
find "${paths[@]}" -type f -not -path '*/target/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
