#!/bin/sh
# SPDX-License-Identifier: MIT
# pmtrack dump --pid and restore of running, unmodified processes
# (pmt-target, tests/targets): for the modes writer, forker (--children),
# mapper and closefds, four images 200 ms apart, the last one frozen and
# the target left stopped; the chain restored into files; then, the
# target still stopped, pmt-logcheck compares every restored page with
# its memory and every logged store with the restored files.  Then the
# restore's JSON, --upto, a corrupted image, a broken chain, a bad pid
# and (as root) a dump without ptrace permission.  Every step that fails
# says so; the exit status is 1 if any did, 77 (with a SKIP line) where
# ptrace is forbidden.
#   cli_rdump.sh PMTRACK_BINARY PMT_TARGET PMT_LOGCHECK WORK_DIR
set -u
bin=$1 target=$2 check=$3 work=$4
fail=0 pid="" stopped=""
no() { echo "FAIL: $*"; fail=1; }
. "$(dirname "$0")/json_check.sh" # jq: json_ok, jq_is

# the target and whatever dump left stopped
cleanup() {
	for p in $pid $stopped; do
		kill -KILL "$p" 2>/dev/null
	done
	[ -z "$pid" ] || wait "$pid" 2>/dev/null
	pid="" stopped=""
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# wait (up to $2 tenths of a second) until the command $1 succeeds
await() {
	i=0
	while ! eval "$1"; do
		i=$((i + 1))
		[ "$i" -le "$2" ] || return 1
		sleep 0.1
	done
}

# start pmt-target in mode $1 with its files in $d; false after a message
start() {
	"$target" --mode "$1" --log "$d/log" --ready "$d/ready" --threads 2 \
		--rate 20000 --seed 7 2>"$d/target.err" &
	pid=$!
	await "[ -e '$d/ready' ] || ! kill -0 $pid 2>/dev/null" 600 &&
		[ -e "$d/ready" ] && return 0
	no "$1: the target is not ready: $(cat "$d/target.err")"
	cleanup
	return 1
}

rm -rf "$work" && mkdir -p "$work" || exit 1
cd "$work" || exit 1

# ---- ptrace allowed here? ------------------------------------------------
d=$work/probe
mkdir -p "$d"
start writer || exit 1
if ! "$bin" track "$pid" --count 1 --interval-ms 50 >"$d/out" 2>"$d/err"
then
	if grep -q 'no ptrace permission' "$d/err"; then
		echo "SKIP: ptrace is forbidden here: $(cat "$d/err")"
		exit 77
	fi
	no "probe: track: $(cat "$d/err")"
fi
cleanup

# the JSON lines of dump --pid in $1: four images, the last frozen with a
# digest, addresses in hex, and a summary naming the stopped processes
dump_json() {
	n=0
	while read -r l; do
		n=$((n + 1))
		printf '%s\n' "$l" >"$d/line.json"
		json_ok "$d/line.json"
	done <"$1"
	[ "$n" = 5 ] || no "$mode: dump printed $n JSON lines, not 5"
	jq -s -e 'map(select(.type == "image")) | length == 4 and
		(map(.image) == [0, 1, 2, 3]) and
		(map(.frozen) == [false, false, false, true]) and
		.[3].digest == true and .[0].fresh == .[0].regions and
		all(.[]; .regions > 0 and .pages > 0 and .bytes > 0 and
			all(.table[]; (.start | test("^0x[0-9a-f]+$")) and
				(.end | test("^0x[0-9a-f]+$"))))' "$1" \
		>/dev/null || no "$mode: dump's image lines: $(cat "$1")"
	jq -s -e --argjson p "$pid" 'map(select(.type == "summary")) |
		length == 1 and .[0].pid == $p and .[0].images == 4 and
		.[0].left_stopped == true and (.[0].stopped_pids | index($p))
		and (.[0].downtime_ms | type) == "number"' "$1" >/dev/null ||
		no "$mode: dump's summary: $(tail -n 1 "$1")"
}

# every thread of process $1 is stopped
all_stopped() {
	for s in /proc/"$1"/task/*/stat; do
		st=$(sed 's/.*) \(.\).*/\1/' "$s" 2>/dev/null) || continue
		case $st in T|t|Z|X|"") ;; *) return 1 ;; esac
	done
}

# ---- dump, restore, check each mode --------------------------------------
# run_mode MODE [DUMP OPTIONS...]
run_mode() {
	mode=$1
	shift
	d=$work/$mode
	mkdir -p "$d"
	start "$mode" || return
	sleep 0.2
	"$bin" dump --pid "$pid" "$d/img" --dumps 4 --interval 200 \
		--leave-stopped --json "$@" >"$d/dump.json" 2>"$d/dump.err" ||
		{ no "$mode: dump: exit $?: $(cat "$d/dump.err")"; cleanup; return; }
	stopped=$(jq -r 'select(.type == "summary") | .stopped_pids[]' \
		"$d/dump.json")
	dump_json "$d/dump.json"
	await "all_stopped $pid" 50 || no "$mode: the target is not stopped"
	ls "$d/img" | grep -v '^00000[0-3]\.pmts$' &&
		no "$mode: more than the four images in $d/img"
	"$bin" restore "$d/img" --out-dir "$d/out" >"$d/restore.out" \
		2>"$d/restore.err" ||
		no "$mode: restore: exit $?: $(cat "$d/restore.err")"
	grep -q '^digest: verified$' "$d/restore.out" ||
		no "$mode: restore: digest not verified: $(cat "$d/restore.out")"
	"$check" --compare-mem "$pid" --restored "$d/out" >"$d/cmp.out" \
		2>"$d/cmp.err" ||
		no "$mode: --compare-mem: $(cat "$d/cmp.out" "$d/cmp.err")"
	"$check" --log-glob "$d/log.*" --pid "$pid" --restored "$d/out" \
		>"$d/check.out" 2>"$d/check.err" ||
		no "$mode: --restored: $(cat "$d/check.out" "$d/check.err")"
	echo "$mode: $(tail -n 1 "$d/restore.out"); --compare-mem:" \
		"$(cat "$d/cmp.out"); --restored: $(cat "$d/check.out")"
	[ "$mode" != forker ] || [ "$(echo "$stopped" | wc -w)" -ge 1 ] ||
		no "forker: no process left stopped"
	cleanup
}

