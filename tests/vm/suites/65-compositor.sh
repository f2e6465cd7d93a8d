#!/bin/bash
# A compositor path: barkeep-present (client/present) leases an image on a
# system-memory device and shows it in weston 16 (headless backend, GL
# renderer on llvmpipe) through zwp_linux_dmabuf_v1 create_immed; a device
# reset makes it drop the buffer, acknowledge, and import the lease again in
# a new colour. Screenshots prove what weston drew. weston runs chrooted in
# the sid root tests/compositor/mkroot builds on the host (bookworm's Mesa
# cannot see vgem: doc/compositor.md); the client runs in the host userland.
# vm-options: --gpus 1M --mem 1536
# vm-prepare: tests/compositor/mkroot
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"

root=${BARKEEP_CACHE:-$HOME/.cache/barkeep}/sid-root
conf=/run/barkeep-compositor.conf
sock=/run/barkeep/barkeep.sock
log=/run/barkeepd-compositor.log
clog=/run/barkeep-present.log
wlog=$root/tmp/weston.log
check_shot=$BARKEEP_TOP/tests/compositor/check-shot
area=$((128 * 192))      # the left half of barkeep-present's 256x192 image
bar=$((32 * 192))        # each of its four bars
blue=2060c0 orange=e08010

if [ ! -f "$root/.barkeep-packages" ]; then
	fail "the sid root exists" "no $root: build it on the host with tests/compositor/mkroot (make compositor-root)"
	suite_end
	exit
fi

# In the chroot: the guest's devices, its own /proc, fresh /run and /tmp.
mount --bind /dev "$root/dev" && mount --bind /sys "$root/sys" &&
	mount -t proc proc "$root/proc" && mount -t tmpfs -o mode=0755 tmpfs "$root/run" &&
	mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
check "the sid root is mounted for a chroot" mountpoint -q "$root/tmp"
mkdir -p "$root/run/user/0" && chmod 0700 "$root/run/user/0"
# in_root COMMAND...: runs COMMAND in the chroot with a Wayland client's
# environment. It execs: call it in a subshell ("&", "( )", check), so
# that a background job's pid is COMMAND's.
in_root() { exec chroot "$root" env -i PATH=/usr/bin:/bin HOME=/tmp XDG_RUNTIME_DIR=/run/user/0 \
		WAYLAND_DISPLAY=wayland-1 LP_NATIVE_VECTOR_WIDTH=128 "$@"; }

# wait_for SECONDS COMMAND...: until COMMAND succeeds, polled every 0.1 s.
wait_for() {
	local i
	for ((i = 0; i < $1 * 10; i++)); do "${@:2}" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}

# shoot NAME: a weston-screenshooter PNG in $root/tmp/NAME; prints its path.
# A copy goes to the run's out share (tests/vm/run --keep keeps it).
shoot() {
	local png
	mkdir -p "$root/tmp/$1"
	(in_root sh -c "cd /tmp/$1 && HOME=/tmp/$1 weston-screenshooter") >&2 || return 1
	png=$(find "$root/tmp/$1" -name '*.png' | head -1)
	[ -d /out ] && cp "$png" "/out/compositor-$1.png"
	echo "$png"
}

# mem0 FIELD: a field of the sysmem device in barkeepctl --json devices.
mem0() {
	"$BARKEEP_BUILD/barkeepctl" --socket "$sock" --json devices | python3 -c '
import json, sys
out = json.load(sys.stdin)
devs = out["devices"] if isinstance(out, dict) else out
print([d for d in devs if d["backend"] == "sysmem"][0][sys.argv[1]])' "$1"
}

# check_screenshot N SHOWN GONE: screenshot N must show barkeep-present's
# image with its left half in colour SHOWN and the four bars, and no GONE.
# The client says it presented once it committed; weston, slow to start under
# TCG, may paint that frame a little later: up to 4 shots, 3 s apart, and
# the verdict is on the last.
check_screenshot() {
	local shot try expect=(--expect "$2:$area" --expect "ff0000:$bar" --expect "00ff00:$bar"
			       --expect "0000ff:$bar" --expect "ffffff:$bar" --absent "$3")
	for try in 1 2 3 4; do
		rm -rf "$root/tmp/shot$1"
		shot=$(shoot "shot$1")
		[ -n "$shot" ] && "$check_shot" "$shot" "${expect[@]}" > /dev/null 2>&1 && break
		sleep 3
	done
	[ "$try" = 1 ] || echo "     (screenshot $1: shot $try)"
	check "screenshot $1 taken" test -n "$shot"
	check "screenshot $1 shows the #$2 half and the four bars, no #$3" "$check_shot" "$shot" \
		"${expect[@]}"
	"$check_shot" "$shot" --expect "$2:$area" --absent "$3" | sed 's/^/    /'
}

