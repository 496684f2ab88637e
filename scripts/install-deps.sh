#!/usr/bin/env bash
# Installs every build, test and demo dependency from Debian bookworm's packages. Idempotent; run as root.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config ccache
  libboost1.81-dev libssl-dev libsodium-dev libspdlog-dev libfmt-dev libyaml-cpp-dev libcli11-dev
  libmodsecurity-dev modsecurity-crs libhiredis-dev libmimalloc-dev
  libgtest-dev libgmock-dev googletest
  openssl curl ca-certificates python3 procps redis-server
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
