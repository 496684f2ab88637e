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
# Feature scenarios run extra gerbang instances (and an NGINX with ModSecurity) next to the two above:
# `policies` (JWT + allow + rate limit vs the plain proxy), `audit-strict` / `audit-batched` (signed audit
# log vs audit off), `waf-small` / `waf-post` (gerbang's WAF vs NGINX + ModSecurity-nginx, both with the
# OWASP CRS at paranoia 1). Then the audit logs are verified with `gerbangctl audit verify`, and gerbang is
# profiled with `perf` if available.
#
# Environment: ROUNDS (3), DURATION (10, seconds per measured run), WARMUP (2, seconds before each run),
# IDLE_CONNS (10000, 0 to skip the memory test), SCENARIOS (all ten), CONNS (64), HS_CONNS (16),
# WAF_CONNS (16), WRK_THREADS (1), PROXY_CPU (0), CLIENT_CPU (1), BUILD_DIR (dir with gerbang and
# gerbangctl; default ./build, built with scripts/build.sh if missing), RESULTS_DIR (bench/results),
# KEEP_TMP (1 = keep the temporary directory), NGINX (nginx binary), PROFILE (auto|0|1: perf profiles),
# PROFILE_SCENARIOS (small-get get-16k policies audit-strict waf-post), PROFILE_SECONDS (5).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
IDLE_CONNS=${IDLE_CONNS:-10000}
ALL_SCENARIOS="small-get get-16k post-4k handshake-full handshake-resumed policies audit-strict audit-batched waf-small waf-post"
SCENARIOS=${SCENARIOS:-$ALL_SCENARIOS}
CONNS=${CONNS:-64}
HS_CONNS=${HS_CONNS:-16}
WAF_CONNS=${WAF_CONNS:-16}
PROFILE=${PROFILE:-auto}
PROFILE_SCENARIOS=${PROFILE_SCENARIOS:-"small-get get-16k policies audit-strict waf-post"}
PROFILE_SECONDS=${PROFILE_SECONDS:-5}
WRK_THREADS=${WRK_THREADS:-1}
PROXY_CPU=${PROXY_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
KEEP_TMP=${KEEP_TMP:-0}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
RESULTS_DIR=${RESULTS_DIR:-$here/results}

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for v in ROUNDS DURATION WARMUP IDLE_CONNS CONNS HS_CONNS WAF_CONNS WRK_THREADS PROXY_CPU CLIENT_CPU PROFILE_SECONDS; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, got '${!v}'"
done
((ROUNDS >= 1)) || die "ROUNDS must be at least 1"
((DURATION >= 1)) || die "DURATION must be at least 1"
((ROUNDS >= 3)) || log "warning: ROUNDS=$ROUNDS; medians of fewer than 3 rounds are not meaningful"
for s in $SCENARIOS; do
  case " $ALL_SCENARIOS " in *" $s "*) ;; *) die "unknown scenario '$s' (known: $ALL_SCENARIOS)" ;; esac
done
selected() { # SCENARIO...: true if any of them is in $SCENARIOS
  local a
  for a in "$@"; do case " $SCENARIOS " in *" $a "*) return 0 ;; esac; done
  return 1
}
NEED_POLICIES=0 NEED_AUDIT_STRICT=0 NEED_AUDIT_BATCHED=0 NEED_WAF=0
selected policies && NEED_POLICIES=1
selected audit-strict && NEED_AUDIT_STRICT=1
selected audit-batched && NEED_AUDIT_BATCHED=1
selected waf-small waf-post && NEED_WAF=1
if (($(nproc) < 2)); then
  log "warning: only $(nproc) CPU; proxies, wrk and the upstream all share CPU 0"
  PROXY_CPU=0 CLIENT_CPU=0
fi

# ---------------------------------------------------------------------------------------------------
# Tools: nginx and wrk from the distribution, python3 for helpers, gerbang from the build directory.
missing=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
modsec_module() { # the ModSecurity-nginx dynamic module, or nothing
  local f
  for f in ${NGINX_MODSEC_MODULE:-} /usr/lib/nginx/modules/ngx_http_modsecurity_module.so \
    /usr/share/nginx/modules/ngx_http_modsecurity_module.so /usr/lib64/nginx/modules/ngx_http_modsecurity_module.so; do
    [[ -f $f ]] && { echo "$f"; return; }
  done
}
if ((NEED_WAF)); then
  [[ -n $(modsec_module) ]] || missing+=(libnginx-mod-http-modsecurity)
  [[ -d /usr/share/modsecurity-crs/rules ]] || missing+=(modsecurity-crs)