# buf_refs: the reference count of lease 1's dma-buf (every fd, mapping and
# import of it), from the fdinfo of barkeepd's own copy.
buf_refs() {
	local f
	# shellcheck disable=SC2154 # pid: start_barkeepd (lib.sh) sets it
	f=$(grep -l "^name:.*barkeep:1:" /proc/"$pid"/fdinfo/* 2>/dev/null | head -1)
	[ -n "$f" ] && sed -n 's/^count:[[:space:]]*//p' "$f"
}
refs_are() { [ "$(buf_refs)" = "$1" ]; }

free_is() { [ "$(mem0 free_bytes)" = "$1" ]; }

write_conf "$conf" <<CONF
[device mem0]
backend = sysmem
size = 16M
label = system memory
allow-users = root
CONF
start_barkeepd "$log" --config "$conf"
dev=$(mem0 id)
free_before=$(mem0 free_bytes)

# llvmpipe's AVX2 code draws wrongly under TCG (LP_NATIVE_VECTOR_WIDTH=128);
# kiosk-shell crashed on a second window (--shell=desktop); --debug offers
# weston_capture_v1 to weston-screenshooter.
start=$SECONDS
in_root weston --backend=headless --renderer=gl --shell=desktop --debug \
	--width=400 --height=300 --socket=wayland-1 --log=/tmp/weston.log 2> "$root/tmp/weston.err" &
wpid=$!
check "weston 16 starts (headless, GL renderer)" wait_for 120 test -S "$root/run/user/0/wayland-1"
echo "--- weston listens $((SECONDS - start)) s after its start; its renderer:"
grep -iE "renderer|GL version|GL renderer|dmabuf" "$wlog" | head -8

XDG_RUNTIME_DIR=$root/run/user/0 WAYLAND_DISPLAY=wayland-1 \
	"$BARKEEP_BUILD/barkeep-present" --socket "$sock" 2> "$clog" &
cpid=$!
check "barkeep-present shows its lease" wait_for 60 grep -q "presented lease .* (blue" "$clog"
echo "--- shown $((SECONDS - start)) s after weston started"

check_screenshot 1 "$blue" "$orange"
refs_before=$(buf_refs)
# barkeepd's copy and the client's lease fd make 2; the rest are weston's.
check "weston holds the buffer it shows ($refs_before references)" test "${refs_before:-0}" -gt 2

check "barkeepctl reset of the sysmem device" \
	"$BARKEEP_BUILD/barkeepctl" --socket "$sock" reset "$dev"
check "barkeep-present shows its lease again, in the next colour" \
	wait_for 60 grep -q "presented lease .* (orange" "$clog"
check_screenshot 2 "$orange" "$blue"
# Had weston kept its first import, the buffer would have more references now.
check "weston holds no stale import: the buffer has $refs_before references again" \
	wait_for 10 refs_are "$refs_before"
echo "--- lease 1's dma-buf: $refs_before references while shown before the reset, $(buf_refs) after"

check "the client dropped the buffer, then acknowledged, then re-imported" python3 -c '
import re, sys
lines = open(sys.argv[1]).read().splitlines()
want = ["imported lease .* blue", "presented lease .*blue", "device .* pauses", "buffer dropped, pause acknowledged",
	"device .* resumed", "imported lease .* orange", "presented lease .*orange"]
i = 0
for line in lines:
	if i < len(want) and re.search(want[i], line):
		i += 1
sys.exit(0 if i == len(want) else "missing or out of order: " + want[i])' "$clog"
check "the broker waited for one client and did not time out" \
	sh -c "grep -q 'device mem0: paused for .*told 1 client' '$log' && ! grep -q 'did not acknowledge' '$log'"

kill -TERM "$cpid"
wait "$cpid"
check "barkeep-present exits cleanly on SIGTERM" test $? -eq 0
# The window is reused only once weston's import is gone too (the broker
# counts every reference to the dma-buf).
check "weston let go of the buffer: the window is free again" wait_for 10 free_is "$free_before"

# The plain build (a sanitizer build needs the host's libasan): it links
# only libraries the sid root has.
cp "$BARKEEP_TOP/build/barkeep-present" "$root/tmp/"
check "barkeep-present also runs in the sid root" in_root /tmp/barkeep-present --help

kill -TERM "$wpid"
wait "$wpid"
st=$?
if [ "$st" -eq 0 ]; then ok "weston exits cleanly"; else fail "weston exits cleanly" "status $st"; fi
stop_barkeepd
check_log_clean "$log"
echo "--- barkeep-present log"; cat "$clog"
echo "--- weston log"; cat "$wlog"
umount "$root/tmp" "$root/run" "$root/proc" "$root/sys" "$root/dev"
suite_end
