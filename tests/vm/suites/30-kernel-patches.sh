#!/bin/bash
# Suite 30: the kernel-patches/ series (issue 7) with the patched
# vfio-pci-core.ko loaded in place of the stock one: mmap() of VFIO dma-bufs,
# per-buffer revoke and memory attribute (tests/vm/progs/vfio_patched_test.c),
# and barkeepd using them (tests/vm/progs/broker_patched_test.c).
# Build the module first: make kernel-patches (make check-vm does).
# vm-options paths are relative to the tree top (tests/vm/run-suites).
# vm-options: --gpus 64M,64M --vfio-pci-core build/kernel-patches/vfio-pci-core.ko
# shellcheck source=tests/vm/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

prog=$BARKEEP_BUILD/tests/vm/vfio_patched_test

# The harness must have loaded the patched module, not the stock one.
ko=${BARKEEP_VFIO_PCI_CORE:-}
if [ -z "$ko" ]; then
	fail "patched vfio-pci-core loaded" "no --vfio-pci-core given to tests/vm/run"
elif grep -qw vfio_pci_core_feature_dma_buf_revoke /proc/kallsyms; then
	ok "patched vfio-pci-core loaded"
else
	fail "patched vfio-pci-core loaded" "vfio_pci_core has no vfio_pci_core_feature_dma_buf_revoke: not the series' module"
fi

load_observer
run_built "$prog" make

check "bk_observer has no users" test "$(cat /sys/module/bk_observer/refcnt 2>/dev/null)" = 0

# barkeepd on the patched kernel: features found, leases mapped, release and
# disconnect revoke the buffer so the window is reused at once.
read -r gpu0 _ <<< "$BARKEEP_GPUS"
conf=/run/barkeep-patched.conf
sock=/run/barkeep/barkeep.sock
cat > "$conf" <<CONF
[daemon]
socket = $sock
log-level = debug

[device gpu0]
pci = $gpu0
allow-users = root
CONF
start_barkeepd /run/barkeepd.log --config "$conf"
daemon_fd_baseline
run_prog "$BARKEEP_BUILD/tests/vm/broker_patched_test" "$sock" "$BARKEEP_VRAM_DIR/gpu0"
daemon_fd_check
stop_barkeepd
check_log_clean /run/barkeepd.log

suite_end
