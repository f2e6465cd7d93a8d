#!/bin/bash
# Suite 00: the kernel test bed itself (issue 2, items 6 and 7): VFIO dma-buf
# export of a BAR2 window, its errors and importers, and revocation made
# visible by the bk_observer test module (tests/kmod).
# shellcheck source=tests/vm/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

prog=$BARKEEP_BUILD/tests/vm/kernel_bed

# The harness loads bk_observer in every guest; load it here when it did not.
if [ ! -e /dev/bk_observer ]; then
	ko=${BARKEEP_KMOD_DIR:-$BARKEEP_BUILD/kmod}/bk_observer.ko
	check "load bk_observer.ko" insmod "$ko"
	# devtmpfs creates the node asynchronously.
	for _ in 1 2 3 4 5 6 7 8 9 10; do [ -e /dev/bk_observer ] && break; sleep 0.1; done
fi

if [ -x "$prog" ]; then
	run_prog "$prog"
else
	fail kernel_bed "$prog is not built (make build/tests/vm/kernel_bed)"
fi

# The observer must have left no attachment behind and the device must be
# intact: unloading works only when no file of it is open.
check "bk_observer has no users" test "$(cat /sys/module/bk_observer/refcnt 2>/dev/null)" = 0

suite_end
