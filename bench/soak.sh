#!/usr/bin/env bash
# Soak test (issue #7, not run in CI): mixed load against one gerbang for DURATION seconds, sampling the
# gateway's RSS, open file descriptors, threads and error counters every INTERVAL seconds, then a verdict on
# whether they stayed flat.
#
#   bash bench/soak.sh                      # 10 minutes
#   DURATION=120 INTERVAL=5 bash bench/soak.sh
#
# Load, all at once, on 127.0.0.1 with real TLS (wrk):
#   - keep-alive GETs on a plain proxied route                     (CONNS connections)
#   - 4 KiB JSON POSTs through the WAF (ModSecurity + CRS, block)  (8 connections)
#   - a new TLS connection per request (Connection: close)         (8 connections)
#   - requests to a route whose upstream is dead (502s)            (4 connections)
#   - every INTERVAL: a burst of malformed requests (400s, CL+TE, bare LF) and a WAF attack (403)
# with the signed audit trail on (durability: batched), so its queue and files are part of what must stay flat.
#
# Environment: DURATION (600), INTERVAL (10), CONNS (32), BUILD_DIR (./build), KEEP_TMP (1 keeps the work dir),
# WORKERS (2). Needs wrk (apt-get install wrk). Prints a table and writes it to bench/results/soak-<date>.md.
#
# Verdict: RSS at the end within 10% + 16 MiB of the RSS after the first fifth of the run (warm caches, pools
# and session caches), file descriptors at the end within 64 of that point, and gerbang_bugs_total 0. The
# expected errors (502 from the dead route, 400/403 from the bursts) are counted, not judged.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-600}
INTERVAL=${INTERVAL:-10}
CONNS=${CONNS:-32}
WORKERS=${WORKERS:-2}
BUILD_DIR=${BUILD_DIR:-build}
RESULTS_DIR=${RESULTS_DIR:-bench/results}

command -v wrk >/dev/null || { echo "soak: wrk is needed (apt-get install wrk)" >&2; exit 2; }
[ -x "$BUILD_DIR/gerbang" ] || bash scripts/build.sh
BIN=$(cd "$BUILD_DIR" && pwd)

W=$(mktemp -d /tmp/gerbang-soak.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "${KEEP_TMP:-0}" = 1 ] && echo "soak: kept $W" || rm -rf "$W"
}
trap cleanup EXIT
log() { echo "[soak $(date +%H:%M:%S)] $*" >&2; }

"$BIN/gerbangctl" certs demo --out "$W/certs" >/dev/null
"$BIN/gerbangctl" keys generate --out "$W/audit.key" --name soak.gerbang/gw >/dev/null 2>&1
UP_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DEAD_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN/gerbang-demo-upstream" --listen "127.0.0.1:$UP_PORT" > "$W/upstream.log" 2>&1 &
PIDS+=($!)

cat > "$W/soak.yaml" <<YAML
workers: $WORKERS
admin:
  address: "127.0.0.1:0"
log:
  level: warn
  access_log: off
listeners:
  - name: main
    address: "127.0.0.1:0"
    tls:
      certificates:
        - cert: $W/certs/server-ecdsa.pem
          key: $W/certs/server-ecdsa.key
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: demo
    waf: { mode: block }
  - name: dead
    match: { path_prefix: /dead/ }
    upstream: dead
  - name: echo
    match: { path_prefix: / }
    upstream: demo
upstreams:
  - name: demo
    targets: ["127.0.0.1:$UP_PORT"]
  - name: dead
    targets: ["127.0.0.1:$DEAD_PORT"]
audit:
  dir: $W/audit
  origin: soak.gerbang/gw
  key: $W/audit.key
  durability: batched
YAML
"$BIN/gerbang" --check-config "$W/soak.yaml" >/dev/null
"$BIN/gerbang" --config "$W/soak.yaml" --ready-file "$W/ready" > "$W/gerbang.out" 2> "$W/gerbang.err" &
GW=$!
PIDS+=($GW)
for _ in $(seq 200); do grep -q '^ready' "$W/ready" 2>/dev/null && break; sleep 0.05; done
grep -q '^ready' "$W/ready" || { cat "$W/gerbang.err" >&2; exit 1; }
PORT=$(awk '$1 == "listener" && $2 == "main" { print $3 }' "$W/ready")
ADMIN="127.0.0.1:$(awk '$1 == "admin" { print $2 }' "$W/ready")"
URL="https://127.0.0.1:$PORT"
log "gerbang pid $GW on $URL (admin $ADMIN), upstream :$UP_PORT, $DURATION s, sample every $INTERVAL s"

