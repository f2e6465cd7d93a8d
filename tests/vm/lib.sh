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

suite_end() {
	echo "$suite_passed passed, $suite_failed failed"
	[ "$suite_failed" -eq 0 ]
}

: "${BARKEEP_BUILD:=${BARKEEP_TOP:-.}/build}"
