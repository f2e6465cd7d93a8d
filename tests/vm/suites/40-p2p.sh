#!/bin/bash
# Device to device (issue 12): the edu device, driven by tests/kmod/bk_edu.ko,
# imports a window of gpu0 leased from barkeepd and DMAs into and out of it;
# the bytes are checked in the host file behind gpu0's BAR. A reset of gpu0
# through barkeepd as the importer sees it; the daemon's exit revokes for
# good. Then bench/p2p_bandwidth: the importer's DMA into a leased window
# against a window exported directly (gpu1, which the daemon is not given).
# vm-options: --edu 1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/vm/lib.sh
. "$here/../lib.sh"

read -r gpu0 gpu1 _ <<< "$BARKEEP_GPUS"
kmod=${BARKEEP_KMOD_DIR:-$BARKEEP_BUILD/kmod}
conf=/run/barkeep-p2p.conf
sock=/run/barkeep/barkeep.sock
log=/run/barkeepd-p2p.log

# The harness loads bk_edu in every guest; load it here when it did not.
if [ ! -e /sys/module/bk_edu ]; then
	check "load bk_edu.ko" insmod "$kmod/bk_edu.ko"
fi
# devtmpfs creates the node asynchronously.
for _ in $(seq 20); do [ -e /dev/bk_edu0 ] && break; sleep 0.1; done
check "the edu device is bound to bk_edu" test -e /dev/bk_edu0
edu_dev=$(readlink -f /sys/class/misc/bk_edu0/device 2>/dev/null)
echo "    bk_edu0 is ${edu_dev##*/}; gpu0 $gpu0, gpu1 $gpu1"

# The daemon gets gpu0 only: gpu1 stays free for the benchmark's direct export.
cat > "$conf" <<CONF
[daemon]
socket = $sock
socket-mode = 0600
log-level = debug

[limits]
pause-grace-ms = 5000

[device gpu0]
pci = $gpu0
label = emulated dGPU A
allow-users = root
CONF

start_daemon() {
	"$BARKEEP_BUILD/barkeepd" --config "$conf" 2>> "$log" &
	pid=$!
	for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
	check "daemon listens" test -S "$sock"
}

# Suite 41-p2p-patched runs this one with kernel-patches/ loaded.
if [ -n "${P2P_EXPECT_REVOKE:-}" ]; then
	check "patched vfio-pci-core loaded" grep -qw vfio_pci_core_feature_dma_buf_revoke /proc/kallsyms
fi

start_daemon
if [ -z "${P2P_EXPECT_REVOKE:-}" ]; then
	echo "--- bench/p2p_bandwidth"
	if "$BARKEEP_BUILD/bench/p2p_bandwidth" "$sock" "$gpu1"; then
		ok "p2p_bandwidth ran"
	else
		fail "p2p_bandwidth ran" "exit status $?"
	fi
fi

# p2p_test ends by stopping the daemon (SIGTERM) and watching the revocation.
run_prog "$BARKEEP_BUILD/tests/vm/p2p_test" "$sock" "$pid" "$BARKEEP_VRAM_DIR/gpu0"
wait "$pid"
check "daemon exited cleanly on SIGTERM" test $? -eq 0
check "daemon logged no errors" sh -c "! grep -E 'error:|ERROR|AddressSanitizer|runtime error' '$log'"
check "the reset used the memory-disable fallback" grep -q "gpu0: reset by memory-disable fallback" "$log"
check "bk_edu has no users" test "$(cat /sys/module/bk_edu/refcnt 2>/dev/null)" = 0
check "bk_edu unloads" rmmod bk_edu
echo "--- daemon log (device lines)"; grep -E "device gpu0:|gpu0:" "$log" | tail -n 8
suite_end
