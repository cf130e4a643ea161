#!/usr/bin/env bash
# Starts and stops a private ClickHouse server for tests and development:
# Debian's clickhouse-server (installed with apt-get when missing), on
# loopback, from a config of its own in a temp dir, as the current user.
#
#   deploy/scripts/clickhouse.sh start [DIR]   start; prints the DSN
#   deploy/scripts/clickhouse.sh stop [DIR]    SIGTERM by PID, SIGKILL after 5 s
#   deploy/scripts/clickhouse.sh status [DIR]  exit 0 when /ping answers
#   deploy/scripts/clickhouse.sh dsn [DIR]     print the DSN
#   deploy/scripts/clickhouse.sh install       install the packages only
#
# DIR defaults to $DRIFTLINE_CLICKHOUSE_DIR or /tmp/driftline-clickhouse. It
# holds config.xml, users.xml, data/, the log, and two files the callers
# read: pid and dsn (clickhouse://127.0.0.1:PORT). Ports are picked free at
# the first start and kept in DIR/ports, so a restart (the sink's no-loss
# test stops and starts its own server) comes back on the same DSN.
set -euo pipefail

cmd=${1:-}
dir=${2:-${DRIFTLINE_CLICKHOUSE_DIR:-/tmp/driftline-clickhouse}}

log() { echo "clickhouse.sh: $*" >&2; }

server_bin() {
  if command -v clickhouse-server >/dev/null 2>&1; then
    command -v clickhouse-server
  elif command -v clickhouse >/dev/null 2>&1; then
    echo "$(command -v clickhouse) server"
  else
    return 1
  fi
}

install() {
  if server_bin >/dev/null && command -v clickhouse-client >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    log "need root to apt-get install clickhouse-server clickhouse-client"
    exit 1
  fi
  log "installing Debian's clickhouse-server and clickhouse-client"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
}

free_port() {
  # The kernel picks a free port; a race with another process taking it
  # before the server binds is possible but rare, and start fails loudly.
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null ||
    { local p; for p in $(shuf -i 20000-60000 -n 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
      done; return 1; }
}

running() {
  [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null
}

ping() {
  local http
  http=$(sed -n 2p "$dir/ports" 2>/dev/null) || return 1
  [ -n "$http" ] || return 1
  curl -fsS --max-time 1 "http://127.0.0.1:$http/ping" 2>/dev/null | grep -q Ok
}

write_config() {
  mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$dir/log"
  if [ ! -f "$dir/ports" ]; then
    { free_port; free_port; } >"$dir/ports"
  fi
  local tcp http
  tcp=$(sed -n 1p "$dir/ports")
  http=$(sed -n 2p "$dir/ports")
  # The template in deploy/clickhouse/config.xml with this instance's
  # ports and paths filled in.
  local here
  here=$(cd "$(dirname "$0")/../clickhouse" && pwd)
  sed -e "s#@DIR@#$dir#g" -e "s#@TCP_PORT@#$tcp#g" -e "s#@HTTP_PORT@#$http#g" \
    "$here/config.xml" >"$dir/config.xml"
  cp "$here/users.xml" "$dir/users.xml"
  echo "clickhouse://127.0.0.1:$tcp" >"$dir/dsn"
}

start() {
  install
  if running && ping; then
    cat "$dir/dsn"
    return 0
  fi
  write_config
  local bin
  bin=$(server_bin)
  # shellcheck disable=SC2086 # bin may be "clickhouse server"
  nohup $bin --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 &
  echo $! >"$dir/pid"
  local i
  for i in $(seq 1 300); do
    if ping; then
      cat "$dir/dsn"
      return 0
    fi
    if ! running; then
      log "server exited during start; last log lines:"
      tail -n 20 "$dir/log/stderr.log" "$dir/log/stdout.log" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.1
  done
  log "server did not answer /ping within 30 s"
  stop
  exit 1
}

stop() {
  [ -f "$dir/pid" ] || return 0
  local pid i
  pid=$(cat "$dir/pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "server $pid still up 5 s after SIGTERM; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
    fi
  fi
  rm -f "$dir/pid"
}

case "$cmd" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) running && ping ;;
  dsn) cat "$dir/dsn" ;;
  *)
    echo "usage: $0 start|stop|status|dsn|install [DIR]" >&2
    exit 2
    ;;
esac
