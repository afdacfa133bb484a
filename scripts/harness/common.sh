# Shared by the harness scripts: where state lives, and small helpers. Sourced, not run.
JOELCLAW_TEST_STATE="${JOELCLAW_TEST_STATE:-/run/joelclaw-test}"

die() { echo "harness: $*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "must run as root (systemd-nspawn and dockerd need it)"; }

# Installs the Debian packages the harness needs, running `apt-get update` once, only when one
# is missing.
ensure_packages() {
    local missing=()
    command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
    command -v dbus-daemon >/dev/null || missing+=(dbus)
    command -v dockerd >/dev/null || missing+=(docker.io)
    [ -x /bin/busybox ] && file_is_static /bin/busybox || missing+=(busybox-static)
    command -v nsenter >/dev/null || missing+=(util-linux)
    # The uptime test checks the `ps` path (macOS's) against Linux's own ps.
    command -v ps >/dev/null || missing+=(procps)
    # The remote-engine-over-SSH test runs a private sshd (and the ssh client with it).
    [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
    command -v redis-server >/dev/null || missing+=(redis-server)
    # The non-root agent's test: its polkit rule is read by polkitd inside the container.
    [ -x /usr/lib/polkit-1/polkitd ] || missing+=(polkitd)
    # The Compose acceptance tests recreate services with Debian's docker-compose.
    command -v docker-compose >/dev/null || missing+=(docker-compose)
    if [ ${#missing[@]} -gt 0 ]; then
        need_root
        echo "harness: installing ${missing[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    fi
}

# busybox-static and busybox both ship /bin/busybox; only the static one runs in an empty image.
file_is_static() { ! LC_ALL=C ldd "$1" >/dev/null 2>&1; }

# Whether pid $1 is alive and its command name is $2 (so a stale pid file never kills a stranger).
pid_is() { [ -n "$1" ] && [ -r "/proc/$1/comm" ] && [ "$(cat "/proc/$1/comm")" = "$2" ]; }

# Removes a harness state folder, unmounting first whatever is still mounted beneath it (deepest
# first). A daemon killed before its own cleanup leaves mounts behind (dockerd bind-mounts its
# --data-root onto itself), and `rm -rf` cannot remove a mount point: the next start must not fail
# on what the last one left.
remove_state() {
    local dir="$1"
    awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts |
        sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$dir"
}

# Stops pid $1 if it is still the program $2: SIGTERM, up to $3 tenths of a second to exit,
# then SIGKILL.
stop_pid() {
    local pid="$1" comm="$2" tenths="$3"
    pid_is "$pid" "$comm" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 "$tenths"); do pid_is "$pid" "$comm" || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}
