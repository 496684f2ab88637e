#!/usr/bin/env bash
# The whole test suite a second time under AddressSanitizer + UndefinedBehaviorSanitizer (issue #7).
#
# Configures build-asan/ with -DGERBANG_SANITIZE=ON (RelWithDebInfo, so stacks have file:line), builds, and runs
# ctest. The integration tests spawn the gerbang binary from this build directory, so the gateway itself runs
# sanitized too. Any ASan report, leak or UBSan report fails the test that triggered it.
#
#   scripts/test-sanitizers.sh [extra ctest args]      e.g. -L unit, or -R Jwt
#   GERBANG_JOBS=1 scripts/test-sanitizers.sh          build/test parallelism (default: nproc)
#
# Prints the build and test durations at the end (CI budget: issue #7).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${GERBANG_JOBS:-$(nproc 2>/dev/null || echo 2)}

# halt/abort on the first report so a finding is never just a line in a passing test's log.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# LeakSanitizer suppressions for third-party libraries, if we ever need them (one `leak:<pattern>` per line).
if [[ -f scripts/lsan.supp ]]; then
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/scripts/lsan.supp:print_suppressions=0}
fi

t0=$(date +%s)
cmake -S . -B build-asan -G Ninja -DGERBANG_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# gtest_discover_tests runs the test binaries during the build, so the sanitizer options above apply there too.
cmake --build build-asan -j"$jobs"
t1=$(date +%s)

status=0
(cd build-asan && ctest --output-on-failure -j"$jobs" --timeout 600 "$@") || status=$?
t2=$(date +%s)

echo "sanitizers: build $((t1 - t0))s, tests $((t2 - t1))s, total $((t2 - t0))s (jobs=$jobs), ctest exit $status"
exit "$status"
