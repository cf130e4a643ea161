#!/usr/bin/env bash
# Installs what the test suite needs beyond Go: Debian's kcat (the outside
# Kafka client of the end-to-end test) and Debian's clickhouse-server and
# clickhouse-client (the sink's and the analytics queries' tests; `make test`
# starts the server through deploy/scripts/clickhouse.sh). Idempotent; needs
# root for apt-get when something is missing.
set -euo pipefail

missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v clickhouse-server >/dev/null 2>&1 || command -v clickhouse >/dev/null 2>&1 || missing+=(clickhouse-server)
command -v clickhouse-client >/dev/null 2>&1 || missing+=(clickhouse-client)

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "test-deps: need root to apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "test deps ready: $(command -v kcat) ($(kcat -V 2>&1 | grep -m1 -o "kcat version [^ ]*" || echo "kcat")), $(command -v clickhouse-server || command -v clickhouse) ($(clickhouse-client --version 2>/dev/null | grep -oE "[0-9]+\.[0-9]+\.[0-9]+" | head -1 || echo "clickhouse"))"