cat > "$W/post.lua" <<'LUA'
local fields = {}
for i = 1, 36 do fields[#fields + 1] = string.format('"field%02d":"%s"', i, string.rep("nilai data penduduk ", 5)) end
wrk.method = "POST"
wrk.body = "{" .. table.concat(fields, ",") .. "}"
wrk.body = wrk.body .. string.rep(" ", math.max(0, 4096 - #wrk.body))
wrk.headers["Content-Type"] = "application/json"
LUA
cat > "$W/close.lua" <<'LUA'
wrk.headers["Connection"] = "close"
LUA

run_wrk() { # name connections path [script]
  local name=$1 conns=$2 path=$3 script=${4:-}
  wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 5s ${script:+-s "$script"} -H "Host: localhost" "$URL$path" \
    > "$W/wrk-$name.txt" 2>&1 &
  PIDS+=($!)
}
run_wrk keepalive "$CONNS" /echo/soak
run_wrk waf-post 8 /api/penduduk "$W/post.lua"
run_wrk handshakes 8 /echo/new-connection "$W/close.lua"
run_wrk dead 4 /dead/x

metric_sum() { # NAME [LABEL-FILTER]: sum of a metric's series from the last scrape
  awk -v n="$1" -v f="${2:-}" 'index($0, n) == 1 && (f == "" || index($0, f) > 0) { s += $NF } END { printf "%d", s }' "$W/metrics"
}
burst() { # malformed and hostile requests: each must be answered or closed, never crash anything
  for raw in 'GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\nx' \
             'GET / HTTP/1.1\nHost: localhost\n\n' 'GET /\x00 HTTP/1.1\r\nHost: localhost\r\n\r\n'; do
    printf "$raw" | timeout 5 openssl s_client -quiet -connect "127.0.0.1:$PORT" -servername localhost >/dev/null 2>&1 || true
  done
  curl -sk -o /dev/null --max-time 5 "$URL/api/cari?q=1'%20OR%20'1'='1" || true
}

REPORT="$W/report.md"
{
  echo "# gerbang soak, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- Host: $(nproc) CPUs; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- gerbang: $WORKERS workers, audit batched, WAF on /api/; load: wrk keep-alive x$CONNS, WAF POST x8, new TLS connection per request x8, dead upstream x4, malformed bursts every ${INTERVAL}s; ${DURATION}s"
  echo
  echo "| t (s) | RSS MiB | fds | threads | requests | 2xx | 4xx | 5xx | bugs | audit queue failures |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} > "$REPORT"

START=$(date +%s)
BASE_RSS=""; BASE_FDS=""
while :; do
  sleep "$INTERVAL"
  NOW=$(( $(date +%s) - START ))
  kill -0 "$GW" 2>/dev/null || { log "gerbang exited!"; echo "**gerbang exited during the soak**" >> "$REPORT"; break; }
  burst
  curl -s --max-time 5 "http://$ADMIN/metrics" > "$W/metrics" || : > "$W/metrics"
  RSS=$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$GW/status")
  FDS=$(ls "/proc/$GW/fd" | wc -l)
  THR=$(awk '/^Threads/ { print $2 }' "/proc/$GW/status")
  REQ=$(metric_sum gerbang_requests_total)
  S2=$(metric_sum gerbang_requests_total 'status="2')
  S4=$(metric_sum gerbang_requests_total 'status="4')
  S5=$(metric_sum gerbang_requests_total 'status="5')
  BUGS=$(metric_sum gerbang_bugs_total)
  AUF=$(metric_sum gerbang_audit_record_failures_total)
  echo "| $NOW | $RSS | $FDS | $THR | $REQ | $S2 | $S4 | $S5 | $BUGS | $AUF |" >> "$REPORT"
  log "t=${NOW}s rss=${RSS}MiB fds=$FDS threads=$THR requests=$REQ 5xx=$S5 bugs=$BUGS"
  if [ -z "$BASE_RSS" ] && [ "$NOW" -ge $(( DURATION / 5 )) ]; then BASE_RSS=$RSS; BASE_FDS=$FDS; fi
  [ "$NOW" -ge "$DURATION" ] && break
done
wait "${PIDS[@]:2}" 2>/dev/null || true  # the wrk runs

{
  echo
  echo "wrk summaries:"
  echo
  for f in "$W"/wrk-*.txt; do
    echo "- $(basename "$f" .txt): $(grep -E 'Requests/sec' "$f" | tr -s ' ') ;$(grep -E 'Non-2xx|Socket errors' "$f" | tr -s ' ' | tr '\n' ';')"
  done
  echo
  if [ -n "$BASE_RSS" ] && kill -0 "$GW" 2>/dev/null; then
    python3 - "$BASE_RSS" "$RSS" "$BASE_FDS" "$FDS" "$BUGS" <<'PY'
import sys
base_rss, rss, base_fds, fds, bugs = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ok_rss = rss <= base_rss * 1.10 + 16
ok_fds = fds <= base_fds + 64
print(f"Verdict: RSS {base_rss:.1f} -> {rss:.1f} MiB ({'flat' if ok_rss else 'GREW'}), "
      f"fds {base_fds} -> {fds} ({'flat' if ok_fds else 'GREW'}), bugs {bugs} ({'ok' if bugs == 0 else 'NOT OK'}): "
      + ("PASS" if ok_rss and ok_fds and bugs == 0 else "FAIL"))
PY
  else
    echo "Verdict: FAIL (gerbang exited, or the run was too short to have a baseline)"
  fi
} >> "$REPORT"

mkdir -p "$RESULTS_DIR"
OUT="$RESULTS_DIR/soak-$(date -u +%Y-%m-%d-%H%M).md"
cp "$REPORT" "$OUT"
cat "$REPORT"
log "report written to $OUT"
grep -q "PASS$" "$REPORT"
