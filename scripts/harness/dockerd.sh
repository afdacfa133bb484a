#!/usr/bin/env bash
# Starts a private Docker Engine for the tests, and a tiny image it can run.
#
#   scripts/harness/dockerd.sh start   start it; print `export JOELCLAW_TEST_DOCKER_HOST=...`
#   scripts/harness/dockerd.sh env     print the exports for the running one
#   scripts/harness/dockerd.sh status  exit 0 when it runs
#   scripts/harness/dockerd.sh stop    stop it (by its pid file) and remove its state
#
# Its own --data-root, --exec-root, --pidfile and socket, so it never meets the machine's own
# Docker; --iptables=false and --bridge=none, so it does not touch the host's network (containers
# run with `--network none`). Nothing can be pulled here, so the image is imported from a folder
# holding Debian's static busybox and its applet links.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"

state="$JOELCLAW_TEST_STATE/docker"
sock="$state/docker.sock"
image="joelclaw-test/busybox:latest"
docker_cli() { docker -H "unix://$sock" "$@"; }

print_env() {
    echo "export JOELCLAW_TEST_DOCKER_HOST=unix://$sock"
    echo "export JOELCLAW_TEST_DOCKER_IMAGE=$image"
    echo "export JOELCLAW_TEST_DOCKER_PIDFILE=$state/dockerd.pid"
}

start() {
    need_root
    if [ -f "$state/dockerd.pid" ] && pid_is "$(cat "$state/dockerd.pid")" dockerd; then
        print_env; return 0
    fi
    remove_state "$state"; mkdir -p "$state/data" "$state/exec"
    setsid dockerd --data-root "$state/data" --exec-root "$state/exec" \
        --pidfile "$state/dockerd.pid" --host "unix://$sock" \
        --iptables=false --ip6tables=false --bridge=none --ip-masq=false \
        --userland-proxy=false --log-level=warn \
        </dev/null >"$state/dockerd.log" 2>&1 &
    local ok=""
    for _ in $(seq 1 300); do
        if [ -S "$sock" ] && docker_cli version >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.2
    done
    [ -n "$ok" ] || { tail -20 "$state/dockerd.log" >&2; die "dockerd did not answer in 60 s"; }
    local root="$state/image-root"
    mkdir -p "$root/bin"
    cp /bin/busybox "$root/bin/busybox"
    for applet in $("$root/bin/busybox" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
    done
    tar -C "$root" -c . | docker_cli import - "$image" >/dev/null
    print_env
}

stop() {
    [ -f "$state/dockerd.pid" ] || { remove_state "$state"; return 0; }
    local pid; pid="$(cat "$state/dockerd.pid")"
    if pid_is "$pid" dockerd; then
        docker_cli ps -aq 2>/dev/null | xargs -r docker -H "unix://$sock" rm -f >/dev/null 2>&1 || true
    fi
    stop_pid "$pid" dockerd 150
    remove_state "$state"
    rmdir "$JOELCLAW_TEST_STATE" 2>/dev/null || true
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) print_env ;;
    status) [ -f "$state/dockerd.pid" ] && pid_is "$(cat "$state/dockerd.pid")" dockerd ;;
    *) die "usage: $0 start|stop|env|status" ;;
esac
