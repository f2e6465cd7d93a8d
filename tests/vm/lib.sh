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

# wait_for_socket PATH: waits up to 5 s for the Unix socket PATH to appear.
wait_for_socket() {
	for _ in $(seq 50); do [ -S "$1" ] && break; sleep 0.1; done
}

# start_barkeepd LOG ARGS...: starts barkeepd with ARGS in the background,
# its stderr in LOG, sets pid; waits for $sock and checks "daemon listens".
start_barkeepd() {
	local log=$1
	shift
	"$BARKEEP_BUILD/barkeepd" "$@" 2> "$log" &
	pid=$!
	wait_for_socket "$sock"
	check "daemon listens" test -S "$sock"
}

# stop_barkeepd: SIGTERM to $pid; checks that it exits with status 0.
stop_barkeepd() {
	kill -TERM "$pid"
	wait "$pid"
	check "daemon exits cleanly on SIGTERM" test $? -eq 0
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
