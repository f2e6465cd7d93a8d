#!/bin/bash
# vm-options: --systemd --edu 1
# Device to device across a daemon restart (issue 12): barkeepd under systemd
# keeps its VFIO fds in the fd store, so `systemctl restart barkeepd` revokes
# nothing: the edu importer's mapping of a lease stays valid (no
# invalidation, no re-map) and its DMA still lands in the window.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/vm/lib.sh
. "$here/../lib.sh"

read -r gpu0 _ <<< "$BARKEEP_GPUS"
sock=/run/barkeep/barkeep.sock

check "the edu device is bound to bk_edu" test -e /dev/bk_edu0

install_units --no-bus "$gpu0"
check "barkeepd starts" systemctl start barkeepd.socket barkeepd.service
pid=$(systemctl show -P MainPID barkeepd.service)

run_prog "$BARKEEP_BUILD/tests/vm/p2p_test" "$sock" 0 "$BARKEEP_VRAM_DIR/gpu0" restart

check "a new process serves after the restart" \
	sh -c "[ \"\$(systemctl show -P MainPID barkeepd.service)\" != '$pid' ]"
check "systemctl stop" systemctl stop barkeepd.service barkeepd.socket
check "daemon logged no errors" sh -c "! journalctl -q -o cat -u barkeepd.service | grep -E 'error:|AddressSanitizer|runtime error'"
echo "--- daemon log (tail)"; journalctl -q -o cat -u barkeepd.service | tail -n 12
suite_end
