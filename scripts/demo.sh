#!/usr/bin/env bash
# Installs dependencies, builds gerbang, makes a throwaway PKI, starts the demo upstream and the gateway on
# https://localhost:8443 with examples/demo.yaml, and prints what to try. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
./build/gerbangctl certs demo --out demo-run/certs >/dev/null
[ -f demo-run/audit.key ] || ./build/gerbangctl keys generate --out demo-run/audit.key --name demo.gerbang.local/gw-01 >/dev/null
./build/gerbang --check-config examples/demo.yaml
./build/gerbang-demo-upstream --listen 127.0.0.1:9000 > demo-run/upstream.log 2>&1 &
upstream=$!
./build/gerbang --config examples/demo.yaml --ready-file demo-run/ready > demo-run/access.log &
gateway=$!
trap 'kill -TERM $gateway $upstream 2>/dev/null; wait $gateway 2>/dev/null; exit 0' INT TERM
for _ in $(seq 100); do [ -f demo-run/ready ] && break; sleep 0.1; done
cat <<TRY

gerbang is running on https://localhost:8443 (admin on http://127.0.0.1:9901). Try:

  curl --cacert demo-run/certs/ca.pem https://localhost:8443/echo/hello
  curl --cacert demo-run/certs/ca.pem -X POST -d '{"nama":"Budi"}' https://localhost:8443/api/penduduk
  curl --cacert demo-run/certs/ca.pem --cert demo-run/certs/client.pem --key demo-run/certs/client.key https://localhost:8443/echo/mtls
  curl -i http://localhost:8080/echo/hello                                  # 301 to https
  curl -i --cacert demo-run/certs/ca.pem https://localhost:8443/nowhere     # 404 problem+json
  curl -i --cacert demo-run/certs/ca.pem -H 'Content-Length: 1' -H 'Transfer-Encoding: chunked' -d x https://localhost:8443/echo/  # 400
  curl -i --cacert demo-run/certs/ca.pem "https://localhost:8443/api/cari?q=1'%20OR%20'1'='1"   # 403 waf.blocked
  curl -sD- -o/dev/null --cacert demo-run/certs/ca.pem https://localhost:8443/echo/x | grep -i receipt  # audit receipt
  ./build/gerbangctl audit verify --dir demo-run/audit --key "\$(./build/gerbangctl keys public demo-run/audit.key)"
  kill -HUP \$(pgrep -f 'gerbang --config')                                 # live reload of examples/demo.yaml
  curl http://127.0.0.1:9901/metrics
  tail -f demo-run/access.log                                                # JSON access log

Ctrl-C stops the gateway (graceful drain) and the demo upstream.
TRY
wait $gateway
