# shellcheck shell=bash
# Sourced by VM suites (tests/vm/suites/*.sh), which run as root inside the
# guest. Each check prints "ok   NAME" or "FAIL NAME: why"; suite_end prints
# the closing "N passed, N failed" line and sets the exit status.
#
# Environment the harness provides inside the guest:
#   BARKEEP_TOP       the source tree (same path as on the host)
#   BARKEEP_BUILD     the build directory (default $BARKEEP_TOP/build)
#   BARKEEP_GPUS      PCI addresses of the emulated dGPUs, bound to vfio-pci
#   BARKEEP_VRAM_DIR  guest path of the host files backing each GPU's BAR2
#                     (gpu0, gpu1, ...: same order as BARKEEP_GPUS), uncached
#   BARKEEP_KMOD_DIR  where the test modules (bk_observer.ko) were built
#   BARKEEP_DAEMON_WRAPPER  a command start_barkeepd puts before barkeepd, e.g.
#                     valgrind (make check-vm-valgrind); empty: none

suite_passed=0
suite_failed=0

ok() { echo "ok   $1"; suite_passed=$((suite_passed + 1)); }
fail() { echo "FAIL $1${2:+: $2}"; suite_failed=$((suite_failed + 1)); }

# check NAME COMMAND...: passes when COMMAND exits 0; its output is shown on failure.
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$name"; else fail "$name" "$(echo "$out" | tail -5)"; fi
}

# run_prog PROGRAM ARGS...: runs a guest program that prints its own
# "ok"/"FAIL" lines and a "N passed, N failed" line, and folds its counts in.
run_prog() {
	local out rc line p f
	out=$("$@" 2>&1); rc=$?
	echo "$out" | grep -vE '^[0-9]+ passed, [0-9]+ failed$'
	line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -1)
	if [ -z "$line" ]; then
		fail "${1##*/}" "exited $rc without a result line"
		return
	fi
	p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
	suite_passed=$((suite_passed + p)); suite_failed=$((suite_failed + f))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then fail "${1##*/}" "exited $rc"; fi
}

# write_conf FILE: writes barkeepd's config to FILE: a [daemon] section for
# the socket $sock (mode 0666, debug log), a blank line, then stdin.
write_conf() {
	{
		printf '[daemon]\nsocket = %s\nsocket-mode = 0666\nlog-level = debug\n\n' "$sock"
		cat
	} > "$1"
}

# two_gpus_conf: the [device] sections for $gpu0 (root only) and $gpu1
# (root and uid 1000, 8M each), as suites that use both GPUs write them.
two_gpus_conf() {
	cat <<CONF
[device gpu0]
pci = $gpu0
label = emulated dGPU A
allow-users = root

[device gpu1]
pci = $gpu1
label = emulated dGPU B
allow-users = root, 1000
max-bytes-per-uid = 8M
CONF
}

# wait_for_socket PATH: waits up to 5 s (60 s under a wrapper) for the Unix
# socket PATH to appear.
wait_for_socket() {
	local n=50
	[ -z "${BARKEEP_DAEMON_WRAPPER:-}" ] || n=600
	for _ in $(seq "$n"); do [ -S "$1" ] && break; sleep 0.1; done
}

# Under valgrind, each barkeepd writes its report here (%p: its pid).
valgrind_log=/run/barkeepd-valgrind.%p.log

# two_gpus_setup: what suites of both GPUs start from: $gpu0, $gpu1, $sock
# and $conf set, the config (both devices, 64 leases per uid) written and
# checked.
two_gpus_setup() {
	read -r gpu0 gpu1 _ <<< "$BARKEEP_GPUS"
	conf=/run/barkeep-test.conf
	sock=/run/barkeep/barkeep.sock
	write_conf "$conf" <<CONF
[limits]
max-leases-per-uid = 64

$(two_gpus_conf)
CONF
	check "config validates" "$BARKEEP_BUILD/barkeepd" --check-config "$conf"
}

