#!/bin/sh
# SPDX-License-Identifier: MIT
# pmt-target and pmt-logcheck agree, without libpmtrack: for each mode the
# target runs ~0.5 s after it is ready and is frozen (SIGSTOP; the forker
# modes' children are let finish), then
#   - its regions are copied out by hand (dd from /proc/PID/mem; cat from
#     /proc/PID/map_files for shared memory, which faults nothing in) as a
#     restore directory would have them, and
#     pmt-logcheck --compare-mem PID --restored COPY must find no difference,
#   - pmt-logcheck --restored COPY and --mem must find memory equal to the
#     log,
# and what the mode is for must have happened (children, generations,
# remaps, closed fds, pages out).  In the writer mode the checker must
# also fail where it should: on a copy taken before the last stores (a
# dump that lost writes), on a copy with a page overwritten or a region
# missing, and on the live memory with a page overwritten.  pageout runs
# with a swap file of its own when this machine allows one (root).
#   selfcheck.sh PMT_TARGET PMT_LOGCHECK WORK_DIR
# Exit 0 when everything held; 1 when something did not; 77 (with a
# SKIP line) when a mode needs what this kernel lacks and all else held.
set -u
target=$1 check=$2 work=$3
PATH=$PATH:/sbin:/usr/sbin
fail=0 skips="" pid="" swapfile=""
no() { echo "FAIL: $*"; fail=1; }
ps=$(getconf PAGESIZE 2>/dev/null || echo 4096)

swap_off() {
	[ -n "$swapfile" ] || return 0
	swapoff "$swapfile" 2>/dev/null || echo "note: swapoff $swapfile failed"
	rm -f "$swapfile"
	swapfile=""
}
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	swap_off
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# a swap file, as root, where the file system takes one
swap_on() {
	[ "$(id -u)" = 0 ] || return 1
	for dir in ${TMPDIR:-} /var/tmp /tmp; do
		f=$dir/pmt-selfcheck-swap.$$
		if dd if=/dev/zero of="$f" bs=1048576 count=128 2>/dev/null &&
			chmod 600 "$f" && mkswap "$f" >/dev/null 2>&1 &&
			swapon "$f" 2>/dev/null; then
			swapfile=$f
			return 0
		fi
		rm -f "$f"
	done
	return 1
}

# wait (up to $2 tenths of a second) until the command $1 succeeds
await() {
	i=0
	while ! eval "$1"; do
		i=$((i + 1))
		[ "$i" -le "$2" ] || return 1
		sleep 0.1
	done
}
# every thread of $pid is stopped
stopped() {
	for s in /proc/"$pid"/task/*/stat; do
		st=$(sed 's/.*) \(.\).*/\1/' "$s" 2>/dev/null) || continue
		case $st in T|t|Z|X|"") ;; *) return 1 ;; esac
	done
}
# no child of $pid runs
children_done() {
	for c in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
		st=$(sed 's/.*) \(.\).*/\1/' /proc/"$c"/stat 2>/dev/null) ||
			continue
		case $st in Z|X|T|t|"") ;; *) return 1 ;; esac
	done
}

# copy the regions the log names into directory $2 (regions file $1)
copy_regions() {
	mkdir -p "$2"
	while read -r range kind; do
		s=$((0x${range%-*})) e=$((0x${range#*-}))
		case $kind in
		memfd|shanon)
			cat /proc/"$pid"/map_files/"$range" >"$2/$range" &&
				continue ;;
		esac
		dd if=/proc/"$pid"/mem of="$2/$range" bs="$ps" \
			skip=$((s / ps)) count=$(((e - s) / ps)) 2>/dev/null ||
			no "$mode: dd of $range from /proc/$pid/mem"
	done <"$1"
}

# overwrite the first page of file $1 (or of /proc/$pid/mem at $2) with 0xff
spoil() {
	head -c "$ps" /dev/zero | tr '\000' '\377' |
		dd of="$1" bs="$ps" seek="${2:-0}" count=1 conv=notrunc \
			2>/dev/null
}

# the one-line summary of output file $1 has field $2 (mismatches,
# differing, ...) above zero
positive() {
	n=$(sed -n "s/.*$2 \([0-9]*\).*/\1/p" "$1")
	[ -n "$n" ] && [ "$n" -gt 0 ]
}

# the checker must fail (exit 1, not 2) and say so: $1 what, $2 field,
# then the command
must_fail() {
	what=$1 field=$2
	shift 2
	"$@" >"$d/neg.out" 2>"$d/neg.err"
	rc=$?
	if [ "$rc" != 1 ] || ! positive "$d/neg.out" "$field"; then
		no "$mode: $what: checker exit $rc: $(cat "$d/neg.out" "$d/neg.err")"
	else
		echo "  $what: caught ($(cat "$d/neg.out"))"
	fi
}

negatives() {
	logs=$d/log.*
	anon=$(awk '$2 == "anon" { print $1 }' "$d/regions")
	memfd=$(awk '$2 == "memfd" { print $1 }' "$d/regions")
	must_fail "copy taken before the last stores" mismatches \
		"$check" --log-glob "$logs" --pid "$pid" --restored "$d/early"
	grep -q "mismatches: [1-9][0-9]* older value" "$d/neg.err" ||
		no "$mode: no mismatch of the early copy is an older value"
	rm -rf "$d/bad" && cp -r "$d/copy" "$d/bad" && spoil "$d/bad/$anon"
	must_fail "copy with a page overwritten" mismatches \
		"$check" --log-glob "$logs" --pid "$pid" --restored "$d/bad"
	must_fail "copy with a page overwritten, against memory" differing \
		"$check" --compare-mem "$pid" --restored "$d/bad"
	rm -f "$d/bad/$memfd"
	must_fail "copy without the memfd region" mismatches \
		"$check" --log-glob "$logs" --pid "$pid" --restored "$d/bad"
	if spoil /proc/"$pid"/mem $((0x${anon%-*} / ps)); then
		must_fail "memory with a page overwritten" mismatches \
			"$check" --log-glob "$logs" --pid "$pid" --mem
	else
		echo "  note: cannot write /proc/$pid/mem: that case not run"
	fi
}

# what the mode is for happened; $1: the checker's notes
mode_did() {
	case $mode in
	forker|shmkids)
		grep -q ': [1-9][0-9]* child log(s), [1-9][0-9]* fork(s)' "$1" ||
			no "$mode: no child logged a store" ;;
	execer)
		grep -q 'generation 3)' "$1" ||
			no "$mode: not at generation 3" ;;
	mapper)
		grep -q '[1-9][0-9]* unmap, [1-9][0-9]* remap' "$1" ||
			no "$mode: no region was unmapped and remapped" ;;
	closefds)
		n=$(ls /proc/"$pid"/fd | wc -l)
		[ "$n" -le 3 ] || no "$mode: $n fds open: $(ls /proc/"$pid"/fd)" ;;
	pageout)
		[ -z "$swapfile" ] ||
			grep -q -E 'swapped [1-9]|map_files [1-9]' "$d/cmp.err" ||
			no "$mode: with swap, no page of (b) or (c) was out" ;;
	esac
}

