#!/usr/bin/env bash
# Copies seed inputs into fuzz/corpus/<target>/ from wherever the repository keeps its captured
# outputs (crates/*/tests/fixtures/<family>/, else ../shared/fixtures/<family>/ next to the
# checkout, or $JOELCLAW_FIXTURES/<family>/), the fakes' scripts, and examples/*.toml. Run before
# fuzzing (scripts/fuzz does); copies are named by content, so running it again adds nothing.
set -euo pipefail
fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$fuzz_dir")"
corpus="$fuzz_dir/corpus"

# The folders holding one family's captures, in order of preference; all that exist are used.
family_dirs() {
    local family="$1"
    local d
    for d in "$repo"/crates/*/tests/fixtures/"$family" \
             "${JOELCLAW_FIXTURES:-/nonexistent}/$family" \
             "$repo/../shared/fixtures/$family"; do
        [ -d "$d" ] && echo "$d"
    done
    return 0
}

# seed TARGET [PREFIX_BYTE] FILE...: copies each file, optionally after one leading byte.
seed() {
    local target="$1" prefix="$2"
    shift 2
    mkdir -p "$corpus/$target"
    local f name
    for f in "$@"; do
        [ -f "$f" ] || continue
        case "$f" in *.md) continue ;; esac
        if [ -n "$prefix" ]; then
            name="seed-$( { printf "$prefix"; cat "$f"; } | sha1sum | cut -c1-16)"
            { printf "$prefix"; cat "$f"; } >"$corpus/$target/$name"
        else
            name="seed-$(sha1sum <"$f" | cut -c1-16)"
            cp "$f" "$corpus/$target/$name"
        fi
    done
}

files_of() {
    local family="$1" d
    for d in $(family_dirs "$family"); do
        find "$d" -type f | sort
    done
}

mapfile -t launchd < <(files_of launchd; find "$repo/crates/adapters-macos/tests/fake" -type f -name 'launchctl*' 2>/dev/null)
mapfile -t colima < <(files_of colima; find "$repo/crates/adapters-macos/tests/fake" -type f -name 'colima*' 2>/dev/null)
mapfile -t systemd < <(files_of systemd)
mapfile -t plists < <(find "$repo/crates" -type f -name '*.plist' 2>/dev/null | sort)
mapfile -t units < <(find "$repo/crates" -type f -name '*.service' 2>/dev/null | sort)
mapfile -t inventories < <(find "$repo/examples" "$repo"/crates/*/tests "$repo"/crates/*/examples -type f -name '*.toml' 2>/dev/null | sort)

[ ${#launchd[@]} -gt 0 ] || echo "seed.sh: no launchd captures found" >&2
[ ${#colima[@]} -gt 0 ] || echo "seed.sh: no colima captures found" >&2
[ ${#systemd[@]} -gt 0 ] || echo "seed.sh: no systemd captures found" >&2

# Each parser gets its whole family: libFuzzer keeps what adds coverage.
for t in launchctl_print launchctl_print_disabled launchctl_list_table launchctl_list_dict; do
    seed "$t" "" "${launchd[@]}"
done
# launchctl_error reads its first byte as the exit code's pick (0 = none, 5 = 113, ...).
for pick in '\x00' '\x02' '\x03' '\x04' '\x05' '\x07'; do
    seed launchctl_error "$pick" "${launchd[@]}"
done
for t in colima_status_json colima_list colima_status_log colima_ssh_config colima_proc_uptime; do
    seed "$t" "" "${colima[@]}"
done
mkdir -p "$corpus/colima_proc_uptime"
printf '12345.67 23456.78\n' >"$corpus/colima_proc_uptime/seed-uptime"
for t in systemctl_show systemctl_list_units; do
    seed "$t" "" "${systemd[@]}"
done
seed inventory "" "${inventories[@]}"
seed launchd_plist "" "${plists[@]}"
seed systemd_unit "" "${units[@]}"
# The repository keeps no unit file; one in the shape the adapter writes starts the corpus.
cat >"$corpus/systemd_unit/seed-written-unit" <<'UNIT'
# Written by joelclaw: do not edit.
[Unit]
Description=com.example.api
StartLimitIntervalSec=60
StartLimitBurst=5

[Service]
Type=simple
ExecStart=/usr/local/bin/api --port 8080 "two words" 'single $$HOME' 100%%
Environment="GREETING=hello world" PATH=/usr/bin:/bin
WorkingDirectory=/var/lib/api
User=joelclaw
Group=joelclaw
Restart=on-failure
RestartSec=2s
StandardOutput=append:/var/log/api.out
StandardError=append:/var/log/api.err
NoNewPrivileges=yes
ProtectSystem=strict
PrivateTmp=yes
ReadWritePaths=/var/lib/api -/var/log

[Install]
WantedBy=multi-user.target
UNIT

for d in "$corpus"/*/; do
    printf '%-28s %5d inputs\n' "$(basename "$d")" "$(find "$d" -type f | wc -l)"
done
