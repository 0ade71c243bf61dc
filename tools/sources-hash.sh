#!/usr/bin/env bash
# Prints the hash of the sources one part of moe4j is built from: `native` (libmoe4j, libmoe4j_cuda) or `java` (the
# jars); with --files, each file's hash and path instead (what the hash is taken of). ./moe4j gpu-bundle records both
# beside a build; bench/gpu.sh compares the hash to decide whether a carried build is current, and shows the files
# that differ when it is not. The order is C's byte order whatever the machine's locale.
# Usage: tools/sources-hash.sh native|java [--files]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case "${1:-}" in
  native) paths=(CMakeLists.txt native) ;;
  java) paths=(pom.xml bindings java cli bench/pom.xml bench/src) ;;
  *)
    echo "usage: tools/sources-hash.sh native|java [--files]" >&2
    exit 2
    ;;
esac
files() { find "${paths[@]}" -type f -not -path '*/target/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; }
if [ "${2:-}" = "--files" ]; then files; else files | sha256sum | cut -d' ' -f1; fi
