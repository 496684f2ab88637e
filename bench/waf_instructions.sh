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
# Environment: BUILD_DIR (./build), DURATION (15 seconds per measured run), KEEP_TMP (1 = keep the work dir).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
BUILD_DIR=${BUILD_DIR:-$repo/build}
DURATION=${DURATION:-15}
KEEP_TMP=${KEEP_TMP:-0}

log() { printf '[waf-instructions %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a positive integer"
command -v valgrind >/dev/null 2>&1 || {
  log "installing valgrind with apt-get"
  sudo=()
  (($(id -u) == 0)) || sudo=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y valgrind >&2
}

# bench/run.sh writes both configurations (and checks that both WAFs pass the POST and block an attack).
scratch=$(mktemp -d "${TMPDIR:-/tmp}/waf-instructions.XXXXXX")
SCENARIOS="waf-small waf-post" ROUNDS=1 DURATION=1 WARMUP=1 IDLE_CONNS=0 PROFILE=0 KEEP_TMP=1 \
  RESULTS_DIR="$scratch" BUILD_DIR="$BUILD_DIR" bash "$here/run.sh" >"$scratch/run.log" 2>&1 ||
  { tail -n 30 "$scratch/run.log" >&2; rm -rf "$scratch"; die "bench/run.sh failed"; }
WORK=$(sed -n 's/.*kept \(\/.*\)$/\1/p' "$scratch/run.log" | tail -1)
rm -rf "$scratch"
[[ -n $WORK && -f $WORK/nginx-waf/nginx.conf && -f $WORK/gerbang-waf.yaml ]] || die "no configurations from bench/run.sh"
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ $KEEP_TMP == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# One process for callgrind to follow: the same configuration without a master process.
sed 's/^master_process on;/master_process off;/' "$WORK/nginx-waf/nginx.conf" >"$WORK/nginx-waf/nginx-callgrind.conf"
NG_PORT=$(sed -n 's/^ *listen 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/nginx-waf/nginx.conf" | head -1)
"$NGINX" -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" -e "$WORK/upstream/error.log" >/dev/null 2>&1 &
pids+=($!)

measure() { # proxy pid port lua path -> instructions per request
  local proxy=$1 pid=$2 port=$3 lua=$4 path=$5 out n before dump ir
  wrk -t1 -c1 -d3 -s "$WORK/$lua" "https://127.0.0.1:$port$path" >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  out=$(wrk -t1 -c1 -d"$DURATION" -s "$WORK/$lua" "https://127.0.0.1:$port$path")
  n=$(sed -n 's/.*RESULT requests=\([0-9]*\).*/\1/p' <<<"$out")
  grep -q 'err_timeout=0' <<<"$out" || die "$proxy: requests timed out under valgrind"
  before=$(find "$WORK" -name "callgrind.$proxy.*.*" | wc -l)
  callgrind_control -d "$pid" >/dev/null 2>&1
  for _ in $(seq 100); do (($(find "$WORK" -name "callgrind.$proxy.*.*" | wc -l) > before)) && break; sleep 0.1; done
  dump=$(ls -t "$WORK"/callgrind."$proxy".*.* | head -1)
  ir=$(sed -n 's/^\(summary\|totals\): *\([0-9]*\).*/\2/p' "$dump" | head -1)
  [[ -n $n && $n -gt 0 && -n $ir ]] || die "no measurement for $proxy $path"
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