fi
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
if ((NEED_POLICIES)); then command -v openssl >/dev/null 2>&1 || die "openssl not found (policies scenario)"; fi
MODSEC_MODULE=""
if ((NEED_WAF)); then
  MODSEC_MODULE=$(modsec_module)
  [[ -n $MODSEC_MODULE ]] || die "ngx_http_modsecurity_module.so not found (libnginx-mod-http-modsecurity)"
fi
# perf: hardware counters are often missing in VMs, so profiles sample the cpu-clock software event.
case $PROFILE in
auto) if command -v perf >/dev/null 2>&1 && perf record -e cpu-clock -o /dev/null -q -- true >/dev/null 2>&1; then
  PROFILE=1; else PROFILE=0; fi ;;
0 | 1) ;;
*) die "PROFILE must be auto, 0 or 1" ;;
esac

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
    for f in "$WORK"/gerbang*.stderr "$WORK"/nginx/error.log "$WORK"/nginx-waf/error.log "$WORK"/upstream/error.log; do
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
# Private copies of the binaries: the build directory may be rebuilt by someone else during the run.
log "work directory $WORK"
GERBANG_SRC=$GERBANG
gerbang_mtime=$(date -u -r "$GERBANG" '+%Y-%m-%d %H:%M:%S UTC')
mkdir -p "$WORK/bin"
cp "$GERBANG" "$WORK/bin/gerbang"
cp "$GERBANGCTL" "$WORK/bin/gerbangctl"
GERBANG=$WORK/bin/gerbang
GERBANGCTL=$WORK/bin/gerbangctl
git_state=$(git -C "$repo" --no-optional-locks log -1 --format='%h (%cd)' --date=format:'%Y-%m-%d %H:%M' 2>/dev/null || echo unknown)
git_dirty=$(git -C "$repo" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null | awk '{ print $2 }' | tr '\n' ' ')

# ---------------------------------------------------------------------------------------------------
# Certificates and the upstream.
"$GERBANGCTL" certs demo --out "$WORK/pki" >/dev/null
CERT=$WORK/pki/server-ecdsa.pem
KEY=$WORK/pki/server-ecdsa.key

read -r UP_PORT NG_PORT NG_NORES_PORT NG_CHECK_PORT NG_WAF_PORT <<<"$(free_ports 5)"

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
    max_connections_per_ip: 20000
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

# ---------------------------------------------------------------------------------------------------
# Extra instances for the feature scenarios. Each is its own gerbang process (same head as above, one
# listener with resumption on, same upstream) so that the existing scenarios run against an unchanged
# gerbang; the plain gerbang above is their baseline.
gerbang_head() { # the top of an extra instance's configuration
  cat <<EOF
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
upstreams:
  - name: up
    targets: ["127.0.0.1:$UP_PORT"]
    max_idle: 64
EOF
}

JWT_ISSUER=https://idp.bench.local
JWT_AUDIENCE=gerbang-bench
if ((NEED_POLICIES)); then
  # An Ed25519 key in a JWKS file and a token for consumer "bench" (23 h, under the issuer's 24 h maximum).
  mkdir -p "$WORK/policies"
  openssl genpkey -algorithm ed25519 -out "$WORK/policies/idp.pem" 2>/dev/null
  JWT=$(python3 "$here/jwt_token.py" --key "$WORK/policies/idp.pem" --jwks-out "$WORK/policies/jwks.json" \
    --issuer "$JWT_ISSUER" --audience "$JWT_AUDIENCE" --subject bench --groups bench-clients) ||
    die "could not make the JWT"
  {
    gerbang_head
    cat <<EOF
auth:
  jwt_issuers:
    - name: bench-idp
      issuer: "$JWT_ISSUER"
      audiences: ["$JWT_AUDIENCE"]
      jwks_file: $WORK/policies/jwks.json
      algorithms: [EdDSA]
consumers:
  - id: bench
    groups: [bench-clients]
    department: bench
    credentials:
      jwt:
        - {issuer: bench-idp, subject: bench}
routes:
  - name: all
    upstream: up
    ip:
      allow: ["127.0.0.0/8"]
    auth:
      methods: [jwt]
    allow:
      - consumers: [bench]
        methods: [GET, HEAD]
    rate_limits:
      - rate: "1000000/s"
        key: consumer
EOF
  } >"$WORK/gerbang-policies.yaml"
fi

