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

# The units of systemd/ as shipped, as 70-systemd installs them.
systemd-sysusers "$BARKEEP_TOP/systemd/barkeep.sysusers"
systemd-tmpfiles --create "$BARKEEP_TOP/systemd/barkeep.tmpfiles"
g=$(basename "$(readlink "/sys/bus/pci/devices/$gpu0/iommu_group")")
chgrp barkeep "/dev/vfio/$g" && chmod 0660 "/dev/vfio/$g"
chmod 0666 /dev/vfio/vfio
cat > /etc/barkeep/barkeep.conf <<CONF
[daemon]
log-level = debug
[device gpu0]
pci = $gpu0
allow-users = root
CONF
# Installed as a package would be: the service's PrivateTmp=/ProtectHome=
# hide a build tree under /tmp or /home (CI clones anywhere).
install -m 0755 "$BARKEEP_BUILD/barkeepd" /usr/local/bin/barkeepd
sed "s|^ExecStart=/usr/bin/barkeepd|ExecStart=/usr/local/bin/barkeepd --no-bus|" \
	"$BARKEEP_TOP/systemd/barkeepd.service" > /etc/systemd/system/barkeepd.service
cp "$BARKEEP_TOP/systemd/barkeepd.socket" /etc/systemd/system/
systemctl daemon-reload
check "barkeepd starts" systemctl start barkeepd.socket barkeepd.service
pid=$(systemctl show -P MainPID barkeepd.service)

run_prog "$BARKEEP_BUILD/tests/vm/p2p_test" "$sock" 0 "$BARKEEP_VRAM_DIR/gpu0" restart

check "a new process serves after the restart" \
	sh -c "[ \"\$(systemctl show -P MainPID barkeepd.service)\" != '$pid' ]"
check "systemctl stop" systemctl stop barkeepd.service barkeepd.socket
check "daemon logged no errors" sh -c "! journalctl -q -o cat -u barkeepd.service | grep -E 'error:|AddressSanitizer|runtime error'"
echo "--- daemon log (tail)"; journalctl -q -o cat -u barkeepd.service | tail -n 12
suite_end
