#!/bin/bash
# Device reset: pause, acknowledgements and deadline, revocation on the real
# kernel (memory-disable fallback: ivshmem has no reset method), resume with
# a new generation; only holders of the device hear of it.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"

read -r gpu0 gpu1 _ <<< "$BARKEEP_GPUS"
conf=/run/barkeep-reset.conf
sock=/run/barkeep/barkeep.sock
log=/run/barkeepd-reset.log
cat > "$conf" <<CONF
[daemon]
socket = $sock
socket-mode = 0666
log-level = debug

[limits]
max-clients = 512
max-clients-per-uid = 256
max-leases-per-uid = 512
pause-grace-ms = 2000

[device gpu0]
pci = $gpu0
allow-users = root, 1000

[device gpu1]
pci = $gpu1
allow-users = root, 1000
CONF

"$BARKEEP_BUILD/barkeepd" --config "$conf" 2> "$log" &
pid=$!
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
check "daemon listens" test -S "$sock"

run_prog "$BARKEEP_BUILD/tests/vm/reset_test" "$sock"

check "the log names the reset method" grep -q "gpu0: reset by memory-disable fallback" "$log"
check "the log names the clients that let the deadline pass" \
	grep -q "gpu0: 1 client(s) did not acknowledge the pause within 3000 ms" "$log"
check "gpu1 was never paused" sh -c "! grep -q 'device gpu1: paused' '$log'"

kill -TERM "$pid"
wait "$pid"
check "daemon exits cleanly on SIGTERM" test $? -eq 0
check "daemon logged no errors" sh -c "! grep -E 'error:|ERROR|AddressSanitizer|runtime error' '$log'"
echo "--- daemon log (device lines)"; grep -E "device gpu[01]:" "$log" | tail -n 12
suite_end
