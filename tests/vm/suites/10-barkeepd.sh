#!/bin/bash
# barkeepd v1 on the real kernel: devices, allocation, fd passing and the
# window reuse rule, policy and quotas, malformed clients.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"

two_gpus_setup
start_barkeepd /run/barkeepd.log --config "$conf"
daemon_fd_baseline

run_prog "$BARKEEP_BUILD/tests/vm/broker_test" "$sock" "$pid" "$BARKEEP_VRAM_DIR/gpu0"

daemon_fd_check
stop_barkeepd
check "socket is removed on exit" test ! -e "$sock"
check_log_clean /run/barkeepd.log
echo "--- daemon log (tail)"; tail -n 15 /run/barkeepd.log
suite_end
