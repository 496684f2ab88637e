#!/usr/bin/env bash
# bench/waf_instructions.sh: instructions per WAF request, gerbang + its WAF vs NGINX + ModSecurity-nginx,
# counted by callgrind (user space), for the small GET and the 4 KiB JSON POST of bench/run.sh's waf-small and
# waf-post scenarios.
#
# On a shared machine requests/s and CPU time move by 10-50% between rounds; instructions do not. Both
# proxies run the same engine (libmodsecurity), the same CRS files and settings, behind the same wrk script
# and upstream: the configurations are bench/run.sh's own (it is run once, briefly, with KEEP_TMP=1, to write
# them), so nothing here can drift from what the bench compares. Each proxy runs alone under valgrind, one
# connection at a time (so no request times out under valgrind's slowdown); counters are zeroed after a
# warm-up, and a measured run's instructions are divided by its requests. Kernel time (TLS records, the
# network stack) is not counted.
#
# Environment: BUILD_DIR (./build), DURATION (15 seconds per measured run; a POST takes ~0.3 s under valgrind,
# and the requests cut at either end of a shorter run move its figure by 10% or more), KEEP_TMP (1 = keep the
# work dir).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
BUILD_DIR=${BUILD_DIR:-$repo/build}
DURATION=${DURATION:-15}
KEEP_TMP=${KEEP_TMP:-0}

BENCH_NAME=waf-instructions
# shellcheck source=bench/callgrind_lib.sh
source "$here/callgrind_lib.sh"
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a positive integer"
command -v valgrind >/dev/null 2>&1 || apt_install valgrind

# bench/run.sh writes both configurations (and checks that both WAFs pass the POST and block an attack).
scratch=$(mktemp -d "${TMPDIR:-/tmp}/waf-instructions.XXXXXX")
SCENARIOS="waf-small waf-post" ROUNDS=1 DURATION=1 WARMUP=1 IDLE_CONNS=0 PROFILE=0 KEEP_TMP=1 \
  RESULTS_DIR="$scratch" BUILD_DIR="$BUILD_DIR" bash "$here/run.sh" >"$scratch/run.log" 2>&1 ||
  { tail -n 30 "$scratch/run.log" >&2; rm -rf "$scratch"; die "bench/run.sh failed"; }
WORK=$(sed -n 's/.*kept \(\/.*\)$/\1/p' "$scratch/run.log" | tail -1)
rm -rf "$scratch"
[[ -n $WORK && -f $WORK/nginx-waf/nginx.conf && -f $WORK/gerbang-waf.yaml ]] || die "no configurations from bench/run.sh"
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
trap cleanup EXIT

# One process for callgrind to follow: the same configuration without a master process.
sed 's/^master_process on;/master_process off;/' "$WORK/nginx-waf/nginx.conf" >"$WORK/nginx-waf/nginx-callgrind.conf"
NG_PORT=$(sed -n 's/^ *listen 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/nginx-waf/nginx.conf" | head -1)
"$NGINX" -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" -e "$WORK/upstream/error.log" >/dev/null 2>&1 &
pids+=($!)

measure() { # proxy pid port lua path -> instructions per request
  local n ir
  read -r n ir < <(callgrind_run "$2" "$WORK/callgrind.$1" -c1 -s "$WORK/$4" "https://127.0.0.1:$3$5") || return 1
  echo $((ir / n))
}

declare -A result
for proxy in nginx gerbang; do
  log "$proxy under callgrind"
  if [[ $proxy == nginx ]]; then
    valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.nginx.%p" "$NGINX" -p "$WORK/nginx-waf" \
      -c "$WORK/nginx-waf/nginx-callgrind.conf" -e "$WORK/nginx-waf/error.log" >/dev/null 2>&1 &
    pid=$!
    port=$NG_PORT
    for _ in $(seq 600); do curl -sk -o /dev/null "https://127.0.0.1:$port/small" && break; sleep 0.2; done
  else
    valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.gerbang.%p" "$BUILD_DIR/gerbang" \
      --config "$WORK/gerbang-waf.yaml" --ready-file "$WORK/callgrind.ready" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 600); do grep -qx ready "$WORK/callgrind.ready" 2>/dev/null && break; sleep 0.1; done
    port=$(awk '$1 == "listener" { print $3; exit }' "$WORK/callgrind.ready")
  fi
  pids+=("$pid")
  [[ -n $port ]] || die "$proxy did not start under valgrind"
  result[$proxy,get]=$(measure "$proxy" "$pid" "$port" waf-get.lua /small)
  result[$proxy,post]=$(measure "$proxy" "$pid" "$port" waf-post.lua /post)
  [[ -n ${result[$proxy,get]} && -n ${result[$proxy,post]} ]] || die "$proxy: no measurement"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done

echo "| request | gerbang + WAF | NGINX + ModSecurity | ratio (NGINX / gerbang) |"
echo "|---|---:|---:|---:|"
for r in get post; do
  g=${result[gerbang,$r]} n=${result[nginx,$r]}
  label=$([[ $r == get ]] && echo "small GET (waf-small)" || echo "4 KiB JSON POST (waf-post)")
  echo "| $label | $g | $n | $(awk -v a="$n" -v b="$g" 'BEGIN { printf "%.2f", a / b }') |"
done
