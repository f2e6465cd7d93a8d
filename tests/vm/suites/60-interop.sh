#!/bin/bash
# Client interop: a system-memory device (sealed memfd, udmabuf dma-bufs)
# beside a VFIO GPU; LIST_DEVICES tells them apart; sysmem leases are real
# udmabuf dma-bufs, mmap()able, importable into vgem (PRIME and gbm) and
# reused by the same rule as VFIO windows; VFIO leases are refused by vgem
# with the peer-to-peer sentence; image metadata is checked at ALLOC.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"

read -r gpu0 _ <<< "$BARKEEP_GPUS"
conf=/run/barkeep-interop.conf
sock=/run/barkeep/barkeep.sock
log=/run/barkeepd-interop.log
write_conf "$conf" <<CONF
[device gpu0]
pci = $gpu0
label = emulated dGPU
allow-users = root, 1000

[device mem0]
backend = sysmem
size = 128M
label = system memory
allow-users = root, 1000
CONF

check "config validates" "$BARKEEP_BUILD/barkeepd" --check-config "$conf"
start_barkeepd "$log" --config "$conf"
daemon_fd_baseline
check "udmabuf limits one buffer to 64 MiB" grep -qx 64 /sys/module/udmabuf/parameters/size_limit_mb

# In a sanitizer build (BARKEEP_BUILD=build-san), Mesa's own leaks are not ours.
LSAN_OPTIONS=suppressions=$here/../lsan-mesa.supp \
	run_prog "$BARKEEP_BUILD/tests/vm/interop_test" "$sock" "$pid"

echo "--- barkeepctl devices"
"$BARKEEP_BUILD/barkeepctl" --socket "$sock" devices
check "barkeepctl shows mem0 as sysmem, mmap-able, without a PCI address" python3 -c '
import json, subprocess, sys
out = json.loads(subprocess.check_output(sys.argv[1:]))
devs = out["devices"] if isinstance(out, dict) else out
mem = [d for d in devs if d["label"] == "system memory"][0]
print(mem)
sys.exit(0 if mem["backend"] == "sysmem" and not mem["pci_address"] and "mmap" in mem["features"] else 1)
' "$BARKEEP_BUILD/barkeepctl" --socket "$sock" --json devices

daemon_fd_check
stop_barkeepd
check "daemon logged the sysmem device" grep -q "device mem0: 128 MiB of system memory, lending through udmabuf" "$log"
check_log_clean "$log"
echo "--- daemon log (tail)"; tail -n 8 "$log"
suite_end
