#!/bin/sh
# SPDX-License-Identifier: MIT
# pmtrack probe and pmtrack stat: the tables of a process with a known
# layout (pstate_target), as text and as JSON (read with jq), and usage
# errors.  Every step that fails says so; the exit status is 1 if any did.
#   cli_pstate.sh PMTRACK_BINARY TARGET_BINARY WORK_DIR
set -u
bin=$1 target=$2 work=$3
fail=0
no() { echo "FAIL: $*"; fail=1; }
. "$(dirname "$0")/json_check.sh" # jq: json_ok, jq_is
# the columns of the stat row of the mapping starting at $2 (hex)
row() { awk -v a="$2" '$1 == a' "$1"; }
expect_row() { # file addr pages present swapped file excl unsure
	r=$(row "$1" "$2")
	set -- "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$r"
	[ -n "$9" ] || { no "$1: no row for $2"; return; }
	got=$(echo "$9" | awk '{ print $5, $6, $7, $8, $10, $13 }')
	[ "$got" = "$3 $4 $5 $6 $7 $8" ] ||
		no "$1: mapping $2: pages/present/swapped/file/excl/unsure" \
			"are '$got', want '$3 $4 $5 $6 $7 $8'"
}
expect_elsewhere() { # file addr yes|no|unknown|-
	got=$(row "$1" "$2" | awk '{ print $14 }')
	[ "$got" = "$3" ] ||
		no "$1: mapping $2: elsewhere is '$got', want '$3'"
}
# the JSON object of the one mapping starting at $2 (hex) makes the jq
# filter $3 true
expect_json() {
	jq -e --arg a "0x$2" \
		"[.mappings[] | select(.start == \$a)] |
		length == 1 and (.[0] | $3)" "$1" >/dev/null 2>&1 ||
		no "$1: mapping $2: not true: $3"
}

rm -rf "$work" && mkdir -p "$work" || exit 1
cd "$work" || exit 1

# pmtrack probe's page-state rows (tests/cli_probe.sh checks the rest)
"$bin" probe >probe.out 2>probe.err || no "probe: exit $?: $(cat probe.err)"
head -n 1 probe.out | grep -q '^pmtrack probe: ' || no "probe: no verdict first"
grep -q '^backend: ' probe.out || no "probe: no backend line"
grep -q '^  pagestate-scan  *\(yes\|no: .\)' probe.out ||
	no "probe: no pagestate-scan row"
"$bin" probe --json >probe.json || no "probe --json: exit $?"
json_ok probe.json
jq_is probe.json ".kernel == \"$(uname -r)\" and (.library | type) == \"string\""
# the same page-state rows as the text, each a name, ok and a reason
jq_is probe.json '.pagestate | all(has("name") and
	(.ok | type == "boolean" or type == "null") and has("reason"))'
words=$(jq -r '.pagestate[] | "\(.name) \(if .ok == null then "unknown"
	elif .ok then "yes" else "no" end)"' probe.json)
[ "$words" = "$(sed -n '/^page states:/,$p' probe.out | grep '^  ' |
	sed 's/^  \([a-z0-9-]*\)  *\([a-z]*\).*/\1 \2/')" ] ||
	no "probe --json and probe differ: $words"
for r in reports-present map-files cachestat swap; do
	jq_is probe.json "any(.pagestate[]; .name == \"$r\")"
done

"$target" addrs &
tpid=$!
i=0
while [ ! -s addrs ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
if [ -s addrs ]; then
	read -r anon memfd shared kept zombie <addrs
	"$bin" stat "$tpid" >stat.out 2>stat.err ||
		no "stat: exit $?: $(cat stat.err)"
	head -n 1 stat.out | grep -q '^start' || no "stat: no header"
	grep -q '^total ' stat.out || no "stat: no total line"
	tail -n 1 stat.out | grep -q '^elsewhere: ' || no "stat: no legend"
	#                     pages present swapped file excl unsure
	expect_row stat.out "$anon" 64 32 0 0 32 0
	# 8 pages dropped from the page tables are still in the memfd: the
	# object (open in the target) says they are in RAM
	expect_row stat.out "$memfd" 32 16 0 16 8 0
	grep -q "/memfd:pmtrack-target" stat.out || no "stat: no memfd name"
	# a child maps every page of "kept"
	expect_row stat.out "$kept" 8 8 0 8 0 0
	expect_elsewhere stat.out "$kept" yes
	expect_elsewhere stat.out "$anon" -
	# the dropped memfd pages are mapped by no one the target knows of
	expect_elsewhere stat.out "$memfd" unknown
	if [ "$(id -u)" = 0 ]; then
		expect_row stat.out "$shared" 16 16 0 16 16 0
		expect_elsewhere stat.out "$shared" no
	fi
	"$bin" stat --json "$tpid" >stat.json || no "stat --json: exit $?"
	json_ok stat.json
	grep -q "\"start\":\"0x$anon\"," stat.json ||
		no "stat --json: no mapping at $anon"
	expect_json stat.json "$kept" '.mapped_elsewhere == "yes" and
		.pages == 8 and .present == 8 and .file == 8 and .kind == "shmem"'
	expect_json stat.json "$anon" '.mapped_elsewhere == null and
		.pages == 64 and .present == 32 and .swapped == 0 and
		.exclusive == 32 and .unsure == 0 and .kind == "anon" and
		.perm == "rw-p"'
	expect_json stat.json "$memfd" '.mapped_elsewhere == "unknown" and
		.pages == 32 and .present == 16 and .file == 16 and
		.exclusive == 8 and (.name | startswith("/memfd:pmtrack-target"))'
	ps=$(getconf PAGESIZE 2>/dev/null) || ps=4096
	jq_is stat.json ".cmd == \"stat\" and .type == \"result\" and .ok and
		.pid == $tpid and .page_size_bytes == $ps"
	# a row per mapping, as in the text, and the total is their sum
	rows=$(($(wc -l <stat.out) - 3))
	jq_is stat.json "(.mappings | length) == $rows"
	jq_is stat.json '. as $d | [.known[] as $k | ([$d.mappings[][$k]] | add)
		== $d.total[$k]] | all'
	jq_is stat.json '([.mappings[].pages] | add) == .total.pages and
		all(.mappings[]; (.start | test("^0x[0-9a-f]+$")) and
		(.end | test("^0x[0-9a-f]+$")) and
		(.start | length) <= (.end | length) and
		(.tracked | type) == "boolean" and (.name | type) == "string")'
	# 64-bit addresses are exact: hex strings (the vsyscall page's,
	# where the kernel has one)
	if grep -q '^ffffffffff600000-ffffffffff601000 ' "/proc/$tpid/maps"; then
		grep -q '"start":"0xffffffffff600000","end":"0xffffffffff601000",' \
			stat.json || no "stat --json: the vsyscall page's address"
	fi
	# the target's child that exited and was not reaped
	grep -q '^State:.Z' "/proc/$zombie/status" ||
		no "zombie $zombie: $(grep '^State' "/proc/$zombie/status")"
	"$bin" stat "$zombie" >/dev/null 2>err
	[ $? -eq 1 ] || no "stat of a zombie: want exit 1"
	grep -qx "pmtrack stat: PID $zombie is a zombie: its memory is gone" err ||
		no "stat of a zombie: $(cat err)"
