#!/bin/bash
# Containers: barkeepd tells clients apart by cgroup (read at connect time,
# pid checked with SO_PEERPIDFD) and by user-namespace uid range, applies the
# [container NAME] sections' devices and shared quotas, and names the
# container in logs and refusals. barkeepctl cdi generate writes the CDI spec
# podman reads; a podman container started with --device barkeep.dev/broker=broker
# gets the socket, allocates and is limited as its container.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"

read -r gpu0 gpu1 _ <<< "$BARKEEP_GPUS"
conf=/run/barkeep-containers.conf
sock=/run/barkeep/barkeep.sock
log=/run/barkeepd-containers.log
ctl=$BARKEEP_BUILD/barkeepctl
cg=/sys/fs/cgroup
mountpoint -q $cg || mount -t cgroup2 none $cg

cat > "$conf" <<CONF
[daemon]
socket = $sock
socket-mode = 0666
log-level = debug

[device gpu0]
pci = $gpu0
allow-users = root

[device gpu1]
pci = $gpu1
allow-users = root

# podman's containers (cgroup parent /machine.slice, as under systemd)
[container ci]
cgroup = /machine.slice/libpod-*
devices = gpu0
max-bytes = 8M
max-leases = 1

# a rootless runtime's user namespace (/etc/subuid range)
[container rootless]
uid-range = 100000-165535
devices = gpu1

[container sealed]
cgroup = /sealed.slice/*
CONF

check "config with [container] sections validates" "$BARKEEP_BUILD/barkeepd" --check-config "$conf"
"$BARKEEP_BUILD/barkeepd" --config "$conf" 2> "$log" &
pid=$!
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
check "daemon listens" test -S "$sock"

# in_cgroup PATH COMMAND...: runs COMMAND in cgroup PATH (created if needed).
in_cgroup() {
	local path=$cg$1
	shift
	mkdir -p "$path"
	sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$path" "$@"
}
# refused NAME TEXT COMMAND...: COMMAND exits 1 and its error contains TEXT.
refused() {
	local name=$1 text=$2 out rc
	shift 2
	out=$("$@" 2>&1); rc=$?
	if [ "$rc" -eq 1 ] && grep -qF -- "$text" <<< "$out"; then ok "$name"
	else fail "$name" "exit $rc: $(tail -3 <<< "$out")"; fi
}
alloc() { "$ctl" --name "$1" alloc "$2" --device "$3"; }

# ---- identity by cgroup ------------------------------------------------------
check "host root is not a container: gpu1" alloc host 1M "$gpu1"
check "cgroup container: allocates on its device" \
	in_cgroup /machine.slice/libpod-fake.scope "$ctl" --name ci-1 alloc 4M --device "$gpu0"
check "cgroup container: named in the log" \
	grep -qF "client ci-1 (container ci, uid 0, pid" "$log"
check "log has the cgroup path" grep -qF "cgroup /machine.slice/libpod-fake.scope)" "$log"
refused "cgroup container: root inside gets only its devices" \
	"container ci may not use device gpu1 (it is not in devices = of [container ci]" \
	in_cgroup /machine.slice/libpod-fake.scope "$ctl" alloc 1M --device "$gpu1"
refused "cgroup container: max-bytes counted for the container" \
	"container ci holds 0 bytes and asked for 16 MiB, limit is 8 MiB (max-bytes of [container ci])" \
	in_cgroup /machine.slice/libpod-fake.scope "$ctl" alloc 16M --device "$gpu0"
# One container, two cgroups below it, two clients: one quota.
in_cgroup /machine.slice/libpod-fake.scope/a "$ctl" --name holder alloc 1M --device "$gpu0" \
	--hold=30 > /run/holder.out 2>&1 &
holder=$!
for _ in $(seq 50); do grep -q "^Holding" /run/holder.out && break; sleep 0.1; done
refused "cgroup container: max-leases shared by its clients" \
	"container ci holds 1 leases, limit is 1 (max-leases of [container ci])" \
	in_cgroup /machine.slice/libpod-fake.scope/b "$ctl" alloc 1M --device "$gpu0"
check "the same uid outside the container is not limited by it" alloc outside 1M "$gpu0"
kill -INT "$holder"; wait "$holder"
refused "cgroup container: may not reset devices" "container ci may not reset devices" \
	in_cgroup /machine.slice/libpod-fake.scope "$ctl" reset 0
refused "container without devices: refused with its name" \
	"container sealed may not use device gpu0" \
	in_cgroup /sealed.slice/job.scope "$ctl" alloc 1M --device "$gpu0"
refused "container without devices: 'any device' finds none" "no device you may use" \
	in_cgroup /sealed.slice/job.scope "$ctl" alloc 1M

# ---- identity by user-namespace uid range ---------------------------------------
as_mapped=(setpriv --reuid 100000 --regid 100000 --clear-groups)
check "uid-range container: allocates on its device" "${as_mapped[@]}" "$ctl" alloc 1M --device "$gpu1"
refused "uid-range container: refused elsewhere, named" \
	"container rootless may not use device gpu0" "${as_mapped[@]}" "$ctl" alloc 1M --device "$gpu0"
refused "uid outside every range: plain uid policy" "uid 99999 may not use device gpu0" \
	setpriv --reuid 99999 --regid 99999 --clear-groups "$ctl" alloc 1M --device "$gpu0"

# ---- CDI ----------------------------------------------------------------------
mkdir -p /etc/cdi
check "cdi generate writes /etc/cdi/barkeep.json" "$ctl" -s "$sock" cdi generate --output /etc/cdi/barkeep.json
check "the spec is JSON of kind barkeep.dev/broker" python3 -c '
import json, sys
s = json.load(open("/etc/cdi/barkeep.json"))
assert s["kind"] == "barkeep.dev/broker" and s["cdiVersion"] == "0.5.0", s
e = s["devices"][0]["containerEdits"]
assert s["devices"][0]["name"] == "broker"
assert e["mounts"][0]["containerPath"] == "/run/barkeep/barkeep.sock"
assert "BARKEEP_SOCKET=/run/barkeep/barkeep.sock" in e["env"]'
check "cdi list names it" sh -c "'$ctl' cdi list | grep -q '^barkeep.dev/broker=broker'"

kill -TERM "$pid"
wait "$pid"
check "daemon exits cleanly" test $? -eq 0
check "daemon logged no errors" sh -c "! grep -E 'error:|ERROR|AddressSanitizer|runtime error' $log"
echo "--- daemon log (container lines)"; grep -E "container|refused" "$log" | tail -n 12
suite_end
