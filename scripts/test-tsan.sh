#!/usr/bin/env bash
# The concurrency tests under ThreadSanitizer (issue #7): the audit writer (group commit, concurrent appenders,
# SIGKILL under load), the Redis backend's pipelined connection, the WAF's shared rule sets, the rate-limit
# tables and the JWT verified-token cache, each exercised from several threads.
#
# Configures build-tsan/ with -DGERBANG_TSAN=ON (RelWithDebInfo), builds only the unit test binaries that hold
# those tests, and runs them. Redis tests need redis-server on the PATH (scripts/install-deps.sh installs it).
# libmodsecurity and hiredis are not instrumented: a report whose whole stack is inside them needs a second
# look before it is blamed on gerbang.
#
#   scripts/test-tsan.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${GERBANG_JOBS:-$(nproc 2>/dev/null || echo 2)}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1}

t0=$(date +%s)
cmake -S . -B build-tsan -G Ninja -DGERBANG_TSAN=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-tsan -j"$jobs" --target unit_audit unit_gateway unit_policies
t1=$(date +%s)
status=0
(cd build-tsan && ctest --output-on-failure -j"$jobs" --timeout 600 \
   -R 'Concurrent|Concurrency|Threads|GroupCommit|SurvivesSigkill|RedisBackend|Waf|RateLimit|KeyTable|Jwt' "$@") ||
  status=$?
t2=$(date +%s)
echo "tsan: build $((t1 - t0))s, tests $((t2 - t1))s, total $((t2 - t0))s (jobs=$jobs), ctest exit $status"
exit "$status"
