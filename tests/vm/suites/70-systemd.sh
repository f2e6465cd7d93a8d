#!/bin/bash
# vm-options: --systemd
# barkeepd under systemd as PID 1: the units of systemd/ installed as shipped
# (ExecStart= pointed at the build), user barkeep from barkeep.sysusers, the
# VFIO group nodes given to group barkeep as 70-barkeep-vfio.rules would (no
# udev in the guest). Socket activation, READY/STATUS, reload, watchdog.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"

read -r gpu0 gpu1 _ <<< "$BARKEEP_GPUS"
sock=/run/barkeep/barkeep.sock
ctl() { "$BARKEEP_BUILD/barkeepctl" "$@"; }
unit_prop() { systemctl show -P "$2" "$1"; }
log_since() { journalctl -q -o cat -u barkeepd.service --since "@$1"; }

# ---- install ----------------------------------------------------------------
systemd-sysusers "$BARKEEP_TOP/systemd/barkeep.sysusers"
systemd-tmpfiles --create "$BARKEEP_TOP/systemd/barkeep.tmpfiles"
for a in $gpu0 $gpu1; do
	g=$(basename "$(readlink "/sys/bus/pci/devices/$a/iommu_group")")
	chgrp barkeep "/dev/vfio/$g" && chmod 0660 "/dev/vfio/$g"
done
chmod 0666 /dev/vfio/vfio # systemd's static node from modules.devname is 0600
cat > /etc/barkeep/barkeep.conf <<CONF
[daemon]
log-level = debug
$(root_gpus_conf)
CONF
# Installed as a package would be: the service's PrivateTmp=/ProtectHome=
# hide a build tree under /tmp or /home (CI clones anywhere).
install -m 0755 "$BARKEEP_BUILD/barkeepd" /usr/local/bin/barkeepd
sed "s|^ExecStart=/usr/bin/barkeepd|ExecStart=/usr/local/bin/barkeepd|" \
	"$BARKEEP_TOP/systemd/barkeepd.service" > /etc/systemd/system/barkeepd.service
cp "$BARKEEP_TOP/systemd/barkeepd.socket" /etc/systemd/system/
systemctl daemon-reload
check "barkeep user exists" id barkeep

# ---- socket activation --------------------------------------------------------
check "barkeepd.socket starts" systemctl start barkeepd.socket
check "socket is root:barkeep 0660" test "$(stat -c %U:%G:%a "$sock")" = root:barkeep:660
check "service is not running before the first client" sh -c '! systemctl is-active -q barkeepd.service'
check "first connect starts the service" ctl devices
check "service is active (READY=1 seen)" systemctl is-active -q barkeepd.service
pid=$(unit_prop barkeepd.service MainPID)
check "runs as user barkeep" test "$(ps -o user= -p "$pid")" = barkeep
check "without capabilities" sh -c "grep -q '^CapEff:[[:space:]]*0*$' /proc/$pid/status"
check "STATUS= in systemctl status" sh -c "systemctl status barkeepd.service | grep -q 'Status: \"Serving 2 device(s)'"

# Not through ctl(): $! must be barkeepctl itself, not a subshell, for the kill below.
"$BARKEEP_BUILD/barkeepctl" --name holder alloc 1M --hold=60 > /run/holder.out 2>&1 &
holder=$!
for _ in $(seq 40); do grep -q lease /run/holder.out 2>/dev/null && break; sleep 0.25; done
sleep 1.5
check "STATUS= counts the client and its lease" \
	sh -c "systemctl show -P StatusText barkeepd.service | grep -q '1 client(s), 1 lease(s)'"

# ---- reload -----------------------------------------------------------------
t=$(date +%s)
sed -i 's/^log-level = debug/log-level = info\n[limits]\nmax-leases-per-uid = 3/' /etc/barkeep/barkeep.conf
check "systemctl reload" systemctl reload barkeepd.service
check "reload is logged" sh -c "journalctl -q -o cat -u barkeepd.service --since @$t | grep -q 'Reloaded log-level and \[limits\]'"
check "same process after reload" test "$(unit_prop barkeepd.service MainPID)" = "$pid"
check "lease holder still connected" kill -0 "$holder"
sleep 1.5
check "STATUS= unchanged by reload" \
	sh -c "systemctl show -P StatusText barkeepd.service | grep -q '1 client(s), 1 lease(s)'"
echo 'max-leases-per-uid = x' >> /etc/barkeep/barkeep.conf
t=$(date +%s)
systemctl reload barkeepd.service
check "a broken file is refused on reload" sh -c "journalctl -q -o cat -u barkeepd.service --since @$t | grep -q 'Failed to reload'"
check "and the daemon goes on" systemctl is-active -q barkeepd.service
sed -i '/= x$/d' /etc/barkeep/barkeep.conf
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null

# ---- watchdog -------------------------------------------------------------------
mkdir -p /etc/systemd/system/barkeepd.service.d
printf '[Service]\nWatchdogSec=2s\n' > /etc/systemd/system/barkeepd.service.d/watchdog.conf
systemctl daemon-reload
systemctl restart barkeepd.service
pid=$(unit_prop barkeepd.service MainPID)
sleep 6
check "WatchdogSec=2s: pinged, not killed in 6 s" test "$(unit_prop barkeepd.service MainPID)" = "$pid"
rm -r /etc/systemd/system/barkeepd.service.d
systemctl daemon-reload

