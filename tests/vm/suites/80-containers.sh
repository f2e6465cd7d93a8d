#!/bin/bash
# Containers: barkeepd tells clients apart by cgroup (read at connect time,
# pid checked with SO_PEERPIDFD) and by user-namespace uid range, applies the
# [container NAME] sections' devices and shared quotas, and names the
# container in logs and refusals. barkeepctl cdi generate writes the CDI spec
# podman reads; a podman container started with --device barkeep.dev/broker=broker
# gets the socket, allocates and is limited as its container.
# vm-options: --timeout 900
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

$(root_gpus_conf)

# podman's containers: under systemd (machine.slice), or with cgroupfs and
# --cgroup-parent /podman as below
[container ci]
cgroup = /machine.slice/libpod-*
	/podman/libpod-*
devices = gpu0
max-bytes = 8M
max-leases = 1

# a rootless runtime's user namespace (/etc/subuid range)
[container rootless]
uid-range = 100000-165535
devices = gpu1

[container sealed]
cgroup = /sealed*
CONF

check "config with [container] sections validates" "$BARKEEP_BUILD/barkeepd" --check-config "$conf"
# A system bus too: D-Bus clients are matched to containers as well.
cp "$BARKEEP_TOP/systemd/org.barkeep.Broker1.conf" /etc/dbus-1/system.d/
mkdir -p /run/dbus
check "dbus-daemon --system starts" dbus-daemon --system --fork --nopidfile
for _ in $(seq 50); do [ -S /run/dbus/system_bus_socket ] && break; sleep 0.1; done
"$BARKEEP_BUILD/barkeepd" --config "$conf" --bus 2> "$log" &
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

# The same container through D-Bus: the pid the bus daemon saw names the cgroup.
request_buffer=(busctl call org.barkeep.Broker1 /org/barkeep/Broker1 org.barkeep.Broker1
		RequestBuffer 'sta{sv}')
for _ in $(seq 100); do busctl status org.barkeep.Broker1 > /dev/null 2>&1 && break; sleep 0.1; done
check "D-Bus client in the container's cgroup: gets a buffer on its device" \
	in_cgroup /machine.slice/libpod-fake.scope/dbus "${request_buffer[@]}" "$gpu0" 1048576 0
check "D-Bus client: identified as container ci" \
	grep -qE "D-Bus client :[0-9.]+ \(container ci, uid 0, pid" "$log"
refused "D-Bus client: refused another device, naming the container" \
	"container ci may not use device gpu1" \
	in_cgroup /machine.slice/libpod-fake.scope/dbus "${request_buffer[@]}" "$gpu1" 1048576 0

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

# ---- a real runtime: podman (rootful, vfs storage, cgroupfs, no network) --------
# No image can be pulled here: the image is a tarball of busybox and this
# tree's barkeepctl with the libraries ldd names, brought in by podman import.
rootfs=/run/ctr-rootfs
mkdir -p "$rootfs/bin" "$rootfs/opt/barkeep" "$rootfs/run" "$rootfs/tmp" "$rootfs/proc" \
	"$rootfs/sys" "$rootfs/dev" "$rootfs/etc"
cp /bin/busybox "$rootfs/bin/" && for a in sh cat test ls grep env; do ln -sf busybox "$rootfs/bin/$a"; done
cp "$ctl" "$BARKEEP_BUILD/libbarkeep.so.0" "$rootfs/opt/barkeep/"
for lib in $(ldd "$ctl" | grep -oE '/[^ ]+' | grep -v "^$BARKEEP_BUILD"); do
	mkdir -p "$rootfs$(dirname "$lib")" && cp -L "$lib" "$rootfs$lib"
done
tar -C "$rootfs" -cf /run/ctr-rootfs.tar .
export TMPDIR=/run/podman-tmp
mkdir -p "$TMPDIR"
pod=(podman --storage-driver vfs --root /run/containers/storage --runroot /run/containers/run
     --cgroup-manager cgroupfs --events-backend file)
check "podman imports the client image" "${pod[@]}" import /run/ctr-rootfs.tar localhost/barkeep-client
# prun CGROUP_PARENT [PODMAN RUN OPTIONS...] -- COMMAND...: a container with the CDI device.
prun() {
	local parent=$1 opts=()
	shift
	while [ "$1" != -- ]; do opts+=("$1"); shift; done
	shift
	"${pod[@]}" run --rm --network none --cgroup-parent "$parent" \
		--device barkeep.dev/broker=broker "${opts[@]}" localhost/barkeep-client "$@"
}
bk=/opt/barkeep/barkeepctl
check "podman: the CDI device gives the socket and BARKEEP_SOCKET, no VFIO" \
	prun /podman -- sh -c 'test "$BARKEEP_SOCKET" = /run/barkeep/barkeep.sock &&
		test -S /run/barkeep/barkeep.sock && test ! -e /dev/vfio/vfio'
out=$(prun /podman -- $bk --name podman-ci alloc 4M --device "$gpu0" 2>&1)
if grep -q "dma-buf:    fd [0-9]*, 4194304 bytes by lseek" <<< "$out"; then
	ok "podman: a container allocates and receives the dma-buf fd"
else fail "podman: a container allocates and receives the dma-buf fd" "$(tail -3 <<< "$out")"; fi
check "podman: identified as container ci, by its libpod cgroup" \
	grep -qE "client podman-ci \(container ci, uid 0, pid [0-9]+, cgroup /podman/libpod-[0-9a-f]{64}" "$log"
refused "podman: refused another device, naming the container" \
	"container ci may not use device gpu1" prun /podman -- $bk alloc 1M --device "$gpu1"
refused "podman: limited by the container's max-bytes" \
	"container ci holds 0 bytes and asked for 16 MiB, limit is 8 MiB" \
	prun /podman -- $bk alloc 16M --device "$gpu0"
refused "podman: a container without rights is refused by name" \
	"container sealed may not use device gpu0" prun /sealed -- $bk alloc 1M --device "$gpu0"
# A user namespace: root inside is host uid 100000, the rootless section.
check "podman --uidmap: root inside is uid 100000 outside and uses its device" \
	prun /userns --uidmap 0:100000:65536 --gidmap 0:100000:65536 -- \
	$bk --name podman-userns alloc 1M --device "$gpu1"
check "podman --uidmap: identified as container rootless" \
	grep -qE "client podman-userns \(container rootless, uid 100000," "$log"
refused "podman --uidmap: refused gpu0, naming the container" \
	"container rootless may not use device gpu0" \
	prun /userns --uidmap 0:100000:65536 --gidmap 0:100000:65536 -- \
	$bk alloc 1M --device "$gpu0"

kill -TERM "$pid"
wait "$pid"
check "daemon exits cleanly" test $? -eq 0
check "daemon logged no errors" sh -c "! grep -E 'error:|ERROR|AddressSanitizer|runtime error' $log"
echo "--- daemon log (container lines)"; grep -E "container|refused" "$log" | tail -n 12
suite_end
