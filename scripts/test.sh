#!/usr/bin/env bash
# The whole test suite on a fresh Debian bookworm machine: install dependencies, build, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
# Every example configuration must pass --check-config (STYLE.md §12); the demo PKI makes their files exist.
./build/gerbangctl certs demo --out demo-run/certs >/dev/null
[ -f demo-run/audit.key ] || ./build/gerbangctl keys generate --out demo-run/audit.key --name demo.gerbang.local/gw-01 >/dev/null
for f in examples/*.yaml; do ./build/gerbang --check-config "$f"; done
cd build
ctest --output-on-failure -j2 --timeout 300
