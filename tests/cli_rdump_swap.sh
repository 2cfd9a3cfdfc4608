#!/bin/sh
# SPDX-License-Identifier: MIT
# pmtrack dump --pid of swapped-out shared memory.  A full image holds the
# pages that exist, present or swapped out, as the page-state maps say:
# shared memory that is swapped out, which /proc/PID/pagemap reports as
# nothing, included.  With a swap file of its own (root), pmt-target
# --mode pageout (tests/targets) pages out the odd 64-page chunks of its
# memfd and shared anonymous regions every 50 ms (its writers leave them
# alone); once `pmtrack stat` counts them swapped, three images 200 ms
# apart, the last frozen, the target left stopped.  Image 0 must hold
# every page of both regions, the swapped-out ones counted in its JSON
# and in its rounds' swap bitmaps (`pmtrack inspect`); the chain restored
# must equal the target's memory (pmt-logcheck --compare-mem) and its
# log (--restored).  The swap file is in WORK_DIR (the build tree), turned
# off and removed on the way out, failures included.  Exit 0, 1 if a step
# failed, 77 (with a SKIP line) without root or where swapon is refused
# (a file system that takes no swap file, a container) or ptrace is.
#   cli_rdump_swap.sh PMTRACK_BINARY PMT_TARGET PMT_LOGCHECK WORK_DIR
set -u
bin=$1 target=$2 check=$3 work=$4
PATH=$PATH:/sbin:/usr/sbin
fail=0 pid="" swapfile=""
no() { echo "FAIL: $*"; fail=1; }
. "$(dirname "$0")/json_check.sh" # jq: json_ok, jq_is

