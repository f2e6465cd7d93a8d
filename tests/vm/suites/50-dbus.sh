#!/bin/bash
# org.barkeep.Broker1 on a real dbus-daemon --system that uses the project's
# bus policy: clients nobody here wrote (busctl, gdbus) and a python3-dbus
# one get fds; refusals carry the interface's error names; a client's
# leases end when it leaves the bus; signals go to lease holders only; the
# socket and the bus share one quota per uid.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"

read -r gpu0 gpu1 _ <<< "$BARKEEP_GPUS"
conf=/run/barkeep-dbus.conf
sock=/run/barkeep/barkeep.sock
log=/run/barkeepd-dbus.log
client=(/usr/bin/python3 "$BARKEEP_TOP/tests/vm/dbus_client.py")
as_user=(setpriv --reuid 1000 --regid 1000 --clear-groups)
two_gpus_conf | write_conf "$conf"

# The bus: the distribution's system.conf plus the project's policy (and a
# test-only one for the benchmark's own server).
cp "$BARKEEP_TOP/systemd/org.barkeep.Broker1.conf" "$BARKEEP_TOP/tests/vm/dbus-bench.conf" /etc/dbus-1/system.d/
mkdir -p /run/dbus
check "dbus-daemon --system starts" dbus-daemon --system --fork --nopidfile
for _ in $(seq 50); do [ -S /run/dbus/system_bus_socket ] && break; sleep 0.1; done

"$BARKEEP_BUILD/barkeepd" --config "$conf" --bus 2> "$log" &
pid=$!
owner() { busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetNameOwner s org.barkeep.Broker1; }
for _ in $(seq 100); do owner > /dev/null 2>&1 && break; sleep 0.1; done
check "barkeepd owns org.barkeep.Broker1" owner
daemon_fd_baseline

out=$(busctl introspect org.barkeep.Broker1 /org/barkeep/Broker1 2>&1)
check "busctl introspect lists RequestBuffer and the signals" \
	sh -c "echo '$out' | grep -q '^\.RequestBuffer *method *sta{sv} *oha{sv}' &&
	       echo '$out' | grep -q '^\.DevicePaused *signal' && echo '$out' | grep -q '^\.LeaseRevoked *signal'"
check "busctl introspect shows the device objects" \
	sh -c "busctl tree org.barkeep.Broker1 | grep -q /org/barkeep/Broker1/device/1"
check "device object: State and FreeBytes" \
	sh -c "busctl get-property org.barkeep.Broker1 /org/barkeep/Broker1/device/0 org.barkeep.Broker1.Device State FreeBytes | tr '\n' ' ' | grep -q 's \"ready\" t 67108864'"

out=$(busctl call org.barkeep.Broker1 /org/barkeep/Broker1 org.barkeep.Broker1 RequestBuffer 'sta{sv}' "$gpu1" 1048576 1 exclusive b false 2>&1)
check "busctl call RequestBuffer receives a lease and an fd" \
	sh -c "echo '$out' | grep -qE '^oha\{sv\} \"/org/barkeep/Broker1/lease/[0-9]+\" [0-9]+ 10 '"
check "RequestBuffer's info has the 16-byte reclaim_token" \
	sh -c "echo '$out' | grep -qE '\"reclaim_token\" ay 16 '"
echo "     busctl: $out" | cut -c1-160

if command -v gdbus > /dev/null; then
	out=$(gdbus call --system --dest org.barkeep.Broker1 --object-path /org/barkeep/Broker1 \
		--method org.barkeep.Broker1.RequestBuffer gpu1 2097152 '{"alignment": <uint64 65536>}' 2>&1)
	check "gdbus call RequestBuffer receives a lease and an fd" \
		sh -c "echo \"\$1\" | grep -qE \"^\\(objectpath '/org/barkeep/Broker1/lease/[0-9]+', handle 0, \"" _ "$out"
	echo "     gdbus: $out" | cut -c1-160
else
	echo "     (gdbus not installed: skipped)"
fi

