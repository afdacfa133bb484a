#!/usr/bin/env bash
# Boots a real systemd (the host's own, from /usr) in a volatile nspawn container, for the tests.
#
#   scripts/harness/systemd.sh start   boot it; print `export JOELCLAW_TEST_SYSTEMD_PID=...`
#   scripts/harness/systemd.sh env     print the exports for the running one
#   scripts/harness/systemd.sh status  exit 0 when it runs
#   scripts/harness/systemd.sh stop    power it off (kills the nspawn pid recorded at start)
#
# The container: `--volatile=yes` (only /usr from the host, everything else a tmpfs),
# `--private-network` (its services cannot touch the host's network), no stdin and no terminal
# (as in CI). The host's Docker and firewall units are masked inside so they do not start there.
# A scratch directory is bound at the same path inside and out (for log files the tests read;
# JOELCLAW_TEST_SYSTEMD_BIND="DIR ..." binds more, read-only),
# and a `joelclaw` service account is created inside, as a real node would have, with a running
# user manager (PAM configuration is bound read-only from the host so user@.service can start).
# Reach it with `nsenter -t $JOELCLAW_TEST_SYSTEMD_PID -a CMD`; write units from the host through
# /proc/$JOELCLAW_TEST_SYSTEMD_PID/root/etc/systemd/system.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"

state="$JOELCLAW_TEST_STATE/systemd"
machine="joelclaw-test-systemd"

# The container's systemd: the first descendant of the nspawn process named `systemd` (a child
# or a grandchild, depending on how nspawn forks).
find_systemd() {
    local queue=("$1") pid kids
    while [ ${#queue[@]} -gt 0 ]; do
        pid="${queue[0]}"; queue=("${queue[@]:1}")
        kids="$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)"
        for k in $kids; do
            if pid_is "$k" systemd; then echo "$k"; return 0; fi
            queue+=("$k")
        done
    done
    return 1
}

print_env() {
    echo "export JOELCLAW_TEST_SYSTEMD_PID=$(cat "$state/systemd.pid")"
    echo "export JOELCLAW_TEST_SCRATCH=$state/scratch"
    echo "export JOELCLAW_TEST_SYSTEMD_USER=joelclaw"
}

start() {
    need_root
    if [ -f "$state/nspawn.pid" ] && pid_is "$(cat "$state/nspawn.pid")" systemd-nspawn; then
        print_env; return 0
    fi
    remove_state "$state"; mkdir -p "$state/scratch"; chmod 0777 "$state/scratch"
    # PAM configuration, so user@.service (a user manager, for the --user tests) can start.
    local binds=(--bind="$state/scratch" --bind-ro=/etc/pam.d --bind-ro=/etc/security)
    for b in ${JOELCLAW_TEST_SYSTEMD_BIND:-}; do binds+=(--bind-ro="$b"); done
    setsid systemd-nspawn -D / --volatile=yes --register=no --keep-unit -M "$machine" \
        --private-network --console=passive "${binds[@]}" \
        -b systemd.firstboot=off systemd.unit=multi-user.target \
        systemd.mask=docker.service systemd.mask=docker.socket \
        systemd.mask=containerd.service systemd.mask=nftables.service \
        </dev/null >"$state/console.log" 2>&1 &
    echo $! >"$state/nspawn.pid"
    local nspawn_pid=$! pid="" i
    for i in $(seq 1 300); do
        # Alive, not yet "systemd-nspawn" by name: right after `&` it may still be the forked shell.
        kill -0 "$nspawn_pid" 2>/dev/null || { cat "$state/console.log" >&2; die "nspawn exited"; }
        pid="$(find_systemd "$nspawn_pid" || true)"
        if [ -n "$pid" ]; then
            local st
            st="$(nsenter -t "$pid" -a systemctl is-system-running 2>/dev/null || true)"
            case "$st" in running|degraded) break ;; esac
        fi
        sleep 0.2
    done
    [ -n "$pid" ] || die "no systemd under nspawn pid $nspawn_pid after 60 s"
    case "$(nsenter -t "$pid" -a systemctl is-system-running 2>/dev/null || true)" in
        running|degraded) ;;
        *) die "systemd in the container did not finish booting in 60 s" ;;
    esac
    echo "$pid" >"$state/systemd.pid"
    # The service account the tests' units run as, with a home and a user manager (lingering)
    # for the `systemctl --user` tests, reached as --machine=joelclaw@.host.
    mkdir -p "/proc/$pid/root/etc/sysusers.d"
    echo 'u joelclaw - "joelclaw test service account" /var/lib/joelclaw' \
        >"/proc/$pid/root/etc/sysusers.d/joelclaw-test.conf"
    nsenter -t "$pid" -a systemd-sysusers >&2
    nsenter -t "$pid" -a install -d -o joelclaw -g joelclaw /var/lib/joelclaw \
        /var/lib/joelclaw/.config /var/lib/joelclaw/.config/systemd \
        /var/lib/joelclaw/.config/systemd/user
    nsenter -t "$pid" -a loginctl enable-linger joelclaw
    local uid; uid="$(nsenter -t "$pid" -a id -u joelclaw)"
    for _ in $(seq 1 100); do
        [ "$(nsenter -t "$pid" -a systemctl is-active "user@$uid.service" 2>/dev/null || true)" = active ] && break
        sleep 0.1
    done
    [ "$(nsenter -t "$pid" -a systemctl is-active "user@$uid.service" 2>/dev/null || true)" = active ] ||
        die "the user manager of joelclaw did not start"
    print_env
}

stop() {
    [ -f "$state/nspawn.pid" ] || return 0
    local pid; pid="$(cat "$state/nspawn.pid")"
    stop_pid "$pid" systemd-nspawn 100
    remove_state "$state"
    rmdir "$JOELCLAW_TEST_STATE" 2>/dev/null || true
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) print_env ;;
    status) [ -f "$state/nspawn.pid" ] && pid_is "$(cat "$state/nspawn.pid")" systemd-nspawn ;;
    *) die "usage: $0 start|stop|env|status" ;;
esac
