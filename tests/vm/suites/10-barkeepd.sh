#!/bin/bash
# barkeepd v1 on the real kernel: devices, allocation, fd passing and the
# window reuse rule, policy and quotas, malformed clients.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"

read -r gpu0 gpu1 _ <<< "$BARKEEP_GPUS"
conf=/run/barkeep-test.conf
sock=/run/barkeep/barkeep.sock
write_conf "$conf" <<CONF
[limits]
max-leases-per-uid = 64

$(two_gpus_conf)
CONF

check "config validates" "$BARKEEP_BUILD/barkeepd" --check-config "$conf"
start_barkeepd /run/barkeepd.log --config "$conf"
daemon_fd_baseline

run_prog "$BARKEEP_BUILD/tests/vm/broker_test" "$sock" "$pid" "$BARKEEP_VRAM_DIR/gpu0"

daemon_fd_check
stop_barkeepd
check "socket is removed on exit" test ! -e "$sock"
check_log_clean /run/barkeepd.log
echo "--- daemon log (tail)"; tail -n 15 /run/barkeepd.log
suite_end
