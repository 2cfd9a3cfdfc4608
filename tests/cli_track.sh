#!/bin/sh
# SPDX-License-Identifier: MIT
# pmtrack track PID: the dirty rate of a running pmt-target writer
# (tests/targets), three 200 ms intervals as JSON lines (the keys, pages
# written, the mappings with addresses in hex), as text, until SIGINT,
# and the errors.  Every step that fails says so; the exit status is 1
# if any did, 77 (with a SKIP line) where ptrace is forbidden.
#   cli_track.sh PMTRACK_BINARY PMT_TARGET WORK_DIR
set -u
bin=$1 target=$2 work=$3
fail=0 pid=""
no() { echo "FAIL: $*"; fail=1; }
. "$(dirname "$0")/json_check.sh" # jq: json_ok, jq_is

cleanup() {
	[ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null
	[ -z "$pid" ] || wait "$pid" 2>/dev/null
	pid=""
}
trap cleanup EXIT
trap 'exit 1' INT TERM

rm -rf "$work" && mkdir -p "$work" || exit 1
cd "$work" || exit 1

"$target" --mode writer --log log --ready ready --threads 2 --rate 20000 \
	2>target.err &
pid=$!
i=0
while [ ! -e ready ] && [ $i -lt 600 ] && kill -0 $pid 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
[ -e ready ] || { no "the target is not ready: $(cat target.err)"; exit 1; }

# ---- JSON ----------------------------------------------------------------
"$bin" track "$pid" --count 3 --interval-ms 200 --json >track.json \
	2>track.err
rc=$?
if [ $rc != 0 ] && grep -q 'no ptrace permission' track.err; then
	echo "SKIP: ptrace is forbidden here: $(cat track.err)"
	exit 77
fi
[ $rc = 0 ] || no "track --json: exit $rc: $(cat track.err)"
[ "$(wc -l <track.json)" = 4 ] ||
	no "track --json --count 3: $(wc -l <track.json) lines, want 3 + 1"
# the last line is the result
tail -n 1 track.json >result.json
json_ok result.json
jq_is result.json "keys_unsorted == [\"cmd\", \"type\", \"ok\", \"error\",
	\"pid\", \"backend\", \"intervals\", \"pages\", \"pages_per_s\",
	\"total_ms\"] and .cmd == \"track\" and .type == \"result\" and .ok and
	.pid == $pid and .intervals == 3 and .pages > 0"
n=0
sed '$d' track.json >status.json
while read -r l; do
	n=$((n + 1))
	printf '%s\n' "$l" >line.json
	json_ok line.json
	jq_is line.json "keys_unsorted == [\"cmd\", \"type\", \"interval\",
		\"duration_ms\", \"pages\", \"pages_per_s\", \"bytes_per_s\",
		\"ws_pages\", \"ws_bytes\", \"ws_intervals\", \"full_pages\",
		\"processes\", \"maps\"] and .cmd == \"track\" and
		.type == \"status\" and
		.interval == $n and .pages > 0 and .pages_per_s > 0 and
		.bytes_per_s > 0 and .ws_pages >= .pages and
		.ws_bytes == .ws_pages * $(getconf PAGESIZE) and
		.ws_intervals == $n and .processes == 1 and
		(.duration_ms > 100 and .duration_ms < 2000) and
		(.maps | length) > 0 and
		(.maps | map(.pages) | add) == .pages"
	jq_is line.json "all(.maps[]; keys_unsorted == [\"pid\", \"start\",
		\"end\", \"name\", \"pages\", \"pages_per_s\", \"ws_pages\"] and
		.pid == $pid and (.start | test(\"^0x[0-9a-f]+\$\")) and
		(.end | test(\"^0x[0-9a-f]+\$\")) and .pages > 0)"
	# no key has a space
	jq_is line.json '[paths | .[] | strings | test(" ")] | any | not'
done <status.json
# the writers store to the three regions: the 8 MiB one is written most
jq -s -e '.[:-1] | all(.[]; .maps[0].pages > 0)' track.json >/dev/null ||
	no "track --json: no busiest mapping"

# ---- text, SIGINT ---------------------------------------------------------
"$bin" track "$pid" --interval-ms 100 >track.out 2>track.err &
tp=$!
sleep 0.5
kill -INT $tp
wait $tp
rc=$?
[ $rc = 0 ] || no "track until SIGINT: exit $rc: $(cat track.err)"
grep -q "^tracking process $pid " track.out || no "track: first line"
# durations below 10 s in ms (docs/cli.md)
grep -q '^interval 1: [0-9.]* ms, .* pages written, .* pages/s, .* [KMG]*i*B/s; working set' \
	track.out || no "track: interval line: $(cat track.out)"
grep -q '^ .* pages/s  [0-9a-f]*-[0-9a-f]*  pid ' track.out ||
	no "track: mapping line: $(cat track.out)"
grep -q '^total: [0-9]* intervals in [0-9.]* ms, ' track.out ||
	no "track: total line: $(cat track.out)"
# --quiet: the total alone
"$bin" track "$pid" --interval-ms 100 --count 2 --quiet >quiet.out \
	2>quiet.err || no "track --quiet: exit $?"
[ "$(grep -c . quiet.out)" = 1 ] && grep -q '^total: 2 intervals' quiet.out ||
	no "track --quiet: $(cat quiet.out)"

# ---- errors ---------------------------------------------------------------
dead=$pid
cleanup
"$bin" track "$dead" --count 1 >/dev/null 2>dead.err
rc=$?
[ $rc = 1 ] && grep -q "no process $dead" dead.err ||
	no "track of a pid that is gone: exit $rc: $(cat dead.err)"
"$bin" track 12x >/dev/null 2>/dev/null
[ $? = 2 ] || no "track 12x: not a usage error"
"$bin" track >/dev/null 2>/dev/null
[ $? = 2 ] || no "track without PID: not a usage error"

[ $fail = 0 ] && echo "cli_track: all passed"
exit $fail