else
	no "target wrote no addresses in 10 s"
fi
kill "$tpid" 2>/dev/null
wait "$tpid" 2>/dev/null

"$bin" stat >/dev/null 2>&1
[ $? -eq 2 ] || no "stat without PID: want exit 2"
"$bin" stat nope >/dev/null 2>&1
[ $? -eq 2 ] || no "stat nope: want exit 2"
"$bin" stat 2147483646 >/dev/null 2>err
[ $? -eq 1 ] || no "stat of no process: want exit 1"
grep -q "No such process" err || no "stat of no process: $(cat err)"
# a kernel thread: PID 2 (kthreadd) where it is one (PF_KTHREAD in the
# flags, the 9th field of /proc/PID/stat), else the first one listed
kthread=
for d in /proc/2 /proc/[0-9]*; do
	[ -r "$d/stat" ] || continue
	if sed 's/.*) //' "$d/stat" |
		awk '{ exit !(int($7 / 2097152) % 2) }'; then
		kthread=${d#/proc/}
		break
	fi
done
if [ -n "$kthread" ]; then
	"$bin" stat "$kthread" >/dev/null 2>err
	[ $? -eq 1 ] || no "stat of kernel thread $kthread: want exit 1"
	grep -qx "pmtrack stat: PID $kthread is a kernel thread: it has no user memory" err ||
		no "stat of kernel thread $kthread: $(cat err)"
	# unprivileged, the kernel refuses the open (EACCES): still a kernel
	# thread, not a permission problem
	nobody="setpriv --reuid=65534 --regid=65534 --clear-groups"
	if [ "$(id -u)" = 0 ] && $nobody test -x "$bin" 2>/dev/null; then
		$nobody "$bin" stat "$kthread" >/dev/null 2>err
		[ $? -eq 1 ] || no "stat of kernel thread $kthread as nobody: want exit 1"
		grep -qx "pmtrack stat: PID $kthread is a kernel thread: it has no user memory" err ||
			no "stat of kernel thread $kthread as nobody: $(cat err)"
	else
		echo "note: not root, or setpriv cannot run $bin as nobody: unprivileged kernel thread not checked"
	fi
else
	echo "note: no kernel thread visible in /proc here: not checked"
fi
# a process whose main thread exited while another runs on: not a zombie
# to the user, and its memory is there through the other thread's id
rm -f leader
"$target" --leader leader &
lpid=$!
i=0
while [ ! -s leader ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
if read -r lp ltid <leader 2>/dev/null; then
	"$bin" stat "$lp" >/dev/null 2>err
	[ $? -eq 1 ] || no "stat of an exited main thread: want exit 1"
	grep -q "PID $lp's main thread has exited, its other threads run on" err ||
		no "stat of an exited main thread: $(cat err)"
	"$bin" stat "$ltid" >/dev/null 2>err ||
		no "stat of the thread that runs on: $(cat err)"
else
	no "the --leader target wrote no ids in 10 s"
fi
kill "$lpid" 2>/dev/null
wait "$lpid" 2>/dev/null
# a mapping whose path is not UTF-8: still UTF-8 in the JSON, each such
# byte as U+0080..U+00FF; in the text as it is
latin1=$(printf 'target-\377')
if cp "$target" "$latin1"; then
	"./$latin1" latin1.addrs &
	lpid=$!
	i=0
	while [ ! -s latin1.addrs ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	"$bin" stat --json "$lpid" >latin1.json || no "stat --json: exit $?"
	json_ok latin1.json
	jq_is latin1.json 'any(.mappings[]; .name | endswith("/target-\u00ff"))'
	"$bin" stat "$lpid" >latin1.out || no "stat: exit $?"
	grep -q "/$latin1\$" latin1.out || no "stat: the name as it is"
	kill "$lpid" 2>/dev/null
	wait "$lpid" 2>/dev/null
else
	no "cannot copy $target"
fi
"$bin" stat --bogus 1 >/dev/null 2>&1
[ $? -eq 2 ] || no "stat --bogus: want exit 2"
"$bin" stat --help | grep -q '^usage: pmtrack stat' || no "stat --help"

[ $fail -eq 0 ] && echo "cli_pstate: all checks passed"
exit $fail
