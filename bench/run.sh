#!/usr/bin/env bash
# bench/run.sh: gerbang and NGINX side by side, in one run, with wrk over TLS 1.3.
#
# Both proxies run one worker pinned to CPU $PROXY_CPU (default 0), serve the same ECDSA P-256
# certificate (from `gerbangctl certs demo`) and proxy with keep-alive to the same upstream, a separate
# nginx pinned with wrk to CPU $CLIENT_CPU (default 1). Runs are interleaved (gerbang round, nginx round,
# gerbang round, ...) and the medians of $ROUNDS rounds are reported, with the proxies' CPU time per
# request read from /proc/PID/stat. Then the resident memory of each proxy with $IDLE_CONNS idle TLS
# keep-alive connections is measured. See bench/README.md.
#
# Environment: ROUNDS (3), DURATION (10, seconds per measured run), WARMUP (2, seconds before each run),
# IDLE_CONNS (10000, 0 to skip the memory test), SCENARIOS (all five), CONNS (64), HS_CONNS (16),
# WRK_THREADS (1), PROXY_CPU (0), CLIENT_CPU (1), BUILD_DIR (dir with gerbang and gerbangctl; default
# ./build, built with scripts/build.sh if missing), RESULTS_DIR (bench/results), KEEP_TMP (1 = keep the
# temporary directory), NGINX (nginx binary).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
IDLE_CONNS=${IDLE_CONNS:-10000}
SCENARIOS=${SCENARIOS:-"small-get get-16k post-4k handshake-full handshake-resumed"}
CONNS=${CONNS:-64}
HS_CONNS=${HS_CONNS:-16}
WRK_THREADS=${WRK_THREADS:-1}
PROXY_CPU=${PROXY_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
KEEP_TMP=${KEEP_TMP:-0}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
RESULTS_DIR=${RESULTS_DIR:-$here/results}

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for v in ROUNDS DURATION WARMUP IDLE_CONNS CONNS HS_CONNS WRK_THREADS PROXY_CPU CLIENT_CPU; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, got '${!v}'"
done
((ROUNDS >= 1)) || die "ROUNDS must be at least 1"
((DURATION >= 1)) || die "DURATION must be at least 1"
((ROUNDS >= 3)) || log "warning: ROUNDS=$ROUNDS; medians of fewer than 3 rounds are not meaningful"
for s in $SCENARIOS; do
  case $s in small-get | get-16k | post-4k | handshake-full | handshake-resumed) ;;
  *) die "unknown scenario '$s'" ;;
  esac
done
if (($(nproc) < 2)); then
  log "warning: only $(nproc) CPU; proxies, wrk and the upstream all share CPU 0"
  PROXY_CPU=0 CLIENT_CPU=0
fi

