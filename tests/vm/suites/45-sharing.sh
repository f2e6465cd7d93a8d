#!/bin/bash
# Sharing a window between clients on the real kernel: grants by token and
# by group, refusals, read-only exports, resets reaching every holder, the
# owner's release, revoked grants, 1000 holders of one window; barkeepctl
# grant and open between two uids.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"

two_gpus_setup
check "default share-with is same-group" sh -c \
	"'$BARKEEP_BUILD/barkeepd' --check-config '$conf' | grep -q 'share with: same-group'"
start_barkeepd /run/barkeepd.log --config "$conf"

run_prog "$BARKEEP_BUILD/tests/vm/sharing_test" "$sock" "$pid" "$BARKEEP_VRAM_DIR/gpu0"

# barkeepctl: root grants a token for a window of gpu1; uid 1000 opens it.
ctl="$BARKEEP_BUILD/barkeepctl --socket $sock"
fifo=/run/grant.in
mkfifo "$fifo"
# Both in group 1234: the default share-with = same-group lets them share.
setpriv --groups 1234 $ctl --json grant 1M --device-id 1 --token < "$fifo" > /run/grant.out 2>&1 &
gpid=$!
exec 3> "$fifo"
for _ in $(seq 50); do grep -q '"token"' /run/grant.out && break; sleep 0.1; done
token=$(sed -n 's/.*"token":"\([0-9a-f]*\)".*/\1/p' /run/grant.out)
check "barkeepctl grant prints a 32-digit token" test "${#token}" -eq 32
as1000=(setpriv --reuid 1000 --regid 1000 --groups 1234)
"${as1000[@]}" $ctl open "$token" --hold=60 > /run/open.out 2>&1 &
opid=$!
for _ in $(seq 50); do grep -q 'Holding lease' /run/open.out && break; sleep 0.1; done
check "barkeepctl open TOKEN as uid 1000" grep -q 'Opened lease' /run/open.out
check "the opened fd has the window's size" grep -q '1048576 bytes by lseek' /run/open.out
check "the opened buffer is named after the window" grep -q 'name barkeep:[0-9]*:1000' /run/open.out
out=$("${as1000[@]}" $ctl open "$token" 2>&1)
check "barkeepctl open refuses a used token" sh -c "echo '$out' | grep -q 'already used'"
echo holders >&3
for _ in $(seq 50); do grep -q '"holder"' /run/grant.out && break; sleep 0.1; done
check "holders typed into barkeepctl grant lists uid 1000" grep -q '"uid":1000' /run/grant.out
echo revoke-grant >&3
for _ in $(seq 50); do grep -q revoked_grant /run/grant.out && break; sleep 0.1; done
check "revoke-grant typed into barkeepctl grant" grep -q revoked_grant /run/grant.out
wait "$opid"
check "the holder's barkeepctl sees its lease end" grep -q 'withdrew grant' /run/open.out
exec 3>&-
kill -TERM "$gpid"; wait "$gpid"
check "barkeepctl grant releases on SIGTERM" grep -q '"released"' /run/grant.out

stop_barkeepd
check_log_clean /run/barkeepd.log
check "the log names tokens by 4 hex digits only" sh -c \
	"grep -q 'to a token' /run/barkeepd.log && ! grep -q '$token' /run/barkeepd.log"
echo "--- daemon log (tail)"; tail -n 12 /run/barkeepd.log
suite_end