# start_barkeepd LOG ARGS...: starts barkeepd with ARGS in the background
# (behind $BARKEEP_DAEMON_WRAPPER, if set), its stderr in LOG, sets pid;
# waits for $sock and checks "daemon listens".
start_barkeepd() {
	local log=$1 wrapper=()
	shift
	read -ra wrapper <<< "${BARKEEP_DAEMON_WRAPPER:-}"
	case ${wrapper[0]:-} in
	valgrind|*/valgrind) wrapper+=("--log-file=$valgrind_log") ;;
	esac
	"${wrapper[@]}" "$BARKEEP_BUILD/barkeepd" "$@" 2> "$log" &
	pid=$!
	wait_for_socket "$sock"
	check "daemon listens" test -S "$sock"
}

# valgrind_opened_fds FILE: how many fds valgrind's --track-fds report lists
# as open at exit that the daemon opened itself (not inherited from its parent).
valgrind_opened_fds() {
	awk '/Open (file descriptor|AF_UNIX socket)/ { if (fd) n++; fd = 1; next }
	     /<inherited from parent>/ { fd = 0 }
	     END { if (fd) n++; print n + 0 }' "$1"
}

# check_valgrind_log FILE: no error in valgrind's report (memory errors,
# definite or possible leaks) and no fd the daemon opened still open at exit.
check_valgrind_log() {
	local f=$1 fds
	if [ ! -s "$f" ]; then
		fail "valgrind report" "no report in $f"
		return
	fi
	fds=$(valgrind_opened_fds "$f")
	if grep -q 'ERROR SUMMARY: 0 errors' "$f" && [ "$fds" -eq 0 ]; then
		ok "valgrind: no errors, no fd of the daemon's open at exit"
	else
		fail "valgrind report" "$(grep -E 'ERROR SUMMARY|FILE DESCRIPTORS' "$f"), $fds fd(s) opened by the daemon"
		echo "--- $f"
		# The errors come first; valgrind's notes on the VFIO ioctls are noise.
		grep -vE '^==[0-9]+== *$|unhandled ioctl|ioctl [0-9a-fx]+ with no size|README_MISSING_SYSCALL|This could cause|set address range perms|Nothing to worry|ignoring the' "$f" |
			head -150
	fi
}

# stop_barkeepd: SIGTERM to $pid; checks that it exits with status 0, and
# under valgrind that valgrind reported nothing.
stop_barkeepd() {
	kill -TERM "$pid"
	wait "$pid"
	check "daemon exits cleanly on SIGTERM" test $? -eq 0
	case ${BARKEEP_DAEMON_WRAPPER:-} in
	valgrind*|*/valgrind*) check_valgrind_log "${valgrind_log/\%p/$pid}" ;;
	esac
}

# daemon_fd_list PID: the daemon's open fds, one "NUMBER -> TARGET" a line.
daemon_fd_list() {
	local f
	for f in /proc/"$1"/fd/*; do
		echo "${f##*/} -> $(readlink "$f")"
	done | sort -n
}

# daemon_fd_baseline: remembers how many fds $pid has open, once it serves.
daemon_fd_baseline() {
	fd_baseline=$(daemon_fd_list "$pid")
}

# daemon_fd_check [EXTRA]: checks that $pid's open fds came back to the
# baseline, plus EXTRA the suite left by design (leases still held; negative
# for devices that went away),
# waiting up to 5 s (30 s under a wrapper) for closed connections to be
# dropped and released windows to be swept.
daemon_fd_check() {
	local want now tries=50
	want=$(($(echo "$fd_baseline" | wc -l) + ${1:-0}))
	[ -z "${BARKEEP_DAEMON_WRAPPER:-}" ] || tries=300
	for _ in $(seq "$tries"); do
		now=$(daemon_fd_list "$pid" | wc -l)
		[ "$now" -eq "$want" ] && break
		sleep 0.1
	done
	if [ "$now" -eq "$want" ]; then
		ok "daemon fds back to baseline ($want open)"
	else
		fail "daemon fds back to baseline" "$now open, want $want"
		# No <(...): the guest may have no /dev/fd.
		echo "$fd_baseline" > /run/fd-baseline.txt
		daemon_fd_list "$pid" > /run/fd-now.txt
		diff /run/fd-baseline.txt /run/fd-now.txt | grep '^[<>]' | head -20
	fi
}