run_mode() {
	mode=$1
	d=$work/$mode
	mkdir -p "$d"
	ready=$d/ready
	[ "$mode" = execer ] && ready=$d/ready.g3
	"$target" --mode "$mode" --log "$d/log" --ready "$d/ready" \
		--threads 2 --rate 20000 --seed 7 2>"$d/target.err" &
	pid=$!
	if ! await "[ -e '$ready' ] || ! kill -0 $pid 2>/dev/null" 600 ||
		[ ! -e "$ready" ]; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid"
		rc=$?
		pid=""
		if [ "$rc" = 77 ]; then
			echo "$mode: SKIP: $(cat "$d/target.err")"
			skips="$skips $mode"
		else
			no "$mode: not ready (exit $rc): $(cat "$d/target.err")"
		fi
		return
	fi
	sleep 0.2
	[ "$mode" = writer ] && "$check" --log "$(ls "$d"/log.*)" --regions \
		>"$d/early.regions" 2>/dev/null &&
		copy_regions "$d/early.regions" "$d/early"
	sleep 0.3
	kill -STOP "$pid"
	await stopped 100 || no "$mode: not all threads stopped"
	case $mode in forker|shmkids)
		await children_done 100 || no "$mode: children still run" ;;
	esac
	logs=$d/log.*
	"$check" --log-glob "$logs" --pid "$pid" --regions >"$d/regions" \
		2>"$d/regions.err" || no "$mode: --regions: $(cat "$d/regions.err")"
	copy_regions "$d/regions" "$d/copy"
	"$check" --compare-mem "$pid" --restored "$d/copy" >"$d/cmp.out" \
		2>"$d/cmp.err" || no "$mode: --compare-mem: $(cat "$d/cmp.err")"
	"$check" --log-glob "$logs" --pid "$pid" --restored "$d/copy" \
		>"$d/restored.out" 2>"$d/restored.err" ||
		no "$mode: --restored: $(cat "$d/restored.err")"
	if [ "$mode" = shmkids ]; then
		# a child frozen before it wrote its log's header: an empty log
		# and one of zeros name no process and are passed over
		: >"$d/log.unborn1"
		head -c 4096 /dev/zero >"$d/log.unborn2"
		"$check" --log-glob "$logs" --pid "$pid" --restored "$d/copy" \
			>/dev/null 2>"$d/unborn.err" ||
			no "$mode: unborn logs: $(cat "$d/unborn.err")"
		[ "$(grep -c 'no header yet' "$d/unborn.err")" = 2 ] ||
			no "$mode: unborn logs not noted: $(cat "$d/unborn.err")"
		rm -f "$d/log.unborn1" "$d/log.unborn2"
	fi
	"$check" --log-glob "$logs" --pid "$pid" --mem >"$d/mem.out" \
		2>"$d/mem.err" || no "$mode: --mem: $(cat "$d/mem.err")"
	echo "$mode: --mem: $(cat "$d/mem.out");" \
		"--restored: $(cat "$d/restored.out");" \
		"--compare-mem: $(cat "$d/cmp.out")"
	sed 's/^pmt-logcheck: /  /' "$d/mem.err" "$d/cmp.err"
	mode_did "$d/mem.err"
	[ "$mode" = writer ] && negatives
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null
	pid=""
	[ -s "$d/target.err" ] && echo "  target said: $(cat "$d/target.err")"
}

rm -rf "$work" && mkdir -p "$work" || exit 1
for m in writer forker shmkids execer mapper closefds pageout; do
	if [ "$m" = pageout ]; then
		if swap_on; then
			echo "pageout: swap file $swapfile"
		else
			echo "pageout: no swap file here (root, a file system that takes one): MADV_PAGEOUT leaves shared memory in"
		fi
	fi
	run_mode "$m"
done
swap_off
[ "$fail" = 0 ] || { echo "selfcheck: FAILED"; exit 1; }
if [ -n "$skips" ]; then
	echo "SKIP: this kernel lacks what mode(s)$skips need; the others passed"
	exit 77
fi
echo "selfcheck: every mode passed"
