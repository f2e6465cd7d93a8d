#!/bin/bash
# Every limit a client can run into (doc/limits.md), hit on purpose: the
# connection, lease and byte limits of [limits] and [device], the protocol's
# message size and fds per message, the handshake and idle timeouts, and
# clients that never read their replies or events. Each refusal names its
# limit; the daemon's fds come back to their baseline.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"

read -r gpu0 gpu1 _ <<< "$BARKEEP_GPUS"
conf=/run/barkeep-limits.conf
sock=/run/barkeep/barkeep.sock
log=/run/barkeepd-limits.log
limits_conf() {
	write_conf "$conf" <<CONF
[limits]
max-clients = 6
max-clients-per-uid = 4
max-leases = 5
max-leases-per-client = 3
max-leases-per-uid = 4
max-bytes-per-uid = 8M
max-queued-events = 4
handshake-timeout-ms = 500
idle-timeout-s = $1

[device gpu0]
pci = $gpu0
allow-users = root, 1000
max-bytes-per-uid = 6M

[device gpu1]
pci = $gpu1
allow-users = root, 1000
CONF
}

limits_conf 0
check "config validates" "$BARKEEP_BUILD/barkeepd" --check-config "$conf"
check "--check-config shows max-leases" sh -c \
	"'$BARKEEP_BUILD/barkeepd' --check-config '$conf' | grep -q 'leases: 5 in all, 3 per client, 4 per uid'"
start_barkeepd "$log" --config "$conf"
daemon_fd_baseline

run_prog "$BARKEEP_BUILD/tests/vm/limits_test" "$sock"
check "the log names max-queued-events for unread replies" \
	grep -q 'does not read its replies (.*(max-queued-events)' "$log"
check "the log names max-queued-events for unread events" \
	grep -q 'does not read its events (.*(max-queued-events)' "$log"
daemon_fd_check
stop_barkeepd
check_log_clean "$log"

# The idle timeout with a daemon of its own: above, connections that wait
# for another process would go idle in a slow run.
idle=2
limits_conf "$idle"
start_barkeepd "$log.idle" --config "$conf"
daemon_fd_baseline
run_prog "$BARKEEP_BUILD/tests/vm/limits_test" "$sock" "$idle"
check "the log names the idle timeout" grep -q '(idle-timeout-s); disconnecting it' "$log.idle"
daemon_fd_check
stop_barkeepd
check_log_clean "$log.idle"
suite_end
