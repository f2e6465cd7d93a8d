#!/bin/bash
# vm-options: --systemd --timeout 900
# The chaos soak (tests/soak/README.md): 200 connections doing random work
# against barkeepd run by systemd with an fd store, while devices are reset
# at random; then the same with restarts (systemctl restart and kill -9)
# and an unbind of gpu1 from vfio-pci (bound again, taken up by the next
# start). The daemon's fds and memory must come back to their baseline, its
# devices' free bytes to full, and no sanitizer may speak.
# Usage: 85-soak.sh [SECONDS [--restarts]] (default 75, no restart phase;
# `make soak DURATION=...` runs all phases).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"

seconds=${1:-75}
restarts=0
[ "${2:-}" = --restarts ] && restarts=1
read -r gpu0 gpu1 _ <<< "$BARKEEP_GPUS"
unit=barkeepd-soak
sock=/run/barkeep/barkeep.sock
conf=/run/barkeep-soak.conf
soak="$BARKEEP_BUILD/tests/soak/soak"
mkdir -p /run/barkeep
# Info, not debug: 200 clients at debug level drown the journal.
cat > "$conf" <<CONF
[daemon]
socket = $sock
socket-mode = 0666
log-level = info

[limits]
max-clients = 1024
max-clients-per-uid = 1024
max-leases-per-uid = 8192
max-queued-events = 256
pause-grace-ms = 1000
reclaim-timeout-s = 30

$(root_gpus_conf)

[device sys0]
backend = sysmem
size = 64M
allow-users = root
CONF
check "config validates" "$BARKEEP_BUILD/barkeepd" --check-config "$conf"

# A transient unit with an fd store, as barkeepd.service has one.
t0=$(date +%s)
systemd-run -q --unit="$unit" -p Type=notify -p FileDescriptorStoreMax=4096 \
	-p Restart=on-failure -p RestartSec=200ms -p LimitNOFILE=65536 \
	"$BARKEEP_BUILD/barkeepd" --config "$conf"
wait_for_socket "$sock"
check "barkeepd runs under systemd" systemctl is-active -q "$unit"

main_pid() { systemctl show -P MainPID "$unit"; }
rss_kib() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
# settled_fds PID WANT: the daemon frees closed connections asynchronously.
settled_fds() {
	local n
	for _ in $(seq 50); do n=$(fds "$1"); [ "$n" -le "$2" ] && break; sleep 0.2; done
	echo "$n"
}
asan=false
ldd "$BARKEEP_BUILD/barkeepd" | grep -q libasan && asan=true
ulimit -n 65536

# ---- warm-up, then resets only: one process throughout --------------------
pid=$(main_pid)
fd_base=$(fds "$pid")
run_prog "$soak" "$sock" --seconds 10 --reset-ms 0
rss_warm=$(rss_kib "$pid")
fd_warm=$(settled_fds "$pid" "$fd_base")
check "daemon fds back to the baseline after the warm-up ($fd_base, $fd_warm)" test "$fd_warm" -eq "$fd_base"

phase=$((seconds / 2))
echo "--- resets for $phase s"
run_prog "$soak" "$sock" --seconds "$phase" --reset-ms 1500
check "the same daemon process throughout" test "$(main_pid)" = "$pid"
fd_end=$(settled_fds "$pid" "$fd_base")
rss_end=$(rss_kib "$pid")
echo "  daemon fds: $fd_base at start, $fd_end at end; RSS: $rss_warm KiB warm, $rss_end KiB at end"
check "daemon fds back to the baseline" test "$fd_end" -eq "$fd_base"
# Slack: 2 MiB for allocator caches (glibc keeps freed arenas). Under ASan
# freed memory sits in quarantine: LeakSanitizer at exit speaks instead.
if $asan; then
	echo "  (ASan build: RSS not compared; LeakSanitizer checks at exit)"
else
	check "daemon RSS back to within 2 MiB of warm ($rss_warm KiB, $rss_end KiB)" \
		test "$rss_end" -le $((rss_warm + 2048))
fi

# ---- restarts and an unplug ------------------------------------------------
# Only with --restarts (make soak): a long phase of its own; the one
# unexplained miss of its free-bytes check is in tests/soak/README.md.
if [ "$restarts" = 1 ]; then
	# Half `systemctl restart` (SIGTERM: LeakSanitizer runs), half kill -9
	# (Restart=on-failure); both keep the fd store.
	cat > /run/soak-restart <<-SH
	#!/bin/bash
	if [ \$((RANDOM % 2)) = 0 ]; then systemctl restart $unit; else systemctl kill -s KILL $unit; fi
	SH
	chmod +x /run/soak-restart
	phase=$((seconds - seconds / 2))
	echo "--- restarts, resets and an unplug of $gpu1 for $phase s"
	run_prog "$soak" "$sock" --seconds "$phase" --reset-ms 2000 \
		--restart-cmd /run/soak-restart --restart-ms $((phase * 1000 / 4)) --unplug "$gpu1"
	pid=$(main_pid)
	fd_end=$(settled_fds "$pid" "$fd_base")
	echo "  daemon fds: $fd_base in the first process, $fd_end in the last; RSS $(rss_kib "$pid") KiB"
	check "daemon fds back to the baseline after restarts" test "$fd_end" -eq "$fd_base"
	echo "--- dma-bufs open anywhere:"
	for f in /proc/[0-9]*/fd/*; do
		case $(readlink "$f" 2>/dev/null) in /dmabuf:*|*dmabuf*) echo "$f $(grep -E '^(size|count|exp_name|name)' "${f/\/fd\//\/fdinfo\/}" | tr '\n' ' ')";; esac
	done | head -n 40
	check "gpu1 is bound to vfio-pci again" test -e "/sys/bus/pci/drivers/vfio-pci/$gpu1"
else
	echo "--- restarts and the unplug phase: make soak (--restarts)"
fi

# ---- the end ---------------------------------------------------------------
check "systemctl stop" systemctl stop "$unit"
journalctl -q -o cat -u "$unit" --since "@$t0" > /run/soak-journal
cp /run/soak-journal /out/ 2>/dev/null || : # kept with tests/vm/run --keep or --log-dir
log=$(cat /run/soak-journal)
check "no sanitizer report" sh -c "! grep -E 'AddressSanitizer|LeakSanitizer|runtime error' /run/soak-journal"
echo "--- daemon errors and warnings (counts)"
echo "$log" | grep -E 'error|warning|Failed' | sed 's/[0-9][0-9]*/N/g' | sort | uniq -c | sort -rn | head -n 15
echo "--- daemon log (restarts, windows kept out of use)"
echo "$log" | grep -E 'Restored from the fd store|closed and gone|stays out of use|reclaim timeout|Main process|Stopping|signal|Started' | grep -v 'was shared; it stays' | tail -n 40
suite_end