AUDIT_ORIGIN=bench.audit/gw
if ((NEED_AUDIT_STRICT || NEED_AUDIT_BATCHED)); then
  mkdir -p "$WORK/audit"
  AUDIT_VKEY=$("$GERBANGCTL" keys generate --out "$WORK/audit/audit.key" --name "$AUDIT_ORIGIN" 2>/dev/null | head -n 1)
  [[ $AUDIT_VKEY == "$AUDIT_ORIGIN+"* ]] || die "gerbangctl keys generate printed no verifier key"
  for mode in strict batched; do
    {
      gerbang_head
      cat <<EOF
audit:
  dir: $WORK/audit/log-$mode
  origin: "$AUDIT_ORIGIN"
  key: $WORK/audit/audit.key
  durability: $mode
routes:
  - name: all
    upstream: up
EOF
    } >"$WORK/gerbang-audit-$mode.yaml"
  done
fi

# CRS request rules as gerbang loads them (gateway: crs_dir/rules/REQUEST-*.conf, sorted; no RESPONSE-*
# rules without inspect_response), and the settings gerbang's WAF puts around them.
CRS_DIR=/usr/share/modsecurity-crs
CRS_SETUP=/etc/modsecurity/crs/crs-setup.conf
WAF_ALLOWED_METHODS="GET HEAD POST OPTIONS PUT PATCH DELETE"  # gerbang's default allowed_methods
WAF_BODY_LIMIT=131072                                       # gerbang's default body_inspection_limit
if ((NEED_WAF)); then
  [[ -f $CRS_SETUP ]] || die "$CRS_SETUP not found (modsecurity-crs)"
  {
    gerbang_head
    cat <<EOF
routes:
  - name: all
    upstream: up
    waf:
      mode: block
      paranoia: 1
EOF
  } >"$WORK/gerbang-waf.yaml"

  # NGINX + ModSecurity-nginx: the recommended ModSecurity configuration adapted (engine on, request
  # bodies on, response bodies off, audit log off, gerbang's body limit), crs-setup.conf, the same
  # paranoia/threshold/method settings, the same REQUEST-*.conf files.
  MODSEC_BASE=""
  for f in /etc/modsecurity/modsecurity.conf-recommended /usr/share/nginx/docs/modsecurity/modsecurity.conf \
    /etc/nginx/modsecurity.conf /usr/share/doc/libmodsecurity3/examples/modsecurity.conf-recommended; do
    [[ -f $f ]] && { MODSEC_BASE=$f; break; }
  done
  [[ -n $MODSEC_BASE ]] || die "no modsecurity.conf-recommended found"
  mkdir -p "$WORK/nginx-waf/tmp/modsec"
  chmod 755 "$WORK/nginx-waf" "$WORK/nginx-waf/tmp"
  chmod 777 "$WORK/nginx-waf/tmp/modsec"
  sed -e 's/^SecRuleEngine .*/SecRuleEngine On/' \
    -e 's/^SecRequestBodyAccess .*/SecRequestBodyAccess On/' \
    -e 's/^SecResponseBodyAccess .*/SecResponseBodyAccess Off/' \
    -e 's/^SecAuditEngine .*/SecAuditEngine Off/' \
    -e "s|^SecAuditLog .*|SecAuditLog $WORK/nginx-waf/modsec_audit.log|" \
    -e "s/^SecRequestBodyLimit .*/SecRequestBodyLimit $WAF_BODY_LIMIT/" \
    -e "s/^SecRequestBodyNoFilesLimit .*/SecRequestBodyNoFilesLimit $WAF_BODY_LIMIT/" \
    -e 's/^SecStatusEngine .*/SecStatusEngine Off/' \
    -e "s|^SecTmpDir .*|SecTmpDir $WORK/nginx-waf/tmp/modsec/|" \
    -e "s|^SecDataDir .*|SecDataDir $WORK/nginx-waf/tmp/modsec/|" \
    "$MODSEC_BASE" >"$WORK/nginx-waf/modsecurity.conf"
  if grep -q '^SecUnicodeMapFile unicode.mapping' "$WORK/nginx-waf/modsecurity.conf"; then
    cp "$(dirname "$MODSEC_BASE")/unicode.mapping" "$WORK/nginx-waf/" 2>/dev/null ||
      sed -i 's/^SecUnicodeMapFile /# SecUnicodeMapFile /' "$WORK/nginx-waf/modsecurity.conf"
  fi
  {
    echo "Include $WORK/nginx-waf/modsecurity.conf"
    echo "Include $CRS_SETUP"
    echo "SecAction \"id:900800,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level=1,setvar:tx.executing_paranoia_level=1\""
    echo "SecAction \"id:900801,phase:1,nolog,pass,t:none,setvar:tx.inbound_anomaly_score_threshold=5,setvar:tx.outbound_anomaly_score_threshold=4\""
    echo "SecAction \"id:900802,phase:1,nolog,pass,t:none,setvar:'tx.allowed_methods=$WAF_ALLOWED_METHODS'\""
    for f in $(find "$CRS_DIR/rules" -maxdepth 1 -name 'REQUEST-*.conf' | LC_ALL=C sort); do echo "Include $f"; done
  } >"$WORK/nginx-waf/rules.conf"
  {
    echo "load_module $MODSEC_MODULE;"
    nginx_common "$WORK/nginx-waf"
    cat <<EOF
http {
$(temp_paths "$WORK/nginx-waf")
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_max_body_size 10m;
    ssl_protocols TLSv1.3;
    ssl_prefer_server_ciphers on;
    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
    ssl_ecdh_curve X25519:prime256v1:secp384r1;
    ssl_conf_command NumTickets 1;
    ssl_certificate $CERT;
    ssl_certificate_key $KEY;
    upstream up {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
        keepalive_requests 10000000;
    }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    server {
        listen 127.0.0.1:$NG_WAF_PORT ssl backlog=4096;
        ssl_session_tickets on;
        ssl_session_cache shared:benchwaf:10m;
        modsecurity on;
        modsecurity_rules_file $WORK/nginx-waf/rules.conf;
        location / { proxy_pass http://up; }
    }
}
EOF
  } >"$WORK/nginx-waf/nginx.conf"
  "$NGINX" -t -p "$WORK/nginx-waf" -c "$WORK/nginx-waf/nginx.conf" -e "$WORK/nginx-waf/error.log" \
    >"$WORK/nginx-waf/check.log" 2>&1 || { cat "$WORK/nginx-waf/check.log" >&2; die "nginx (ModSecurity) rejected its configuration"; }
fi
for f in "$WORK"/gerbang-*.yaml; do
  [[ -e $f ]] || continue
  "$GERBANG" --check-config "$f" >"${f%.yaml}.check" 2>&1 ||
    { cat "${f%.yaml}.check" >&2; die "gerbang rejected $(basename "$f")"; }
done

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

# Variants: each scenario compares two of them. VPIDS: the processes whose CPU time is counted.
declare -A VPIDS VPORT VADMIN
VPIDS[gerbang]=$GB_PID VPORT[gerbang]=$GB_PORT VADMIN[gerbang]=$GB_ADMIN
VPIDS[nginx]="$NG_PID $NG_WORKER" VPORT[nginx]=$NG_PORT
start_gerbang() { # VARIANT CONFIG
  local v=$1 f=$2 base pid
  base=$WORK/${1//+/-}
  taskset -c "$PROXY_CPU" "$GERBANG" --config "$f" --ready-file "$base.ready" >"$base.stdout" 2>"$base.stderr" &
  pid=$!
  started_pids+=("$pid")
  for _ in $(seq 300); do
    grep -qx ready "$base.ready" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || die "gerbang ($v) exited: $(cat "$base.stderr")"
    sleep 0.1
  done
  grep -qx ready "$base.ready" 2>/dev/null || die "gerbang ($v) did not become ready"
  VPIDS[$v]=$pid
  VPORT[$v]=$(awk '$1 == "listener" && $2 == "resume" { print $3 }' "$base.ready")
  VADMIN[$v]=$(awk '$1 == "admin" { print $2 }' "$base.ready")
  log "gerbang ($v) pid $pid (:${VPORT[$v]}, admin :${VADMIN[$v]})"
}
((NEED_POLICIES)) && start_gerbang gerbang+policies "$WORK/gerbang-policies.yaml"
((NEED_AUDIT_STRICT)) && start_gerbang gerbang+audit-strict "$WORK/gerbang-audit-strict.yaml"
((NEED_AUDIT_BATCHED)) && start_gerbang gerbang+audit-batched "$WORK/gerbang-audit-batched.yaml"
if ((NEED_WAF)); then
  start_gerbang gerbang+waf "$WORK/gerbang-waf.yaml"
  taskset -c "$PROXY_CPU" "$NGINX" -p "$WORK/nginx-waf" -c "$WORK/nginx-waf/nginx.conf" -e "$WORK/nginx-waf/error.log" \
    >"$WORK/nginx-waf/stdout" 2>&1 &
  NGW_PID=$!
  started_pids+=("$NGW_PID")
  for _ in $(seq 100); do # loading the CRS takes a moment
    wait_port "$NG_WAF_PORT" "$NGW_PID" && break
  done
  wait_port "$NG_WAF_PORT" "$NGW_PID" || die "nginx (ModSecurity) did not start: $(tail -n 5 "$WORK/nginx-waf/error.log" 2>/dev/null)"
  NGW_WORKER=$(pgrep -P "$NGW_PID" | head -n 1)
  [[ -n $NGW_WORKER ]] || die "no nginx (ModSecurity) worker process under master $NGW_PID"
  VPIDS[nginx+modsecurity]="$NGW_PID $NGW_WORKER" VPORT[nginx+modsecurity]=$NG_WAF_PORT
  log "nginx+modsecurity master $NGW_PID worker $NGW_WORKER (:$NG_WAF_PORT)"
fi

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
proxy_pids() { # VARIANT
  echo "${VPIDS[$1]}"
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

# Functional checks of the feature instances: the request each scenario sends must succeed, and the
# feature must really be on (a request without a token is refused, the audit log answers with receipts,
# both WAFs block the same attack).
fetch() { python3 "$here/tls_fetch.py" "$@"; }
expect() { # DESCRIPTION WANT_STATUS WANT_LEN(- = any) -- fetch args...
  local what=$1 want=$2 wlen=$3 got status n
  shift 4
  got=$(fetch "$@")
  read -r status n _ <<<"$got"
  if [[ $status != "$want" || ($wlen != - && $n != "$wlen") ]]; then
    log "  check failed: $what: got '$got', want status $want and body length $wlen"
    return 1
  fi
  log "  check: $what -> $got"
}
WAF_HDRS=(-H "User-Agent: Mozilla/5.0 (X11; Linux x86_64) gerbang-bench/1" -H "Accept: application/json, */*"
  -H "Accept-Language: id-ID,id;q=0.9,en;q=0.8")
ATTACK_PATH="/small?id=1%27%20OR%20%271%27%3D%271"  # ?id=1' OR '1'='1
checks_ok=1
if ((NEED_POLICIES)); then
  p=${VPORT[gerbang+policies]}
  expect "policies: GET /small with the JWT" 200 100 -- "$p" GET /small -H "Authorization: Bearer $JWT" || checks_ok=0
  expect "policies: GET /small without a token" 401 - -- "$p" GET /small || checks_ok=0
  c=${JWT: -10:1}
  [[ $c == A ]] && c=B || c=A
  bad_jwt=${JWT:0:${#JWT}-10}$c${JWT: -9} # one signature character changed (not the last, whose low bits are padding)
  expect "policies: GET /small with a damaged signature" 401 - -- "$p" GET /small -H "Authorization: Bearer $bad_jwt" || checks_ok=0
  expect "policies: POST /post (no allow rule for POST)" 403 - -- "$p" POST /post -H "Authorization: Bearer $JWT" || checks_ok=0
  expect "plain gerbang: GET /small with the JWT" 200 100 -- "$GB_PORT" GET /small -H "Authorization: Bearer $JWT" || checks_ok=0
fi
for mode in strict batched; do
  v=gerbang+audit-$mode
  [[ -n ${VPORT[$v]:-} ]] || continue
  got=$(fetch "${VPORT[$v]}" GET /small --show-header X-Gerbang-Receipt)
  log "  check: audit $mode: GET /small -> $got"
  [[ $got == "200 100 $AUDIT_ORIGIN;"* ]] || { log "  check failed: audit $mode: no 200 with an X-Gerbang-Receipt"; checks_ok=0; }
done
if ((NEED_WAF)); then
  python3 "$here/make_json.py" "$WORK/waf-post.json" --size 4096
  for v in gerbang+waf nginx+modsecurity; do
    p=${VPORT[$v]}
    expect "$v: GET /small" 200 100 -- "$p" GET /small "${WAF_HDRS[@]}" || checks_ok=0
    expect "$v: POST /post, 4 KiB JSON" 200 3 -- "$p" POST /post --body-file "$WORK/waf-post.json" \
      -H "Content-Type: application/json" "${WAF_HDRS[@]}" || checks_ok=0
    expect "$v: GET ?id=1' OR '1'='1" 403 - -- "$p" GET "$ATTACK_PATH" "${WAF_HDRS[@]}" || checks_ok=0
  done
  # Benign requests must not match any rule (a match is logged by NGINX on every request, which would
  # skew the comparison): only the attack should appear in the ModSecurity log lines.
  n_modsec=$(grep -c 'ModSecurity: ' "$WORK/nginx-waf/error.log" 2>/dev/null || true)
  n_attack=$(grep 'ModSecurity: ' "$WORK/nginx-waf/error.log" 2>/dev/null | grep -c 'id=1' || true)
  log "  check: nginx+modsecurity error.log has $n_modsec ModSecurity lines ($n_attack about the attack)"
  if ((n_modsec != n_attack)); then
    log "  warning: ModSecurity matched benign check requests:"
    grep 'ModSecurity: ' "$WORK/nginx-waf/error.log" | grep -v 'id=1' | head -n 5 >&2
  fi
fi
((checks_ok)) || die "feature checks failed"

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
if ((NEED_POLICIES)); then # the same request (with the token) to the plain and the policy instance
  printf '%s\n' "wrk.headers[\"Authorization\"] = \"Bearer $JWT\"" "$wrk_done" >"$WORK/get-jwt.lua"
fi
if ((NEED_WAF)); then # browser-like headers (CRS scores requests without them) and Host: localhost
  waf_headers='wrk.headers["Host"] = "localhost"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) gerbang-bench/1"
wrk.headers["Accept"] = "application/json, */*"
wrk.headers["Accept-Language"] = "id-ID,id;q=0.9,en;q=0.8"'
  printf '%s\n' "$waf_headers" "$wrk_done" >"$WORK/waf-get.lua"
  printf '%s\n' "$waf_headers" "wrk.method = \"POST\"" \
    "local f = assert(io.open(\"$WORK/waf-post.json\", \"rb\")); wrk.body = f:read(\"*a\"); f:close()" \
    "wrk.headers[\"Content-Type\"] = \"application/json\"" "$wrk_done" >"$WORK/waf-post.lua"
fi

variants_of() { # SCENARIO -> "BASELINE OTHER": the two variants a scenario compares, in run order
  case $1 in
  policies) echo "gerbang gerbang+policies" ;;
  audit-strict) echo "gerbang gerbang+audit-strict" ;;
  audit-batched) echo "gerbang gerbang+audit-batched" ;;
  waf-small | waf-post) echo "gerbang+waf nginx+modsecurity" ;;
  *) echo "gerbang nginx" ;;
  esac
}