cleanup() {
	if [ -n "$pid" ]; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	pid=""
	if [ -n "$swapfile" ]; then
		swapoff "$swapfile" 2>/dev/null ||
			echo "note: swapoff $swapfile failed"
		rm -f "$swapfile"
	fi
	swapfile=""
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Has process $1 a writable mapping of 1 TiB or more?  A sanitizer's shadow
# (a target built with ASan or TSan): the frozen image's digest would hash
# all of it (hours), the restore refuse its bitmaps.
huge_map() {
	while read -r range perms rest; do
		case $perms in rw*) ;; *) continue ;; esac
		[ $((0x${range#*-} - 0x${range%-*})) -lt 1099511627776 ] ||
			return 0
	done </proc/"$1"/maps
	return 1
}

skip() {
	echo "SKIP: $*"
	exit 77
}

[ "$(id -u)" = 0 ] || skip "a swap file needs root"
for c in mkswap swapon swapoff; do
	command -v $c >/dev/null 2>&1 || skip "no $c here"
done
# a run killed outright (a CTest timeout) left its swap file on
[ -e "$work/swapfile" ] && swapoff "$work/swapfile" 2>/dev/null
rm -rf "$work" && mkdir -p "$work" || exit 1
cd "$work" || exit 1

# ---- a swap file of 512 MiB in the build tree ----------------------------
# allocated with fallocate where the file system takes that for swap, else
# written out with dd
f=$work/swapfile
for how in fallocate dd; do
	rm -f "$f"
	if [ $how = fallocate ]; then
		fallocate -l 512M "$f" 2>/dev/null || continue
	else
		dd if=/dev/zero of="$f" bs=1048576 count=512 2>/dev/null ||
			skip "cannot write a 512 MiB swap file in $work"
	fi
	chmod 600 "$f" && mkswap "$f" >/dev/null 2>&1 ||
		skip "mkswap $f failed"
	if swapon "$f" 2>"$work/swapon.err"; then
		swapfile=$f
		break
	fi
done
if [ -z "$swapfile" ]; then
	rm -f "$f"
	skip "swapon of a file in $work refused: $(cat "$work/swapon.err")"
fi
echo "swap file: $swapfile ($how)"

# ---- the target, its shared memory partly swapped out --------------------
d=$work/pageout
mkdir -p "$d"
"$target" --mode pageout --log "$d/log" --ready "$d/ready" --threads 2 \
	--rate 20000 --seed 7 2>"$d/target.err" &
pid=$!
i=0
while [ ! -e "$d/ready" ] && kill -0 "$pid" 2>/dev/null && [ $i -lt 600 ]; do
	sleep 0.1
	i=$((i + 1))
done
if [ ! -e "$d/ready" ]; then
	wait "$pid"
	rc=$?
	pid=""
	[ $rc = 77 ] && skip "$(cat "$d/target.err")"
	no "the target is not ready (exit $rc): $(cat "$d/target.err")"
	exit 1
fi

huge_map "$pid" &&
	skip "the target has a writable mapping of 1 TiB or more (built with a sanitizer?), which dump --pid would hash in full"

# the swapped-out pages of the shared regions, as pmtrack stat counts them
# (its --json into $d/stat.json): "MEMFD SHANON"
swapped_now() {
	"$bin" stat "$pid" --json >"$d/stat.json" 2>"$d/stat.err" || return 1
	jq -r '[(.mappings[] | select(.name | startswith("/memfd:pmt-target"))
		| .swapped), (.mappings[] |
		select(.name | startswith("/dev/zero")) | .swapped)] |
		map(tostring) | join(" ")' "$d/stat.json"
}
i=0
while :; do
	sw=$(swapped_now) || {
		grep -q 'no ptrace permission' "$d/stat.err" &&
			skip "ptrace is forbidden here: $(cat "$d/stat.err")"
		no "stat: $(cat "$d/stat.err")"
		exit 1
	}
	set -- $sw
	[ $# = 2 ] && [ "$1" -gt 0 ] && [ "$2" -gt 0 ] && break
	i=$((i + 1))
	[ $i -lt 50 ] || { no "nothing of the shared regions swapped out: $sw"; exit 1; }
	sleep 0.1
done
echo "before the dump, pmtrack stat: swapped out: memfd $1 pages, shared anonymous $2 pages"
before="$1 $2"

# ---- dump, restore, check --------------------------------------------------
"$bin" dump --pid "$pid" "$d/img" --dumps 3 --interval-ms 200 --leave-stopped \
	--json >"$d/dump.json" 2>"$d/dump.err" ||
	{ no "dump: exit $?: $(cat "$d/dump.err")"; exit 1; }
# image 0 holds every page of both regions (as many as pmtrack stat
# counted), present or swapped out
jq -s -e --slurpfile st "$d/stat.json" '
	($st[0].mappings | map(select(.name | startswith("/memfd:pmt-target")
		or startswith("/dev/zero")) | {key: .name, value: .pages}) |
		from_entries) as $pages |
	map(select(.type == "status"))[0] | [.table[] |
		select(.name | startswith("/memfd:pmt-target") or
			startswith("/dev/zero"))] |
	length == 2 and all(.[]; .fresh and .swapped_pages > 0 and
		.pages == $pages[.name])' "$d/dump.json" >/dev/null ||
	no "image 0 does not hold every page of the shared regions: $(head -n 1 "$d/dump.json")"
img0=$(jq -s -r 'map(select(.type == "status"))[0] | [.table[] |
	select(.name | startswith("/memfd:pmt-target") or
		startswith("/dev/zero")) | "\(.name): \(.pages) pages, \(.swapped_pages) of them swapped out"] |
	join("; ")' "$d/dump.json")
total=$(jq -s -r 'map(select(.type == "status"))[0].swapped_pages' "$d/dump.json")
# the same count in the image's rounds: the swap bitmaps
"$bin" inspect --json "$d/img/000000.pmts" >"$d/inspect.json" \
	2>"$d/inspect.err" || no "inspect: $(cat "$d/inspect.err")"
inswap=$(jq '[.rounds[].regions[].swap_pages] | add' "$d/inspect.json")
[ "$inswap" = "$total" ] ||
	no "image 0: $total pages swapped out in its JSON, $inswap in its swap bitmaps"
# nothing but the dump reads the chunks paged out: as many as before
# (other regions may have a page swapped out too, the system's doing)
shared=$(jq -s -r 'map(select(.type == "status"))[0] |
	[(.table[] | select(.name | startswith("/memfd:pmt-target")) |
		.swapped_pages), (.table[] | select(.name | startswith("/dev/zero")) |
		.swapped_pages)] | map(tostring) | join(" ")' "$d/dump.json")
[ "$shared" = "$before" ] ||
	no "image 0: swapped out of the memfd and the shared anonymous memory: $shared, before the dump: $before"
echo "image 0: $img0; swapped out in all: $total (JSON), $inswap (swap bitmaps)"

"$bin" restore "$d/img" --out-dir "$d/out" >"$d/restore.out" \
	2>"$d/restore.err" && grep -q '^digest: verified$' "$d/restore.out" ||
	no "restore: $(cat "$d/restore.out" "$d/restore.err")"
"$check" --compare-mem "$pid" --restored "$d/out" >"$d/cmp.out" \
	2>"$d/cmp.err" || no "--compare-mem: $(cat "$d/cmp.out" "$d/cmp.err")"
"$check" --log-glob "$d/log.*" --pid "$pid" --restored "$d/out" \
	>"$d/check.out" 2>"$d/check.err" ||
	no "--restored: $(cat "$d/check.out" "$d/check.err")"
echo "pageout: $(tail -n 1 "$d/restore.out"); --compare-mem: $(cat "$d/cmp.out");" \
	"--restored: $(cat "$d/check.out")"
sed -n 's/^pmt-logcheck: \(pages:.*\)/  \1/p' "$d/cmp.err"

[ $fail = 0 ] && echo "cli_rdump_swap: all passed"
exit $fail
