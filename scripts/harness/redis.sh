#!/usr/bin/env bash
# Starts a private Redis for the tests (Debian's redis-server), standing in for Central's.
#
#   scripts/harness/redis.sh start   start it; print `export JOELCLAW_TEST_REDIS_URL=...`
#   scripts/harness/redis.sh env     print the exports for the running one
#   scripts/harness/redis.sh status  exit 0 when it runs
#   scripts/harness/redis.sh stop    stop it (by its pid file) and remove its state
#
# A Unix socket only (`--port 0`: no TCP listener), no persistence. Tests that stop Redis on
# purpose (outages) start their own from JOELCLAW_TEST_REDIS_SERVER instead of stopping this one.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"

state="$JOELCLAW_TEST_STATE/redis"
sock="$state/redis.sock"

print_env() {
    echo "export JOELCLAW_TEST_REDIS_URL=redis+unix://$sock"
    echo "export JOELCLAW_TEST_REDIS_SERVER=$(command -v redis-server)"
}

start() {
    if [ -f "$state/redis.pid" ] && pid_is "$(cat "$state/redis.pid")" redis-server; then
        print_env; return 0
    fi
    remove_state "$state"; mkdir -p "$state"
    redis-server --port 0 --unixsocket "$sock" --unixsocketperm 770 --save "" --appendonly no \
        --dir "$state" --pidfile "$state/redis.pid" --daemonize yes --logfile "$state/redis.log"
    for _ in $(seq 1 100); do
        [ -S "$sock" ] && [ -f "$state/redis.pid" ] && { print_env; return 0; }
        sleep 0.1
    done
    tail -20 "$state/redis.log" >&2 || true
    die "redis-server did not listen on $sock in 10 s"
}

stop() {
    [ -f "$state/redis.pid" ] && stop_pid "$(cat "$state/redis.pid")" redis-server 50
    remove_state "$state"
    rmdir "$JOELCLAW_TEST_STATE" 2>/dev/null || true
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) print_env ;;
    status) [ -f "$state/redis.pid" ] && pid_is "$(cat "$state/redis.pid")" redis-server ;;
    *) die "usage: $0 start|stop|env|status" ;;
esac