scenario_args() { # SCENARIO VARIANT -> sets url, conns, lua, hdr
  local port nores
  port=${VPORT[$2]}
  if [[ $2 == gerbang ]]; then nores=$GB_NORES_PORT; else nores=$NG_NORES_PORT; fi
  hdr=()
  lua=$WORK/get.lua
  conns=$CONNS
  case $1 in
  small-get) url=https://127.0.0.1:$port/small ;;
  get-16k) url=https://127.0.0.1:$port/16k ;;
  post-4k) url=https://127.0.0.1:$port/post lua=$WORK/post.lua ;;
  handshake-full) url=https://127.0.0.1:$nores/small conns=$HS_CONNS hdr=(-H "Connection: close") ;;
  handshake-resumed) url=https://127.0.0.1:$port/small conns=$HS_CONNS hdr=(-H "Connection: close") ;;
  policies) url=https://127.0.0.1:$port/small lua=$WORK/get-jwt.lua ;;
  audit-strict | audit-batched) url=https://127.0.0.1:$port/small ;;
  waf-small) url=https://127.0.0.1:$port/small conns=$WAF_CONNS lua=$WORK/waf-get.lua ;;
  waf-post) url=https://127.0.0.1:$port/post conns=$WAF_CONNS lua=$WORK/waf-post.lua ;;
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
  read -r va vb <<<"$(variants_of "$s")"
  for r in $(seq "$ROUNDS"); do
    run_one "$s" "$va" "$r"
    run_one "$s" "$vb" "$r"
  done
