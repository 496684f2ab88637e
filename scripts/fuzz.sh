#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into build-fuzz/ and runs each one over its seed corpus.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     SECONDS per target (default 30); targets default to all
#   GERBANG_JOBS=1 scripts/fuzz.sh 600 jwt    e.g. a longer run of one target, one build job
#
# CI runs it with a short bound. For long runs, give minutes per target; new interesting inputs are kept in
# build-fuzz/corpus/<target>/ (the seeds in tests/fuzz/corpus/<target>/ are only read), and crashes are
# written to build-fuzz/crashes/<target>/. A crash makes the script exit non-zero after all targets ran.
# Reproduce one with: build-fuzz/tests/fuzz/<target>_fuzz <crash-file>
# request_head only: GERBANG_FUZZ_STRICT_BEAST=1 also aborts when Beast rejects a head the codec accepted.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
jobs=${GERBANG_JOBS:-$(nproc 2>/dev/null || echo 2)}

if ! command -v clang++ >/dev/null || ! [[ -d /usr/lib/llvm-14/lib/clang ]] ||
   ! ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "installing clang and libFuzzer (clang, libclang-rt-14-dev)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev >/dev/null
fi

cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DGERBANG_FUZZ=ON -DGERBANG_TESTS=OFF >/dev/null
# The targets tests/fuzz/CMakeLists.txt configured (it skips some when the compiler cannot build them).
mapfile -t all_targets < <(grep -v '^$' build-fuzz/fuzz_targets.txt)
targets=("$@")
((${#targets[@]})) || targets=("${all_targets[@]}")
cmake --build build-fuzz -j"$jobs" --target "${targets[@]/%/_fuzz}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t
  crashes=build-fuzz/crashes/$t
  mkdir -p "$corpus" "$crashes"
  log=build-fuzz/fuzz-$t.log
  echo "== $t: ${seconds}s"
  dict=()
  [[ -f tests/fuzz/$t.dict ]] && dict=(-dict="tests/fuzz/$t.dict")
  if build-fuzz/tests/fuzz/${t}_fuzz "$corpus" "tests/fuzz/corpus/$t" "${dict[@]}" -max_total_time="$seconds" \
       -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$crashes/" \
       >"$log" 2>&1; then
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" |
      sed 's/^/   /' || true
  else
    echo "   FAILED (see $log; inputs in $crashes/)"
    grep -E 'ERROR|invariant|SUMMARY|runtime error' "$log" | head -5 | sed 's/^/   /' || true
    failed+=("$t")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: crashes in: ${failed[*]}"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no crash"