# check_log_clean LOG: checks that the daemon logged no errors in LOG.
check_log_clean() {
	check "daemon logged no errors" sh -c "! grep -E 'error:|ERROR|AddressSanitizer|runtime error' '$1'"
}

# load_observer: loads bk_observer.ko when the harness did not (it loads it
# in every guest) and waits for its node, which devtmpfs creates asynchronously.
load_observer() {
	[ -e /dev/bk_observer ] && return
	check "load bk_observer.ko" insmod "${BARKEEP_KMOD_DIR:-$BARKEEP_BUILD/kmod}/bk_observer.ko"
	for _ in 1 2 3 4 5 6 7 8 9 10; do [ -e /dev/bk_observer ] && break; sleep 0.1; done
}

# run_built PROGRAM HINT: run_prog PROGRAM when it is built, else a failure
# that says how to build it.
run_built() {
	if [ -x "$1" ]; then
		run_prog "$1"
	else
		fail "${1##*/}" "$1 is not built ($2)"
	fi
}

suite_end() {
	echo "$suite_passed passed, $suite_failed failed"
	[ "$suite_failed" -eq 0 ]
}

: "${BARKEEP_BUILD:=${BARKEEP_TOP:-.}/build}"

# barkeepd under systemd (the --systemd bed) as a package would install it:
# the units of systemd/, user barkeep (sysusers.d), /etc/barkeep (tmpfiles.d),
# the VFIO group nodes of the given devices given to group barkeep as
# 70-barkeep-vfio.rules would (no udev in the guest), a config lending them
# to root as gpu0, gpu1, ... and barkeepd under /usr/local/bin (the
# service's PrivateTmp=/ProtectHome= hide a build tree under /tmp or /home,
# and CI clones anywhere).
#   install_units "EXTRA BARKEEPD ARGS" PCI...
install_units() {
	local args=$1 a g i=0
	shift
	systemd-sysusers "$BARKEEP_TOP/systemd/barkeep.sysusers"
	systemd-tmpfiles --create "$BARKEEP_TOP/systemd/barkeep.tmpfiles"
	for a in "$@"; do
		g=$(basename "$(readlink "/sys/bus/pci/devices/$a/iommu_group")")
		chgrp barkeep "/dev/vfio/$g" && chmod 0660 "/dev/vfio/$g"
	done
	chmod 0666 /dev/vfio/vfio # systemd's static node from modules.devname is 0600
	{
		printf '[daemon]\nlog-level = debug\n'
		for a in "$@"; do
			printf '[device gpu%d]\npci = %s\nallow-users = root\n' "$i" "$a"
			i=$((i + 1))
		done
	} > /etc/barkeep/barkeep.conf
	install -m 0755 "$BARKEEP_BUILD/barkeepd" /usr/local/bin/barkeepd
	sed "s|^ExecStart=/usr/bin/barkeepd|ExecStart=/usr/local/bin/barkeepd${args:+ $args}|" \
		"$BARKEEP_TOP/systemd/barkeepd.service" > /etc/systemd/system/barkeepd.service
	cp "$BARKEEP_TOP/systemd/barkeepd.socket" /etc/systemd/system/
	systemctl daemon-reload
}

# root_gpus_conf: the [device] sections for $gpu0 and $gpu1, root only.
root_gpus_conf() {
	cat <<CONF
[device gpu0]
pci = $gpu0
allow-users = root

[device gpu1]
pci = $gpu1
allow-users = root
CONF
}
