#!/usr/bin/env bash
# Copies the conformance export tflite/testdata/export (a tiny Fashion-MNIST SCAN model, int8 +
# float32, ~330 KB) into the app's assets as its bundled sample. Any export folder written by
# `keras-scan export` can be copied the same way: bash sync_sample_export.sh path/to/EXPORT
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
src="${1:-$repo/tflite/testdata/export}"
dst="$repo/android_demo/app/src/main/assets/scan_export"
[ -f "$src/manifest.json" ] || { echo "no manifest.json in $src" >&2; exit 1; }
rm -rf "$dst"
mkdir -p "$dst"
cp "$src"/* "$dst"/
echo "copied $(ls "$dst" | wc -l) files ($(du -sh "$dst" | cut -f1)) from $src to $dst"