run_prog "${client[@]}" fd "$gpu0" 4194304
run_prog "${client[@]}" xml "$BARKEEP_TOP/systemd/org.barkeep.Broker1.xml" gpu0
run_prog "${client[@]}" expect-error NoSuchDevice no-such-gpu 4096
run_prog "${client[@]}" expect-error InvalidArgument gpu0 4096 colour=1
run_prog "${client[@]}" expect-error InvalidArgument gpu0 4096 alignment=3
run_prog "${client[@]}" expect-error InvalidArgument gpu0 0x20000000
run_prog "${client[@]}" expect-error NoSpace "" 0x20000000
run_prog "${as_user[@]}" "${client[@]}" expect-error PermissionDenied gpu0 4096
# No restart happened: nothing is orphaned, so every Reclaim is NoSuchLease.
out=$(busctl call org.barkeep.Broker1 /org/barkeep/Broker1 org.barkeep.Broker1 Reclaim tay 1 16 \
	0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 2>&1)
check "Reclaim of a lease nobody orphaned is refused" sh -c "echo '$out' | grep -q 'no orphaned lease 1'"
echo "     $out"
out=$(busctl call org.barkeep.Broker1 /org/barkeep/Broker1 org.barkeep.Broker1 Reclaim tay 1 2 0 1 2>&1)
check "Reclaim with a 2-byte token is refused" sh -c "echo '$out' | grep -q '16 bytes, not 2'"
echo "     $out"
out=$("${as_user[@]}" busctl call org.barkeep.Broker1 /org/barkeep/Broker1 org.barkeep.Broker1 ResetDevice 'sa{sv}' gpu1 0 2>&1)
check "ResetDevice by uid 1000 is PermissionDenied" sh -c "echo '$out' | grep -q 'may not reset devices'"
echo "     $out"
out=$("${as_user[@]}" busctl call --expect-reply=yes org.barkeep.Broker1 /org/barkeep/Broker1 org.freedesktop.DBus.Properties Set ssv org.barkeep.Broker1.Device State s gone 2>&1)
check "the bus policy refuses other calls from uid 1000" sh -c "echo '$out' | grep -qi 'denied\|rejected'"

# Leases end when the client leaves the bus.
free0=$("${client[@]}" free gpu1)
gdbus monitor --system --dest org.barkeep.Broker1 --object-path /org/barkeep/Broker1/device/1 > /run/dbus-monitor.out 2>&1 &
monitor=$!
sleep 1
"${client[@]}" hold gpu1 4194304 /run/dbus-hold.path > /run/dbus-hold.out 2>&1 &
holder=$!
for _ in $(seq 100); do [ -s /run/dbus-hold.path ] && break; sleep 0.1; done
free1=$("${client[@]}" free gpu1)
check "a held lease takes 4 MiB of gpu1" test "$((free0 - free1))" -eq 4194304
for _ in $(seq 20); do grep -q "'FreeBytes': <uint64 $free1>" /run/dbus-monitor.out && break; sleep 0.1; done
kill "$monitor"; wait "$monitor" 2> /dev/null
check "device 1 announced its FreeBytes with PropertiesChanged" \
	grep -q "PropertiesChanged ('org.barkeep.Broker1.Device', {'FreeBytes': <uint64 $free1>" /run/dbus-monitor.out
kill "$holder"; wait "$holder" 2> /dev/null
for _ in $(seq 50); do [ "$("${client[@]}" free gpu1)" = "$free0" ] && break; sleep 0.1; done
check "the lease ends when its holder leaves the bus" test "$("${client[@]}" free gpu1)" = "$free0"

# Signals reach lease holders only.
rm -f /run/dbus-hold.path /run/dbus-listen.mark
"${client[@]}" hold gpu1 1048576 /run/dbus-hold.path > /run/dbus-hold.out 2>&1 &
holder=$!
"${client[@]}" listen /run/dbus-listen.mark > /run/dbus-listen.out 2>&1 &
listener=$!
for _ in $(seq 100); do [ -s /run/dbus-hold.path ] && [ -s /run/dbus-listen.mark ] && break; sleep 0.1; done
out=$(busctl call --timeout=30 org.barkeep.Broker1 /org/barkeep/Broker1 org.barkeep.Broker1 ResetDevice 'sa{sv}' gpu1 1 grace_ms u 5000 2>&1)
check "ResetDevice answers once the device has resumed" test -z "$out"
sleep 0.5
gen=$(sed -n 's|^signal DevicePaused gpu1 /org/barkeep/Broker1/device/1 \([0-9]*\) admin 0 5000$|\1|p' /run/dbus-hold.out)
check "the holder got DevicePaused (admin, 5000 ms) and acknowledged it" \
	sh -c "[ -n '$gen' ] && grep -q '^acknowledged gpu1 $gen\$' /run/dbus-hold.out"