run_mode writer
run_mode forker --children
run_mode mapper
run_mode closefds

# ---- the restore's JSON, --upto ----------------------------------------
img=$work/writer/img
d=$work/restore
mkdir -p "$d"
"$bin" restore "$img" --json >"$d/r.json" 2>"$d/r.err" ||
	no "restore --json: exit $?: $(cat "$d/r.err")"
json_ok "$d/r.json"
jq_is "$d/r.json" '.kind == "process" and .images == 4 and
	.digest_verified == true and .digest == "verified" and .error == null
	and (.chain | length) == 4 and .out_dir == null and
	all(.regions[]; (.start | test("^0x[0-9a-f]+$")) and
		.file == "\(.start[2:])-\(.end[2:])")'
"$bin" restore "$img" --upto 1 >"$d/upto.out" 2>"$d/upto.err" &&
	no "restore --upto 1 (a live image, no digest): exit 0"
grep -q 'not verified' "$d/upto.err" ||
	no "restore --upto 1: $(cat "$d/upto.err")"
"$bin" restore "$img" --upto 1 --allow-unverified --out-dir "$d/upto" \
	>"$d/upto.out" 2>"$d/upto.err" ||
	no "restore --upto 1 --allow-unverified: exit $?: $(cat "$d/upto.err")"
[ -n "$(ls "$d/upto")" ] || no "restore --upto 1: no files"

# ---- a corrupted image, a broken chain, a missing image ----------------
cp -r "$img" "$d/bad"
f=$d/bad/000002.pmts
off=$(($(wc -c <"$f") / 2))
b=$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' ')
printf "\\$(printf '%03o' $(((b + 1) % 256)))" |
	dd of="$f" bs=1 seek="$off" count=1 conv=notrunc 2>/dev/null
"$bin" restore "$d/bad" --out-dir "$d/bad.out" >"$d/bad.out.txt" \
	2>"$d/bad.err"
rc=$?
[ $rc = 1 ] || no "restore of a corrupted image: exit $rc"
grep -q '000002\.pmts' "$d/bad.err" ||
	no "restore of a corrupted image: $(cat "$d/bad.err")"
[ -e "$d/bad.out" ] && no "restore of a corrupted image wrote files"
rm -rf "$d/mix" && cp -r "$img" "$d/mix" &&
	cp "$work/mapper/img/000002.pmts" "$d/mix/000002.pmts"
"$bin" restore "$d/mix" >/dev/null 2>"$d/mix.err"
rc=$?
[ $rc = 1 ] && grep -q 'broken chain' "$d/mix.err" ||
	no "restore of a broken chain: exit $rc: $(cat "$d/mix.err")"
rm -rf "$d/gap" && cp -r "$img" "$d/gap" && rm "$d/gap/000001.pmts"
"$bin" restore "$d/gap" >/dev/null 2>"$d/gap.err"
rc=$?
[ $rc = 1 ] && grep -q '000001\.pmts' "$d/gap.err" ||
	no "restore with image 1 missing: exit $rc: $(cat "$d/gap.err")"

# ---- errors of dump --pid ----------------------------------------------
sh -c 'exit 0' &
dead=$!
wait $dead
"$bin" dump --pid "$dead" "$d/dead" >/dev/null 2>"$d/dead.err"
rc=$?
[ $rc = 1 ] && grep -q "no process $dead" "$d/dead.err" ||
	no "dump of a pid that is gone: exit $rc: $(cat "$d/dead.err")"
[ -e "$d/dead" ] && no "dump of a pid that is gone created its DIR"
"$bin" dump --pid 1x "$d/x" >/dev/null 2>&1
[ $? = 2 ] || no "dump --pid 1x: not a usage error"
"$bin" dump "$d/x" --leave-stopped >/dev/null 2>"$d/x.err"
[ $? = 2 ] && grep -q -- '--leave-stopped needs --pid' "$d/x.err" ||
	no "dump --leave-stopped without --pid: $(cat "$d/x.err")"
sleep 60 &
sp=$!
"$bin" dump --pid "$sp" "$img" >/dev/null 2>"$d/exists.err"
[ $? = 1 ] && grep -q 'already holds checkpoint images' "$d/exists.err" ||
	no "dump into a DIR with images: $(cat "$d/exists.err")"
# no ptrace permission: an unprivileged user against a root process
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$bin" dump --pid "$sp" /tmp/pmt-rdump-eperm.$$ >/dev/null \
		2>"$d/eperm.err"
	rc=$?
	rm -rf /tmp/pmt-rdump-eperm.$$
	[ $rc = 1 ] && grep -q 'no ptrace permission' "$d/eperm.err" ||
		no "dump without ptrace permission: exit $rc: $(cat "$d/eperm.err")"
fi
kill "$sp"
wait "$sp" 2>/dev/null

[ $fail = 0 ] && echo "cli_rdump: all passed"
exit $fail