# ---------------------------------------------------------------------------------------------------
# Tools: nginx and wrk from the distribution, python3 for helpers, gerbang from the build directory.
missing=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if ((${#missing[@]})); then
  log "installing ${missing[*]} with apt-get"
  sudo=()
  (($(id -u) == 0)) || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get install -y "${missing[@]}" >&2 ||
    { "${sudo[@]}" apt-get update >&2 && "${sudo[@]}" apt-get install -y "${missing[@]}" >&2; }
fi
NGINX=${NGINX:-$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)}
[[ -x $NGINX ]] || die "nginx not found"
command -v wrk >/dev/null 2>&1 || die "wrk not found"
command -v python3 >/dev/null 2>&1 || die "python3 not found"
command -v taskset >/dev/null 2>&1 || die "taskset not found (util-linux)"

BUILD_DIR=${BUILD_DIR:-$repo/build}
if [[ ! -x $BUILD_DIR/gerbang || ! -x $BUILD_DIR/gerbangctl ]]; then
  [[ $BUILD_DIR == "$repo/build" ]] || die "no gerbang/gerbangctl in BUILD_DIR=$BUILD_DIR"
  log "no build in $BUILD_DIR; building with scripts/build.sh (Release)"
  bash "$repo/scripts/build.sh" >&2
fi
GERBANG=$BUILD_DIR/gerbang
GERBANGCTL=$BUILD_DIR/gerbangctl
if grep -q '^CMAKE_BUILD_TYPE:STRING=' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null; then
  build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD_DIR/CMakeCache.txt")
  [[ $build_type == Release ]] || log "warning: $BUILD_DIR is a '$build_type' build, not Release"
fi

# Open-file limit: 65536 if allowed, else the hard limit (containers often cap it).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
if ((IDLE_CONNS > 0 && NOFILE < IDLE_CONNS + 1000)); then
  log "warning: open-file limit is $NOFILE; lowering IDLE_CONNS from $IDLE_CONNS to $((NOFILE - 1000))"
  IDLE_CONNS=$((NOFILE - 1000))
fi
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------------------------------------------
# Temporary directory, cleanup.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gerbang-bench.XXXXXX")
declare -a started_pids=()
cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  for pid in "${started_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${started_pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if ((rc != 0)); then
    for f in "$WORK"/gerbang.stderr "$WORK"/nginx/error.log "$WORK"/upstream/error.log; do
      [[ -s $f ]] && { log "last lines of $f:"; tail -n 20 "$f" >&2; }
    done
  fi
  if [[ $KEEP_TMP == 1 ]]; then
    log "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_ports() { # N -> N free TCP ports on 127.0.0.1
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

wait_port() { # PORT PID: waits until something accepts on the port, while PID lives
  for _ in $(seq 100); do
    kill -0 "$2" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------------------------------------------
# Certificates and the upstream.
log "work directory $WORK"
"$GERBANGCTL" certs demo --out "$WORK/pki" >/dev/null
CERT=$WORK/pki/server-ecdsa.pem
KEY=$WORK/pki/server-ecdsa.key

read -r UP_PORT NG_PORT NG_NORES_PORT NG_CHECK_PORT <<<"$(free_ports 4)"

mkdir -p "$WORK/upstream/www" "$WORK/upstream/tmp"
# nginx workers run as an unprivileged user when started by root: they must be able to read the bodies.
chmod 755 "$WORK" "$WORK/upstream" "$WORK/upstream/www"
python3 -c 'import sys; open(sys.argv[1], "w").write("x" * 99 + "\n")' "$WORK/upstream/www/small"
python3 -c 'import sys; open(sys.argv[1], "w").write("y" * 16383 + "\n")' "$WORK/upstream/www/16k"

nginx_common() { # DIR: the parts shared by the upstream and the proxy nginx
  cat <<EOF
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $NOFILE;
pid $1/nginx.pid;
error_log $1/error.log warn;
events {
    worker_connections 20000;
}
EOF
}

temp_paths() { # DIR
  cat <<EOF
    client_body_temp_path $1/tmp/body;
    proxy_temp_path $1/tmp/proxy;
    fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi;
    scgi_temp_path $1/tmp/scgi;
EOF
}

{
  nginx_common "$WORK/upstream"
  cat <<EOF
http {
$(temp_paths "$WORK/upstream")
    access_log off;
    default_type text/plain;
    sendfile on;
    tcp_nodelay on;
    open_file_cache max=16 inactive=1h;
    open_file_cache_valid 1h;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$UP_PORT reuseport backlog=4096;
        root $WORK/upstream/www;
        client_body_buffer_size 16k;
        client_max_body_size 1m;
        location = /small { }
        location = /16k { }
        # return discards (reads) the request body before it answers, keeping the connection usable.
        location = /post { return 200 "ok\n"; }
    }
}
EOF
} >"$WORK/upstream/nginx.conf"

log "starting the upstream nginx on 127.0.0.1:$UP_PORT (CPU $CLIENT_CPU)"
taskset -c "$CLIENT_CPU" "$NGINX" -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" -e "$WORK/upstream/error.log" \
  >"$WORK/upstream/stdout" 2>&1 &
UP_PID=$!
started_pids+=("$UP_PID")
wait_port "$UP_PORT" "$UP_PID" || die "the upstream nginx did not start"

# ---------------------------------------------------------------------------------------------------
# The proxies. Each has a listener with resumption on (tickets + cache) and one with resumption off.
mkdir -p "$WORK/nginx/tmp"
{
  nginx_common "$WORK/nginx"
  cat <<EOF
http {
$(temp_paths "$WORK/nginx")
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_max_body_size 10m;
    # The same TLS parameters gerbang uses (gateway/tls_context.cpp): suites in server order, groups, and
    # one TLS 1.3 ticket per handshake (OpenSSL's default is two).
    ssl_protocols TLSv1.3;
    ssl_prefer_server_ciphers on;
    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
    ssl_ecdh_curve X25519:prime256v1:secp384r1;
    ssl_conf_command NumTickets 1;
    ssl_certificate $CERT;
    ssl_certificate_key $KEY;
    log_format reuse "\$ssl_session_reused";
    upstream up {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
        keepalive_requests 10000000;
    }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    server {
        listen 127.0.0.1:$NG_PORT ssl backlog=4096;
        ssl_session_tickets on;
        ssl_session_cache shared:bench:10m;
        location / { proxy_pass http://up; }
    }
    server {
        listen 127.0.0.1:$NG_NORES_PORT ssl backlog=4096;
        ssl_session_tickets off;
        ssl_session_cache off;
        location / { proxy_pass http://up; }
    }
    # Only for the resumption sanity check before the measurements (logs whether each session resumed).
    server {
        listen 127.0.0.1:$NG_CHECK_PORT ssl;
        ssl_session_tickets on;
        ssl_session_cache shared:bench:10m;
        access_log $WORK/nginx/reuse.log reuse;
        location / { proxy_pass http://up; }
    }
}
EOF
} >"$WORK/nginx/nginx.conf"

tls_block() { # TICKETS CACHE
  cat <<EOF
    max_connections: 20000
    hsts: ""
    tls:
      min_version: "1.3"
      certificates:
        - cert: $CERT
          key: $KEY
      session_tickets: $1
      session_cache: $2
EOF
}
cat >"$WORK/gerbang.yaml" <<EOF
workers: 1
admin:
  address: "127.0.0.1:0"
log:
  level: warn
  access_log: "off"
timeouts:
  keepalive_idle: 300s
  drain: 1s
listeners:
  - name: resume
    address: "127.0.0.1:0"
$(tls_block true true)
  - name: noresume
    address: "127.0.0.1:0"
$(tls_block false false)
routes:
  - name: all
    upstream: up
upstreams:
  - name: up
    targets: ["127.0.0.1:$UP_PORT"]
    max_idle: 64
EOF

"$NGINX" -t -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" >"$WORK/nginx/check.log" 2>&1 ||
  { cat "$WORK/nginx/check.log" >&2; die "nginx rejected its configuration"; }
"$GERBANG" --check-config "$WORK/gerbang.yaml" >"$WORK/gerbang.check" 2>&1 ||
  { cat "$WORK/gerbang.check" >&2; die "gerbang rejected its configuration"; }

log "starting gerbang and nginx (one worker each, CPU $PROXY_CPU)"
taskset -c "$PROXY_CPU" "$GERBANG" --config "$WORK/gerbang.yaml" --ready-file "$WORK/gerbang.ready" \
  >"$WORK/gerbang.stdout" 2>"$WORK/gerbang.stderr" &
GB_PID=$!
started_pids+=("$GB_PID")
taskset -c "$PROXY_CPU" "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" \
  >"$WORK/nginx/stdout" 2>&1 &
NG_PID=$!
started_pids+=("$NG_PID")

for _ in $(seq 100); do
  grep -qx ready "$WORK/gerbang.ready" 2>/dev/null && break
  kill -0 "$GB_PID" 2>/dev/null || die "gerbang exited: $(cat "$WORK/gerbang.stderr")"
  sleep 0.1
done
grep -qx ready "$WORK/gerbang.ready" 2>/dev/null || die "gerbang did not become ready"
GB_PORT=$(awk '$1 == "listener" && $2 == "resume" { print $3 }' "$WORK/gerbang.ready")
GB_NORES_PORT=$(awk '$1 == "listener" && $2 == "noresume" { print $3 }' "$WORK/gerbang.ready")
GB_ADMIN=$(awk '$1 == "admin" { print $2 }' "$WORK/gerbang.ready")
for p in "$NG_PORT" "$NG_NORES_PORT" "$NG_CHECK_PORT"; do
  wait_port "$p" "$NG_PID" || die "nginx did not start"
done
NG_WORKER=$(pgrep -P "$NG_PID" | head -n 1)
[[ -n $NG_WORKER ]] || die "no nginx worker process under master $NG_PID"
log "gerbang pid $GB_PID (:$GB_PORT, no resumption :$GB_NORES_PORT, admin :$GB_ADMIN)"
log "nginx master $NG_PID worker $NG_WORKER (:$NG_PORT, no resumption :$NG_NORES_PORT)"

# ---------------------------------------------------------------------------------------------------
# Helpers for measurements.
cpu_ticks() { # PID...: utime + stime (all threads), in clock ticks
  local pid total=0 stat rest
  for pid in "$@"; do
    stat=$(<"/proc/$pid/stat")
    rest=${stat##*) } # fields from 3 on; comm may contain spaces
    read -r -a f <<<"$rest"
    total=$((total + f[11] + f[12])) # fields 14 (utime) and 15 (stime)
  done
  echo "$total"
}
rss_kib() { # PID...: summed VmRSS in KiB
  local pid total=0 kb
  for pid in "$@"; do
    kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
    total=$((total + kb))
  done
  echo "$total"
}
established() { # PORT: server-side TCP sockets of 127.0.0.1:PORT the proxy has not closed yet
  # (ESTABLISHED 01 or CLOSE_WAIT 08; not LISTEN, and not TIME_WAIT or FIN states, which it already closed)
  awk -v p="$(printf '%04X' "$1")" '$2 ~ (":" p "$") && ($4 == "01" || $4 == "08") { n++ } END { print n + 0 }' /proc/net/tcp
}
proxy_pids() { # gerbang|nginx
  if [[ $1 == gerbang ]]; then echo "$GB_PID"; else echo "$NG_PID $NG_WORKER"; fi
}
gerbang_metric() { # NAME LISTENER
  python3 - "$GB_ADMIN" "$1" "$2" <<'EOF'
import sys, urllib.request
port, name, listener = sys.argv[1:]
body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
for line in body.splitlines():
    if line.startswith(f'{name}{{listener="{listener}"}} '):
        print(line.split()[-1]); break
else:
    print(0)
EOF
}

# Functional check through both proxies before measuring anything.
python3 - "$GB_PORT" "$NG_PORT" "$GB_NORES_PORT" "$NG_NORES_PORT" <<'EOF' || die "functional check failed"
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def fetch(port, method, path, body=b""):
    with socket.create_connection(("127.0.0.1", int(port)), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            if body:
                head += f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n"
            s.sendall(head.encode() + b"\r\n" + body)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            h, _, b = data.partition(b"\r\n\r\n")
            return int(h.split()[1]), len(b), s.version(), s.cipher()[0]
ok = True
for port in sys.argv[1:]:
    for method, path, body, want_len in (("GET", "/small", b"", 100), ("GET", "/16k", b"", 16384),
                                         ("POST", "/post", b"a" * 4096, 3)):
        status, n, ver, cipher = fetch(port, method, path, body)
        good = status == 200 and n == want_len
        ok &= good
        if not good:
            print(f"  :{port} {method} {path} -> {status}, {n} bytes, {ver} {cipher}  <-- UNEXPECTED", file=sys.stderr)
    print(f"  :{port} {ver} {cipher}", file=sys.stderr)
sys.exit(0 if ok else 1)
EOF

# wrk Lua scripts: the request, and a done() that prints one machine-readable line.
wrk_done='
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d bytes=%d p50_us=%.0f p99_us=%.0f err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end'
printf '%s\n' "-- GET" "$wrk_done" >"$WORK/get.lua"
printf '%s\n' "wrk.method = \"POST\"" "wrk.body = string.rep(\"a\", 4096)" \
  "wrk.headers[\"Content-Type\"] = \"application/octet-stream\"" "$wrk_done" >"$WORK/post.lua"

scenario_args() { # SCENARIO PROXY -> sets url, conns, lua, hdr
  local port nores
  if [[ $2 == gerbang ]]; then port=$GB_PORT nores=$GB_NORES_PORT; else port=$NG_PORT nores=$NG_NORES_PORT; fi
  hdr=()
  lua=$WORK/get.lua
  conns=$CONNS
  case $1 in
  small-get) url=https://127.0.0.1:$port/small ;;
  get-16k) url=https://127.0.0.1:$port/16k ;;
  post-4k) url=https://127.0.0.1:$port/post lua=$WORK/post.lua ;;
  handshake-full) url=https://127.0.0.1:$nores/small conns=$HS_CONNS hdr=(-H "Connection: close") ;;
  handshake-resumed) url=https://127.0.0.1:$port/small conns=$HS_CONNS hdr=(-H "Connection: close") ;;
  esac
  if ((conns < WRK_THREADS)); then threads=$conns; else threads=$WRK_THREADS; fi
}

# Resumption sanity check: does wrk really resume with Connection: close, and do the proxies agree?
resumption_check() {
  local before_h before_r after_h after_r
  before_h=$(gerbang_metric gerbang_tls_handshakes_total resume)
  before_r=$(gerbang_metric gerbang_tls_resumed_total resume)
  taskset -c "$CLIENT_CPU" wrk -t1 -c4 -d2s -H "Connection: close" "https://127.0.0.1:$GB_PORT/small" >/dev/null 2>&1 || true
  after_h=$(gerbang_metric gerbang_tls_handshakes_total resume)
  after_r=$(gerbang_metric gerbang_tls_resumed_total resume)
  RES_GB="gerbang $((after_r - before_r)) of $((after_h - before_h)) handshakes resumed"
  taskset -c "$CLIENT_CPU" wrk -t1 -c4 -d2s -H "Connection: close" "https://127.0.0.1:$NG_CHECK_PORT/small" >/dev/null 2>&1 || true
  RES_NG="nginx $(grep -c '^r$' "$WORK/nginx/reuse.log" || true) of $(wc -l <"$WORK/nginx/reuse.log") handshakes resumed"
  before_h=$(gerbang_metric gerbang_tls_handshakes_total noresume)
  before_r=$(gerbang_metric gerbang_tls_resumed_total noresume)
  taskset -c "$CLIENT_CPU" wrk -t1 -c4 -d1s -H "Connection: close" "https://127.0.0.1:$GB_NORES_PORT/small" >/dev/null 2>&1 || true
  after_h=$(gerbang_metric gerbang_tls_handshakes_total noresume)
  after_r=$(gerbang_metric gerbang_tls_resumed_total noresume)
  RES_GB_OFF="gerbang $((after_r - before_r)) of $((after_h - before_h)) resumed on the resumption-off listener"
  log "resumption check: $RES_GB; $RES_NG; $RES_GB_OFF"
}

RAW=$WORK/raw.log
TSV=$WORK/runs.tsv
: >"$RAW"
printf 'scenario\tproxy\tround\trps\tp50_ms\tp99_ms\tcpu_us_per_req\trequests\terrors\n' >"$TSV"

run_one() { # SCENARIO PROXY ROUND
  local url conns lua threads out line requests duration_us p50 p99 errs c0 c1 pids
  local -a hdr
  scenario_args "$1" "$2"
  read -r -a pids <<<"$(proxy_pids "$2")"
  taskset -c "$CLIENT_CPU" wrk -t"$threads" -c"$conns" -d"${WARMUP}s" --timeout 5s -s "$lua" "${hdr[@]}" "$url" \
    >/dev/null 2>&1 || true
  c0=$(cpu_ticks "${pids[@]}")
  out=$(taskset -c "$CLIENT_CPU" wrk -t"$threads" -c"$conns" -d"${DURATION}s" --timeout 5s --latency -s "$lua" \
    "${hdr[@]}" "$url" 2>&1) || true
  c1=$(cpu_ticks "${pids[@]}")
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || die "$2 (pid $pid) died during $1"; done
  {
    echo "=== $1 $2 round $3: wrk -t$threads -c$conns -d${DURATION}s ${hdr[*]} $url"
    echo "$out"
    echo "proxy CPU ticks: $((c1 - c0)) (CLK_TCK $CLK_TCK)"
  } >>"$RAW"
  line=$(grep '^RESULT ' <<<"$out" || true)
  if [[ -z $line ]]; then
    log "  $1 $2 round $3: wrk produced no result:"
    echo "$out" | tail -n 5 >&2
    printf '%s\t%s\t%s\tNA\tNA\tNA\tNA\t0\tNA\n' "$1" "$2" "$3" >>"$TSV"
    return
  fi
  requests=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$line")
  duration_us=$(sed -n 's/.* duration_us=\([0-9]*\).*/\1/p' <<<"$line")
  p50=$(sed -n 's/.* p50_us=\([0-9]*\).*/\1/p' <<<"$line")
  p99=$(sed -n 's/.* p99_us=\([0-9]*\).*/\1/p' <<<"$line")
  errs=$(sed -n 's/.* err_connect=\([0-9]*\) err_read=\([0-9]*\) err_write=\([0-9]*\) err_status=\([0-9]*\) err_timeout=\([0-9]*\).*/c\1 r\2 w\3 s\4 t\5/p' <<<"$line")
  awk -v s="$1" -v p="$2" -v r="$3" -v n="$requests" -v d="$duration_us" -v p50="$p50" -v p99="$p99" \
    -v ticks="$((c1 - c0))" -v hz="$CLK_TCK" -v e="$errs" 'BEGIN {
      rps = (d > 0) ? n / (d / 1e6) : 0
      cpu = (n > 0) ? ticks / hz * 1e6 / n : 0
      printf "%s\t%s\t%s\t%.0f\t%.3f\t%.3f\t%.2f\t%d\t%s\n", s, p, r, rps, p50 / 1000, p99 / 1000, cpu, n, e
    }' >>"$TSV"
  log "  $(tail -n 1 "$TSV" | awk -F'\t' '{ printf "%-17s %-7s round %s: %7s req/s  p50 %6.2f ms  p99 %6.2f ms  %6.1f us CPU/req  errors %s", $1, $2, $3, $4, $5, $6, $7, $9 }')"
  if [[ $errs != "c0 r0 w0 s0 t0" ]]; then
    log "  wrk reported errors ($errs) for $2 in $1 round $3"
  fi
}

# ---------------------------------------------------------------------------------------------------
# Memory with idle connections (measured after the throughput runs).
MEM_LINES=()
measure_memory() { # PROXY PORT
  local pids base loaded line alive
  read -r -a pids <<<"$(proxy_pids "$1")"
  base=$(rss_kib "${pids[@]}")
  rm -f "$WORK/idle.ready"
  taskset -c "$CLIENT_CPU" python3 "$here/idle_conns.py" --port "$2" -n "$IDLE_CONNS" --hold 900 \
    --ready-file "$WORK/idle.ready" >"$WORK/idle-$1.out" 2>"$WORK/idle-$1.err" &
  local ipid=$!
  for _ in $(seq 3000); do # up to 5 minutes to open them
    [[ -s $WORK/idle.ready ]] && break
    kill -0 "$ipid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ ! -s $WORK/idle.ready ]]; then
    kill "$ipid" 2>/dev/null || true
    wait "$ipid" 2>/dev/null || true
    log "  idle-connection tool failed for $1: $(cat "$WORK/idle-$1.err")"
    MEM_LINES+=("$1: memory test failed (see the log)")
    return
  fi
  sleep 2
  loaded=$(rss_kib "${pids[@]}")
  local detail=""
  if [[ $1 == nginx ]]; then
    detail=" (worker $(rss_kib "$NG_WORKER") KiB + master $(rss_kib "$NG_PID") KiB)"
  fi
  kill -TERM "$ipid" 2>/dev/null || true
  wait "$ipid" 2>/dev/null || true
  read -r _ opened failed secs <"$WORK/idle.ready"
  alive=$(awk '$1 == "ALIVE" { print $2 }' "$WORK/idle-$1.out")
  if [[ -s $WORK/idle-$1.err ]]; then grep -v '^  [0-9]* open' "$WORK/idle-$1.err" >&2 || true; fi
  # Wait until the proxy has closed its side of all of them, then see how much memory it kept.
  local t0=$SECONDS n after
  while n=$(established "$2"); ((n > 0 && SECONDS - t0 < 120)); do sleep 0.5; done
  sleep 1
  after=$(rss_kib "${pids[@]}")
  line=$(awk -v p="$1" -v b="$base" -v l="$loaded" -v o="$opened" -v f="$failed" -v a="${alive:-?}" -v s="$secs" \
    -v d="$detail" -v x="$after" -v n="$n" -v t="$((SECONDS - t0))" 'BEGIN {
    printf "%s: %.1f MiB RSS before, %.1f MiB with %d idle TLS connections%s = %.1f KiB per connection;", p, b / 1024, l / 1024, o, d, (o > 0) ? (l - b) / o : 0
    printf " %.1f MiB after they closed (%d failed to open, %s of them still open when released, opened in %ss;", x / 1024, f, a, s
    printf " %d still open on the proxy side %ds after release)", n, t }')
  MEM_LINES+=("$line")
  log "  $line"
}

start_time=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

resumption_check

log "measuring: $ROUNDS rounds x ${DURATION}s (+${WARMUP}s warm-up) per scenario and proxy, interleaved"
for s in $SCENARIOS; do
  for r in $(seq "$ROUNDS"); do
    run_one "$s" gerbang "$r"
    run_one "$s" nginx "$r"
  done
done

# Memory last, so that the throughput runs do not see a heap grown by 10,000 connections.
if ((IDLE_CONNS > 0)); then
  log "memory: $IDLE_CONNS idle TLS keep-alive connections to each proxy"
  measure_memory gerbang "$GB_PORT"
  measure_memory nginx "$NG_PORT"
fi
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed=$(($(date +%s) - start_time))

# Gerbang's own view of the run (upstream connections opened, errors) goes into the raw log.
python3 - "$GB_ADMIN" >>"$RAW" 2>&1 <<'EOF' || true
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
print("=== gerbang /metrics at the end (non-zero counters)")
for line in body.splitlines():
    if line and not line.startswith("#") and line.split()[-1] not in ("0", "0.0"):
        print(line)
EOF

# ---------------------------------------------------------------------------------------------------
# Report.
median_table() {
  awk -F'\t' -v scen="$SCENARIOS" '
    function median(list,   n, a, i, j, t) {
      n = split(list, a, " ")
      if (n == 0) return "NA"
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    NR > 1 && $4 != "NA" {
      k = $1 SUBSEP $2
      rps[k] = rps[k] " " $4; p99[k] = p99[k] " " $6; cpu[k] = cpu[k] " " $7; p50[k] = p50[k] " " $5
      if ($9 != "c0 r0 w0 s0 t0") errs[k] = errs[k] " r" $3 ":" $9
    }
    END {
      print "| scenario | gerbang req/s | nginx req/s | ratio | gerbang p99 | nginx p99 | gerbang µs CPU/req | nginx µs CPU/req |"
      print "|---|---:|---:|---:|---:|---:|---:|---:|"
      n = split(scen, ss, " ")
      for (i = 1; i <= n; i++) {
        s = ss[i]; g = s SUBSEP "gerbang"; x = s SUBSEP "nginx"
        gr = median(rps[g]); nr = median(rps[x])
        ratio = (gr != "NA" && nr != "NA" && nr > 0) ? sprintf("%.2f", gr / nr) : "NA"
        printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", s,
          (gr == "NA") ? gr : sprintf("%.0f", gr), (nr == "NA") ? nr : sprintf("%.0f", nr), ratio,
          fmt_ms(median(p99[g])), fmt_ms(median(p99[x])), fmt_us(median(cpu[g])), fmt_us(median(cpu[x]))
      }
      print ""
      printf "p50 latency, gerbang / nginx (medians):"
      for (i = 1; i <= n; i++) {
        s = ss[i]
        printf "%s %s %s / %s", (i == 1 ? "" : ";"), s, fmt_ms(median(p50[s SUBSEP "gerbang"])), fmt_ms(median(p50[s SUBSEP "nginx"]))
      }
      print "."
      for (k in errs) { split(k, kk, SUBSEP); printf "\nwrk errors, %s %s (round:c=connect r=read w=write s=status t=timeout):%s\n", kk[2], kk[1], errs[k] }
    }
    function fmt_ms(v) { return (v == "NA") ? v : sprintf("%.2f ms", v) }
    function fmt_us(v) { return (v == "NA") ? v : sprintf("%.1f", v) }
  ' "$TSV"
}

mkdir -p "$RESULTS_DIR"
stamp=$(date -u +%Y-%m-%d-%H%M)
RESULT_FILE=$RESULTS_DIR/$stamp.md
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
nginx_version=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
gerbang_version=$("$GERBANG" --version 2>&1 | head -n 1)
wrk_version=$({ wrk -v 2>&1 || true; } | awk 'NR == 1 { print $2 }')
openssl_version=$(openssl version 2>/dev/null || echo unknown)

{
  echo "# gerbang vs NGINX, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- Host: $(nproc) CPUs, ${cpu_model:-unknown CPU}; kernel $(uname -r)"
  echo "- Versions: $gerbang_version ($GERBANG); $nginx_version; wrk $wrk_version; $openssl_version"
  echo "- Load average (1/5/15 min) at start: $load_start; at end: $load_end (the machine may be shared)"
  echo "- Setup: proxies on CPU $PROXY_CPU (one worker each), wrk and the upstream nginx on CPU $CLIENT_CPU;" \
    "TLS 1.3, ECDSA P-256; wrk -t$WRK_THREADS, $CONNS connections ($HS_CONNS for handshakes);" \
    "$ROUNDS rounds x ${DURATION}s (+${WARMUP}s warm-up), interleaved; medians; total ${elapsed}s"
  echo "- Open-file limit: $NOFILE"
  echo
  median_table
  echo
  if ((IDLE_CONNS > 0)); then
    echo "Memory (VmRSS):"
    echo
    for l in "${MEM_LINES[@]}"; do echo "- $l"; done
    echo
  fi
  echo "Resumption check (wrk, Connection: close, 2 s): $RES_GB; $RES_NG; $RES_GB_OFF."
  echo
  echo "<details><summary>All runs</summary>"
  echo
  echo "| scenario | proxy | round | req/s | p50 ms | p99 ms | µs CPU/req | requests | wrk errors |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
  tail -n +2 "$TSV" | awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }'
  echo
  echo "</details>"
} >"$RESULT_FILE"
cp "$RAW" "${RESULT_FILE%.md}.raw.txt"
if [[ -s $WORK/gerbang.stderr ]]; then
  { echo "=== gerbang stderr"; cat "$WORK/gerbang.stderr"; } >>"${RESULT_FILE%.md}.raw.txt"
fi
for f in nginx/error.log upstream/error.log; do
  if [[ -s $WORK/$f ]]; then
    { echo "=== $f"; cat "$WORK/$f"; } >>"${RESULT_FILE%.md}.raw.txt"
  fi
done

cat "$RESULT_FILE"
log "results written to $RESULT_FILE (raw wrk output in ${RESULT_FILE%.md}.raw.txt)"
