#!/bin/bash
# Suite 00: the kernel test bed itself (issue 2, items 6 and 7): VFIO dma-buf
# export of a BAR2 window, its errors and importers, and revocation made
# visible by the bk_observer test module (tests/kmod).
# shellcheck source=tests/vm/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

prog=$BARKEEP_BUILD/tests/vm/kernel_bed

load_observer
run_built "$prog" "make build/tests/vm/kernel_bed"

# The observer must have left no attachment behind and the device must be
# intact: unloading works only when no file of it is open.
check "bk_observer has no users" test "$(cat /sys/module/bk_observer/refcnt 2>/dev/null)" = 0

suite_end