check "the holder got DeviceResumed at the next generation, contents lost" \
	grep -q "^signal DeviceResumed gpu1 /org/barkeep/Broker1/device/1 $((gen + 1)) 1\$" /run/dbus-hold.out
check "the reset waited for the acknowledgement, not the deadline" \
	sh -c "! grep -q 'did not acknowledge' '$log'"
check "a listener without a lease got no signal" sh -c "! grep -q '^signal' /run/dbus-listen.out"
kill "$holder" "$listener"; wait "$holder" "$listener" 2> /dev/null
echo "     holder: $(tr '\n' ';' < /run/dbus-hold.out | cut -c1-200)"

# One quota per uid across the socket and the bus: 6 MiB through the
# socket, then 4 MiB more over D-Bus is over gpu1's 8M for uid 1000.
"${as_user[@]}" "$BARKEEP_BUILD/barkeepctl" -s "$sock" alloc 6M --device "$gpu1" --hold=120 > /run/ctl-hold.out 2>&1 &
ctl=$!
for _ in $(seq 100); do grep -q 'holding lease' /run/ctl-hold.out 2> /dev/null && break; sleep 0.1; done
run_prog "${as_user[@]}" "${client[@]}" expect-error QuotaExceeded gpu1 4194304
check "within the shared quota, uid 1000 still gets 2 MiB over D-Bus" \
	"${as_user[@]}" busctl call org.barkeep.Broker1 /org/barkeep/Broker1 org.barkeep.Broker1 RequestBuffer 'sta{sv}' gpu1 2097152 0
kill "$ctl"; wait "$ctl" 2> /dev/null

# Sharing over the bus: root grants a token (both in group 1234: the default
# share-with = same-group), uid 1000 opens it once; nobody else revokes it.
rm -f /run/dbus-grant.out
setpriv --groups 1234 "${client[@]}" grant gpu1 1048576 /run/dbus-grant.out &
granter=$!
for _ in $(seq 100); do [ -s /run/dbus-grant.out ] && break; sleep 0.1; done
read -r token grant _ lpath < /run/dbus-grant.out
run_prog setpriv --reuid 1000 --regid 1000 --groups 1234 "${client[@]}" open "$token" "$lpath"
out=$("${as_user[@]}" busctl call org.barkeep.Broker1 /org/barkeep/Broker1 org.barkeep.Broker1 RevokeGrant t "$grant" 2>&1)
check "RevokeGrant of another's grant is refused" sh -c "echo '$out' | grep -q 'you have no grant'"
kill "$granter"; wait "$granter" 2> /dev/null

daemon_fd_check
stop_barkeepd
check_log_clean "$log"
echo "--- daemon log (tail)"; tail -n 12 "$log"

# The benchmark, as bench/run runs it: barkeepd on gpu1 only, the limit's
# server exporting from gpu0. Figures are printed, not judged.
sed -i -e '/^\[device gpu0\]/,/^$/d' -e 's/^log-level = debug/log-level = info/' "$conf"
"$BARKEEP_BUILD/barkeepd" --config "$conf" --bus 2> "$log.bench" &
pid=$!
for _ in $(seq 100); do owner > /dev/null 2>&1 && break; sleep 0.1; done
out=$("$BARKEEP_BUILD/bench/dbus_latency" -d gpu1 "$sock" "$gpu0" 2>&1); rc=$?
mapfile -t lines <<< "$out"
printf '     %s\n' "${lines[@]}"
check "bench/dbus_latency ran" test "$rc" -eq 0
kill -TERM "$pid"; wait "$pid"
suite_end