done
measure_end=$(date +%s)
load_measure_end=$(cut -d' ' -f1-3 /proc/loadavg)

# Profiles (after the measured runs, so that perf does not disturb them): perf samples the gerbang
# process that the scenario exercises for PROFILE_SECONDS while wrk drives it.
PROFILE_OUT=()
profile_variant() { # SCENARIO -> the gerbang variant to profile
  local a b
  read -r a b <<<"$(variants_of "$1")"
  if [[ $b == gerbang+* ]]; then echo "$b"; else echo "$a"; fi
}
if ((PROFILE)); then
  for s in $PROFILE_SCENARIOS; do
    selected "$s" || continue
    v=$(profile_variant "$s")
    scenario_args "$s" "$v"
    pid=${VPIDS[$v]}
    taskset -c "$CLIENT_CPU" wrk -t"$threads" -c"$conns" -d"$((PROFILE_SECONDS + 3))s" --timeout 5s -s "$lua" \
      "${hdr[@]}" "$url" >"$WORK/perf-$s.wrk" 2>&1 &
    wpid=$!
    sleep 1.5
    perf record -e cpu-clock -F 2000 -g -p "$pid" -o "$WORK/perf-$s.data" -- sleep "$PROFILE_SECONDS" \
      >"$WORK/perf-$s.log" 2>&1 || log "  perf record failed for $s: $(tail -n 2 "$WORK/perf-$s.log")"
    wait "$wpid" || true
    perf report -i "$WORK/perf-$s.data" --no-children --stdio -g none --sort dso,symbol >"$WORK/perf-$s.txt" 2>/dev/null || true
    # (the IPC columns are empty with a software event: cut them and the padding)
    top=$(grep -E '^ +[0-9.]+%' "$WORK/perf-$s.txt" | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//; s/[[:space:]]+$//' |
      head -n 15 || true)
    samples=$(sed -n 's/^# Samples: \([^ ]*\) .*/\1/p' "$WORK/perf-$s.txt" | head -n 1)
    reqs=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' "$WORK/perf-$s.wrk")
    PROFILE_OUT+=("### $s ($v, pid $pid; ${samples:-?} samples at 2 kHz cpu-clock over ${PROFILE_SECONDS}s; wrk: ${reqs:-?} requests in $((PROFILE_SECONDS + 3))s)"
      "" '```' "$top" '```' "")
    log "  profile $s ($v): $(head -n 3 <<<"$top" | awk '{ printf "%s %s; ", $1, $4 }')"
  done