# ---- what a client's buffer goes through when barkeepd goes -----------------
# tests/vm/progs/restart_test.c holds a lease with bk_observer attached to its
# buffer, so a revocation cannot go unseen, and checks the promise of each
# case (barkeepd(8), RESTARTS).
restart_case() { # kept|revoked|gone ACTION...: a lease is held while ACTION runs
	local mode=$1; shift
	rm -f /run/restart.ready
	"$BARKEEP_BUILD/tests/vm/restart_test" "$sock" /run/restart.ready "$mode" > /run/restart.out 2>&1 &
	local holder=$!
	for _ in $(seq 100); do [ -e /run/restart.ready ] && break; sleep 0.1; done
	echo "--- $mode: $*"
	"$@"
	wait "$holder"
	run_prog cat /run/restart.out
}
wait_active() {
	for _ in $(seq 50); do systemctl is-active -q barkeepd.service && return 0; sleep 0.2; done
	return 1
}
echo "fd store: $(unit_prop barkeepd.service NFileDescriptorStore) fd(s)"
check "the fd store holds the table and 3 fds per device" \
	test "$(unit_prop barkeepd.service NFileDescriptorStore)" = 7
t=$(date +%s)
restart_case kept systemctl restart barkeepd.service
check "the restart took the lease up as an orphan" sh -c \
	"journalctl -q -o cat -u barkeepd.service --since @$t | grep -q 'Restored from the fd store: 2 device(s); 1 lease(s) wait'"
t=$(date +%s)
restart_case kept sh -c 'kill -9 "$(systemctl show -P MainPID barkeepd.service)"'
check "Restart=on-failure brings barkeepd back after kill -9" wait_active
check "and it took the lease up from the store" sh -c \
	"journalctl -q -o cat -u barkeepd.service --since @$t | grep -q '1 lease(s) wait for their holders'"

# A table corrupted in place (through the daemon's own memfd) is refused as
# a whole: every stored fd is released and the daemon starts clean.
pid=$(unit_prop barkeepd.service MainPID)
table=$(find "/proc/$pid/fd" -lname '/memfd:barkeep-leases*' | head -n 1)
check "the live table is the daemon's memfd" test -n "$table"
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(24); f.write(b"\xff" * 8)' "$table"
t=$(date +%s)
systemctl restart barkeepd.service
check "a corrupt table is refused with a sentence" \
	sh -c "journalctl -q -o cat -u barkeepd.service --since @$t | grep -q 'Refusing the stored lease table: the checksum does not match'"
check "the stored fds are released" \
	sh -c "journalctl -q -o cat -u barkeepd.service --since @$t | grep -q 'Released 7 stored fd(s)'"
check "and the daemon starts clean with both devices" sh -c "$BARKEEP_BUILD/barkeepctl devices | grep -c gpu | grep -qx 2"
check "storing afresh" test "$(unit_prop barkeepd.service NFileDescriptorStore)" = 7

# Without a store the same restart revokes: the test above can fail.
mkdir -p /etc/systemd/system/barkeepd.service.d
printf '[Service]\nFileDescriptorStoreMax=0\n' > /etc/systemd/system/barkeepd.service.d/fdstore.conf
systemctl daemon-reload
systemctl restart barkeepd.service
restart_case revoked systemctl restart barkeepd.service
rm -r /etc/systemd/system/barkeepd.service.d
systemctl daemon-reload
systemctl restart barkeepd.service

# A stop for good: clients hear DEVICE_GONE (shutdown) before the buffers die.
restart_case gone systemctl stop barkeepd.service

# ---- D-Bus activation ---------------------------------------------------------
# The bus policy and activation file as `make install` puts them; a call to
# org.barkeep.Broker1 while barkeepd is stopped starts barkeepd.service.
cp "$BARKEEP_TOP/systemd/org.barkeep.Broker1.conf" /etc/dbus-1/system.d/
mkdir -p /usr/share/dbus-1/system-services
cp "$BARKEEP_TOP/systemd/org.barkeep.Broker1.service" /usr/share/dbus-1/system-services/
busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig
check "barkeepd is stopped before the call" sh -c '! systemctl is-active -q barkeepd.service'
check "a D-Bus call activates barkeepd.service" \
	busctl call org.barkeep.Broker1 /org/barkeep/Broker1 org.barkeep.Broker1 ListDevices
check "the service is active after the call" systemctl is-active -q barkeepd.service
check "and owns the name" sh -c "busctl status org.barkeep.Broker1 | grep -q \"^PID=$(unit_prop barkeepd.service MainPID)\$\""

# ---- stop ---------------------------------------------------------------------
check "systemctl stop" systemctl stop barkeepd.service barkeepd.socket
check "daemon logged no errors" sh -c "! journalctl -q -o cat -u barkeepd.service | grep -E 'AddressSanitizer|runtime error|Failed to (open|listen)'"
echo "--- daemon log (tail)"; journalctl -q -o cat -u barkeepd.service | tail -n 12
echo "--- what the daemon said of the fd store"
journalctl -q -o cat -u barkeepd.service | grep -E 'fd store|Restor|Refus|Releas|FileDescriptorStoreMax|Restarting|Stopping|reclaim' | tail -n 40
suite_end
