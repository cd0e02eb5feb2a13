#!/usr/bin/env bash
# Builds the native addon (when a Rust toolchain is here) and the TypeScript.
# Without cargo, rpcudp still works: it runs on the pure-TypeScript backend.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v cargo >/dev/null 2>&1; then
  npm run --silent build:native
else
  echo "build: no cargo on PATH, so no native addon; rpcudp will use its pure-TypeScript backend" >&2
fi
npm run --silent build:ts
