#!/bin/bash
# Device reset: pause, acknowledgements and deadline, revocation on the real
# kernel (memory-disable fallback: ivshmem has no reset method), resume with
# a new generation; only holders of the device hear of it. Device errors
# (injected: ivshmem is not PCIe, no AER) and the host taking gpu1 back
# (unbind from vfio-pci: GONE, and the unbind completes).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"

read -r gpu0 gpu1 _ <<< "$BARKEEP_GPUS"
conf=/run/barkeep-reset.conf
sock=/run/barkeep/barkeep.sock
log=/run/barkeepd-reset.log
write_conf "$conf" <<CONF
[limits]
max-clients = 512
max-clients-per-uid = 256
max-leases-per-uid = 512
pause-grace-ms = 2000
max-queued-events = 32

[device gpu0]
pci = $gpu0
allow-users = root, 1000

[device gpu1]
pci = $gpu1
allow-users = root, 1000
CONF

start_barkeepd "$log" --config "$conf"
daemon_fd_baseline

errfd=$(sed -n 's/.*device gpu0: error notifications on fd \([0-9]*\).*/\1/p' "$log")
check "the daemon listens for gpu0's errors" test -n "$errfd"
check "the daemon listens for release requests" sh -c "! grep -q 'cannot ask for it back' '$log'"

run_prog "$BARKEEP_BUILD/tests/vm/reset_test" "$sock" "$pid" "${errfd:--1}" "$gpu1"

check "the log names the reset method" grep -q "gpu0: reset by memory-disable fallback" "$log"
check "the log names the clients that let the deadline pass" \
	grep -q "gpu0: 1 client(s) did not acknowledge the pause within 3000 ms" "$log"
check "gpu1 was paused for the slow reader's resets and the unbind" \
	sh -c "[ \$(grep -c 'device gpu1: paused for the host' '$log') = 1 ]"
check "the log names the client that did not read" \
	grep -q "client slow-reader (uid 0) does not read its events (32 queued, limit is 32 (max-queued-events)); disconnecting it" "$log"
check "the log says gpu1 is gone" grep -q "device gpu1: closed and gone" "$log"
check "gpu1 is unbound" test ! -e "/sys/bus/pci/devices/$gpu1/driver"

# gpu1 is gone: its VFIO container, group and device fds and its error and
# request eventfds were closed with it.
daemon_fd_check -5
stop_barkeepd
check_log_clean "$log"
echo "--- daemon log (device lines)"; grep -E "device gpu0:|gpu1: (paused for the host|closed)|does not read" "$log" | tail -n 14
suite_end
