#!/usr/bin/env bash
# bench/instructions.sh: user-space instructions per proxied request, counted by callgrind.
#
# Requests/s and CPU time on a shared machine move by 10-30% between runs; the instructions gerbang executes
# per request do not, so an A/B of a change is read here first (then confirmed by bench/run.sh). gerbang runs
# under valgrind's callgrind, one worker, behind wrk over TLS 1.3 and in front of a local NGINX upstream; the
# counters are zeroed after a warm-up, and the instructions of a measured run are divided by its requests.
# Kernel time (system calls, the network stack) is not counted: bench/run.sh measures that.
#
# Environment: BUILD_DIR (./build), PATHS ("/small /16k": 100-byte and 16 KiB responses), CONNS (16),
# DURATION (10 seconds per measured run), KEEP_TMP (1 = keep the work directory and callgrind's output),
# FEATURE (none; audit-strict or audit-batched: the signed audit log on, in the work directory; waf: the WAF
# at paranoia 1 in block mode, and wrk sends the browser-like headers bench/run.sh's WAF scenarios send;
# waf-post: the same, and wrk POSTs bench/run.sh's 4 KiB JSON document to PATHS, default /post; post: that
# POST without the WAF (bench/run.sh's post-4k); handshake:
# a new connection per request, `Connection: close`, which wrk resumes by a TLS 1.3 session ticket).
# The audit log's writer thread is counted too (callgrind counts every thread); fsync's kernel time is not.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
BUILD_DIR=${BUILD_DIR:-$repo/build}
PATHS_GIVEN=${PATHS:+1}
PATHS=${PATHS:-"/small /16k"}
CONNS=${CONNS:-16}
DURATION=${DURATION:-10}
KEEP_TMP=${KEEP_TMP:-0}
FEATURE=${FEATURE:-none}

BENCH_NAME=instructions
# shellcheck source=bench/callgrind_lib.sh
source "$here/callgrind_lib.sh"

case $FEATURE in none | audit-strict | audit-batched | waf | waf-post | post | handshake) ;;
  *) die "FEATURE must be none, audit-strict, audit-batched, waf, waf-post, post or handshake" ;; esac
if [[ ($FEATURE == waf-post || $FEATURE == post) && -z $PATHS_GIVEN ]]; then PATHS=/post; fi
for v in CONNS DURATION; do [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"; done
missing=()
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
apt_install "${missing[@]}"
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
[[ -x $BUILD_DIR/gerbang && -x $BUILD_DIR/gerbangctl ]] || die "no gerbang/gerbangctl in $BUILD_DIR (scripts/build.sh)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gerbang-instructions.XXXXXX")
trap cleanup EXIT

"$BUILD_DIR/gerbangctl" certs demo --out "$WORK/pki" >/dev/null
UP_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/up/www" "$WORK/up/tmp"
chmod 755 "$WORK" "$WORK/up" "$WORK/up/www"
python3 -c 'import sys; open(sys.argv[1], "w").write("x" * 99 + "\n"); open(sys.argv[2], "w").write("y" * 16383 + "\n")' \
  "$WORK/up/www/small" "$WORK/up/www/16k"
cat >"$WORK/up/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/up/nginx.pid;
error_log $WORK/up/error.log warn;
events { worker_connections 1024; }
http {
    client_body_temp_path $WORK/up/tmp/body;
    proxy_temp_path $WORK/up/tmp/proxy;
    fastcgi_temp_path $WORK/up/tmp/fastcgi;
    uwsgi_temp_path $WORK/up/tmp/uwsgi;
    scgi_temp_path $WORK/up/tmp/scgi;
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server { listen 127.0.0.1:$UP_PORT; root $WORK/up/www; }
}
EOF
"$NGINX" -p "$WORK/up" -c "$WORK/up/nginx.conf" -e "$WORK/up/error.log" >/dev/null 2>&1 &
pids+=($!)

cat >"$WORK/gerbang.yaml" <<EOF
workers: 1
admin:
  address: "127.0.0.1:0"
log:
  level: warn
  access_log: "off"
timeouts:
  keepalive_idle: 300s
listeners:
  - name: main
    address: "127.0.0.1:0"
    hsts: ""
    tls:
      min_version: "1.3"
      certificates:
        - cert: $WORK/pki/server-ecdsa.pem
          key: $WORK/pki/server-ecdsa.key
routes:
  - name: all
    upstream: up
$(if [[ $FEATURE == waf* ]]; then printf '    waf: {mode: block, paranoia: 1}\n'; fi)
upstreams:
  - name: up
    targets: ["127.0.0.1:$UP_PORT"]
    max_idle: 64
EOF
if [[ $FEATURE == audit-* ]]; then
  mkdir -p "$WORK/audit"
  "$BUILD_DIR/gerbangctl" keys generate --out "$WORK/audit/audit.key" --name bench.audit/gw >/dev/null
  cat >>"$WORK/gerbang.yaml" <<EOF
audit:
  dir: $WORK/audit/log
  origin: bench.audit/gw
  key: $WORK/audit/audit.key
  durability: ${FEATURE#audit-}
EOF
fi
wrk_args=()
if [[ $FEATURE == handshake ]]; then
  wrk_args=(-H "Connection: close")
fi
if [[ $FEATURE == waf* ]]; then
  wrk_args=(-H "Host: localhost" -H "User-Agent: Mozilla/5.0 (X11; Linux x86_64) gerbang-bench/1"
    -H "Accept: application/json, */*" -H "Accept-Language: id-ID,id;q=0.9,en;q=0.8")
fi
if [[ $FEATURE == waf-post || $FEATURE == post ]]; then
  python3 "$here/make_json.py" "$WORK/post.json" --size 4096
  printf '%s\n' 'wrk.method = "POST"' 'wrk.headers["Content-Type"] = "application/json"' \
    "local f = assert(io.open(\"$WORK/post.json\", \"rb\")); wrk.body = f:read(\"*a\"); f:close()" >"$WORK/post.lua"
  wrk_args+=(-s "$WORK/post.lua")
fi
valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out.%p" \
  "$BUILD_DIR/gerbang" --config "$WORK/gerbang.yaml" --ready-file "$WORK/ready" >"$WORK/gerbang.log" 2>&1 &
GP=$!
pids+=("$GP")
for _ in $(seq 600); do grep -qx ready "$WORK/ready" 2>/dev/null && break; sleep 0.1; done
grep -qx ready "$WORK/ready" 2>/dev/null || die "gerbang did not start under valgrind (see $WORK/gerbang.log)"
PORT=$(awk '$1 == "listener" && $2 == "main" { print $3 }' "$WORK/ready")

echo "| path | requests | instructions | instructions per request |"
echo "|---|---:|---:|---:|"
for path in $PATHS; do
  read -r n ir < <(callgrind_run "$GP" "$WORK/callgrind.out" -c"$CONNS" "${wrk_args[@]}" "https://127.0.0.1:$PORT$path") ||
    die "no measurement for $path"
  echo "| $path | $n | $ir | $((ir / n)) |"
done
