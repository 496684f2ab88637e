#!/usr/bin/env bash
# The whole test suite on a fresh Debian bookworm machine (this is what CI runs, .ci/run):
#   1. install dependencies, Release build, every example config through --check-config, every test (ctest);
#   2. the whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer (scripts/test-sanitizers.sh);
#   3. the concurrency tests under ThreadSanitizer (scripts/test-tsan.sh);
#   4. every libFuzzer target for a short bounded time over its seed corpus (scripts/fuzz.sh).
# Passes 2-4 build their own trees (build-asan/, build-tsan/, build-fuzz/). A failure in any pass fails the run.
#
# GERBANG_QUICK=1 stops after pass 1. GERBANG_TIME_BUDGET (seconds, default 4800 = 80 minutes) protects CI's 90 minutes:
# a pass that would start after the budget is mostly spent (it needs about 30, 15 and 15 minutes' headroom
# on a 2-CPU machine) is skipped with a loud SKIPPED line instead of being cut off half-way.
# GERBANG_FUZZ_SECONDS (default 10) is the time per fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
budget=${GERBANG_TIME_BUDGET:-4800}
elapsed() { echo $(( $(date +%s) - start )); }

bash scripts/install-deps.sh
bash scripts/build.sh
# Every example configuration must pass --check-config (STYLE.md §12); the demo PKI makes their files exist.
./build/gerbangctl certs demo --out demo-run/certs >/dev/null
[ -f demo-run/audit.key ] || ./build/gerbangctl keys generate --out demo-run/audit.key --name demo.gerbang.local/gw-01 >/dev/null
for f in examples/*.yaml; do ./build/gerbang --check-config "$f"; done
(cd build && ctest --output-on-failure -j2 --timeout 300)
echo "== pass 1 (Release suite) done at $(elapsed)s"
[ "${GERBANG_QUICK:-0}" = 1 ] && exit 0

skipped=()
run_pass() { # NAME HEADROOM_SECONDS COMMAND...
  local name=$1 headroom=$2
  shift 2
  if (( $(elapsed) + headroom > budget )); then
    echo "== SKIPPED: $name (elapsed $(elapsed)s + ${headroom}s headroom > budget ${budget}s)"
    skipped+=("$name")
    return 0
  fi
  echo "== $name (starting at $(elapsed)s)"
  "$@"
  echo "== $name done at $(elapsed)s"
}
run_pass "ASan + UBSan suite" 1800 bash scripts/test-sanitizers.sh
run_pass "TSan concurrency tests" 900 bash scripts/test-tsan.sh
run_pass "fuzzing (${GERBANG_FUZZ_SECONDS:-10}s per target)" 900 bash scripts/fuzz.sh "${GERBANG_FUZZ_SECONDS:-10}"
if ((${#skipped[@]})); then
  echo "all run passes green in $(elapsed)s; SKIPPED for time: ${skipped[*]}"
else
  echo "all passes green in $(elapsed)s"
fi