fi

# Every extra gerbang's view of the run (non-zero counters) goes into the raw log, before any is stopped.
for v in "${!VADMIN[@]}"; do
  [[ $v == gerbang ]] && continue
  python3 - "${VADMIN[$v]}" "$v" >>"$RAW" 2>&1 <<'EOF' || true
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
print(f"=== {sys.argv[2]} /metrics at the end (non-zero counters)")
for line in body.splitlines():
    if line and not line.startswith("#") and line.split()[-1] not in ("0", "0.0"):
        print(line)
EOF
done

# Audit logs: stop the instance (SIGTERM: drain, final checkpoint), then verify the folder offline and
# time it. The verifier prints its own records/s.
VERIFY_LINES=()
for mode in strict batched; do
  v=gerbang+audit-$mode
  [[ -n ${VPIDS[$v]:-} ]] || continue
  pid=${VPIDS[$v]}
  kill -TERM "$pid" 2>/dev/null || true
  rc=0
  wait "$pid" || rc=$?
  dir=$WORK/audit/log-$mode
  bytes=$(du -sb "$dir" | awk '{ print $1 }')
  t0=$(date +%s%N)
  vrc=0
  vout=$(taskset -c "$PROXY_CPU" "$GERBANGCTL" audit verify --dir "$dir" --key "$AUDIT_VKEY" 2>&1) || vrc=$?
  t1=$(date +%s%N)
  {
    echo "=== gerbangctl audit verify ($mode log, exit $vrc, $(((t1 - t0) / 1000000)) ms)"
    echo "$vout"
  } >>"$RAW"
  VERIFY_LINES+=("$(awk -v m="$mode" -v b="$bytes" -v ms="$(((t1 - t0) / 1000000))" -v rc="$vrc" -v grc="$rc" 'BEGIN {
    printf "%s: gateway exit status %d; log %.1f MiB; `gerbangctl audit verify` exit %d in %.2f s wall; its output:", m, grc, b / 1048576, rc, ms / 1000 }')")
  VERIFY_LINES+=("$(sed 's/^/    /' <<<"$vout")")
  log "  audit verify ($mode): exit $vrc in $(((t1 - t0) / 1000000)) ms: $(tail -n 1 <<<"$vout")"
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
  local s pairs=""
  for s in $SCENARIOS; do pairs+="$s:$(variants_of "$s" | tr ' ' ':') "; done
  awk -F'\t' -v pairs="$pairs" -f "$here/report.awk" "$TSV"
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
  echo "- Versions: $gerbang_version ($GERBANG_SRC, built $gerbang_mtime, copied before the run); $nginx_version; wrk $wrk_version; $openssl_version"
  echo "- Source tree: HEAD $git_state${git_dirty:+; modified, uncommitted: $git_dirty}"
  echo "- Load average (1/5/15 min) at start: $load_start; after the measured runs: $load_measure_end; at end: $load_end (the machine may be shared)"
  echo "- Setup: proxies on CPU $PROXY_CPU (one worker each), wrk and the upstream nginx on CPU $CLIENT_CPU;" \
    "TLS 1.3, ECDSA P-256; wrk -t$WRK_THREADS, $CONNS connections ($HS_CONNS for handshakes, $WAF_CONNS for the WAF scenarios);" \
    "$ROUNDS rounds x ${DURATION}s (+${WARMUP}s warm-up), interleaved; medians; measured runs $((measure_end - start_time))s, total ${elapsed}s"
  echo "- Open-file limit: $NOFILE"
  if selected policies; then
    echo "- policies: route with \`ip.allow\` 127.0.0.0/8, \`auth: {methods: [jwt]}\` (EdDSA key in a JWKS file, token for consumer \"bench\")," \
      "\`allow\` consumer bench for GET/HEAD, \`rate_limits\` 1000000/s per consumer; the plain gerbang gets the same request (with the token)"
  fi
  if selected audit-strict audit-batched; then
    echo "- audit: \`audit: {dir, origin: $AUDIT_ORIGIN, key, durability: strict|batched}\` (other keys default), log on $(df -T "$WORK" | awk 'NR == 2 { print $2 " (" $1 ")" }')"
  fi
  if ((NEED_WAF)); then
    echo "- WAF: gerbang route \`waf: {mode: block, paranoia: 1}\` vs NGINX + ModSecurity-nginx ($(basename "$MODSEC_MODULE"), libmodsecurity $(dpkg-query -W -f='${Version}' libmodsecurity3 2>/dev/null || echo '?'))" \
      "with $MODSEC_BASE adapted (engine on, request body on, response body off, audit off, body limit $WAF_BODY_LIMIT), $CRS_SETUP," \
      "paranoia 1, thresholds 5/4, allowed methods \"$WAF_ALLOWED_METHODS\", the same $(find "$CRS_DIR/rules" -maxdepth 1 -name 'REQUEST-*.conf' | wc -l) REQUEST-*.conf files of CRS $(dpkg-query -W -f='${Version}' modsecurity-crs 2>/dev/null || echo '?');" \
      "wrk sends browser-like headers and Host: localhost; the WAF POST is a 4096-byte JSON document with 36 string fields"
  fi
  echo
  median_table
  if ((IDLE_CONNS > 0)); then
    echo "Memory (VmRSS):"
    echo
    for l in "${MEM_LINES[@]}"; do echo "- $l"; done
    echo
  fi
  echo "Resumption check (wrk, Connection: close, 2 s): $RES_GB; $RES_NG; $RES_GB_OFF."
  echo
  if ((${#VERIFY_LINES[@]})); then
    echo "Audit log verification (\`gerbangctl audit verify --dir D --key VKEY\`, after the gateway stopped, on CPU $PROXY_CPU):"
    echo
    for l in "${VERIFY_LINES[@]}"; do
      if [[ $l == "    "* ]]; then printf '\n```\n%s\n```\n\n' "$(sed 's/^    //' <<<"$l")"; else echo "- $l"; fi
    done
    echo
  fi
  if ((${#PROFILE_OUT[@]})); then
    echo "## Profiles (perf record -e cpu-clock -g -p PID, top 15 by self time: perf report --no-children -g none --sort dso,symbol)"
    echo
    for l in "${PROFILE_OUT[@]}"; do echo "$l"; done
  fi
  echo "<details><summary>All runs</summary>"
  echo
  echo "| scenario | proxy | round | req/s | p50 ms | p99 ms | µs CPU/req | requests | wrk errors |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
  tail -n +2 "$TSV" | awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }'
  echo
  echo "</details>"
} >"$RESULT_FILE"
cp "$RAW" "${RESULT_FILE%.md}.raw.txt"
for f in "$WORK"/gerbang*.stderr; do
  if [[ -s $f ]]; then
    { echo "=== $(basename "$f" .stderr) stderr (last 200 lines)"; tail -n 200 "$f"; } >>"${RESULT_FILE%.md}.raw.txt"
  fi
done
for f in nginx/error.log upstream/error.log nginx-waf/error.log; do
  if [[ -s $WORK/$f ]]; then
    { echo "=== $f (last 200 lines)"; tail -n 200 "$WORK/$f"; } >>"${RESULT_FILE%.md}.raw.txt"
  fi
done

cat "$RESULT_FILE"
log "results written to $RESULT_FILE (raw wrk output in ${RESULT_FILE%.md}.raw.txt)"
