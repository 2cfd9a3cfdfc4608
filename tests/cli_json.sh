#!/bin/sh
# SPDX-License-Identifier: MIT
# The JSON Lines of every pmtrack command that has --json (send, recv,
# dump, restore, inspect, stat, track), read with jq: each line is one
# object whose first keys are "cmd" and "type"; "status" objects while it
# runs, exactly one "result", last, with "ok" and "error" (also when the
# command fails); every key is [a-z0-9_]; every start, end, addr or *_addr
# is a hex string; sizes (*_bytes) are integers.  send's status objects
# carry the figures of QEMU's "info migrate".  Then the progress bar:
# drawn on a terminal (script(1) gives one), not with --quiet, never on a
# pipe or a file.  Every step that fails says so; the exit status is 1 if
# any did, 77 (with a SKIP line) without script(1) or where ptrace is
# forbidden.
#   cli_json.sh PMTRACK_BINARY PMT_TARGET WORK_DIR
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

command -v script >/dev/null 2>&1 || {
	echo "SKIP: script(1) (util-linux) is needed for the terminal checks"
	exit 77
}
rm -rf "$work" && mkdir -p "$work" || exit 1
cd "$work" || exit 1
ps=$(getconf PAGESIZE 2>/dev/null) || ps=4096

# the rules every JSON Lines output of command $2 in file $1 follows
lines_ok() {
	f=$1 c=$2
	[ -s "$f" ] || { no "$c: no output"; return; }
	n=0
	while IFS= read -r l; do
		n=$((n + 1))
		printf '%s\n' "$l" >line.json
		json_ok line.json
	done <"$f"
	[ "$(jq -s length "$f" 2>/dev/null)" = "$n" ] ||
		no "$c: $n lines but not $n JSON objects"
	jq -s -e --arg c "$c" 'all(.[]; (keys_unsorted[0:2]) == ["cmd", "type"]
		and .cmd == $c and (.type == "status" or .type == "result"))' \
		"$f" >/dev/null || no "$c: an object does not start with cmd, type"
	jq -s -e 'map(select(.type == "result")) | length == 1' "$f" \
		>/dev/null || no "$c: not exactly one result"
	jq -s -e '.[-1].type == "result" and (.[-1].ok | type) == "boolean"
		and (.[-1] | has("error")) and
		(if .[-1].ok then .[-1].error == null
		 else (.[-1].error | type) == "string" end)' "$f" >/dev/null ||
		no "$c: the result is not last, or has no ok and error"
	jq -s -e '[.. | objects | keys[]] | all(test("^[a-z0-9_]+$"))' "$f" \
		>/dev/null || no "$c: a key that is not [a-z0-9_]: $(jq -s -c \
		'[.. | objects | keys[] | select(test("^[a-z0-9_]+$") | not)] |
		unique' "$f")"
	jq -s -e '[.. | objects | to_entries[] |
		select(.key | test("^(start|end|addr)$|_addr$")) | .value] |
		all(type == "string" and test("^0x[0-9a-f]+$"))' "$f" \
		>/dev/null || no "$c: an address that is not a hex string"
	jq -s -e '[.. | objects | to_entries[] | select(.key | endswith("bytes"))
		| .value] | all(. == null or (type == "number" and . == floor))' \
		"$f" >/dev/null || no "$c: a *_bytes that is not an integer"
	jq -s -e '[.. | objects | to_entries[] |
		select(.key | test("_ms$|_per_s$")) | .value] |
		all(. == null or type == "number")' "$f" >/dev/null ||
		no "$c: a *_ms or *_per_s that is not a number"
	# digests and ids: lower-case hex or null (has_digest says whether
	# there is one: a boolean)
	jq -s -e '[.. | objects | to_entries[] |
		select(.key | test("^digest$|_digest$|_id$")) |
		select(.key | startswith("has_") | not) | .value] |
		all(. == null or (type == "string" and test("^[0-9a-f]+$")))' \
		"$f" >/dev/null || no "$c: a digest or id that is not hex: $(jq \
		-s -c '[.. | objects | to_entries[] |
		select(.key | test("^digest$|_digest$|_id$"))]' "$f")"
	jq -s -e '[.. | objects | to_entries[] |
		select(.key == "has_digest") | .value] |
		all(type == "boolean")' "$f" >/dev/null ||
		no "$c: a has_digest that is not a boolean"
	keys_ok "$f" "$c"
}

# The keys man/json-output.roff lists for each object of command $2 in
# file $1 (its status objects and its result), exactly: every one, and
# no other, on success and on failure.
keys_ok() {
	jq -s -e --arg c "$2" '
	def want($o):
	if $c == "send" then
		if $o.type == "status" then ["round", "final", "pages",
		"zero_pages", "bytes", "duration_ms", "remaining_pages",
		"remaining_bytes", "transferred_bytes", "total_pages",
		"dirty_rate_pages_per_s", "bandwidth_bytes_per_s",
		"expected_downtime_ms", "total_ms"]
		else ["ok", "error", "destination", "rounds", "pages",
		"zero_pages", "bytes", "total_ms", "bandwidth_bytes_per_s",
		"downtime_ms", "expected_downtime_ms", "downtime_limit_ms",
		"converged", "backend", "verified", "audited"] end
	elif ($c == "recv" or $c == "restore") and ($o | has("kind")) then
		["ok", "error", "dir", "kind", "images", "image_bytes", "chain",
		"regions", "digest_status", "digest_verified", "out_dir"]
	elif $c == "recv" or $c == "restore" then
		["ok", "error"] +
		(if $c == "recv" then ["source", "peer"]
		 else ["dir", "images", "image_bytes"] end) +
		["state", "stream_id", "page_size_bytes", "regions", "streams",
		"rounds", "pages", "zero_pages", "bytes", "apply_ms",
		"digest_verified", "digest_status", "answer", "error_reason",
		"errno"] + (if $c == "recv" then ["image"] else [] end)
	elif $c == "dump" and ($o | has("frozen")) then
		["index", "file", "frozen", "regions", "fresh", "pages",
		"zero_pages", "swapped_pages", "bytes", "dropped_pages",
		"has_digest", "duration_ms", "collect_ms", "pages_ms",
		"digest_ms", "written_bytes", "total_ms", "table"]
	elif $c == "dump" and $o.type == "status" then
		["index", "file", "stopped", "pages", "zero_pages", "bytes",
		"duration_ms", "has_digest", "audited", "written_bytes",
		"total_ms"]
	elif $c == "dump" and ($o | has("pid")) then
		["ok", "error", "pid", "dir", "backend", "images",
		"written_bytes", "has_digest", "downtime_ms", "downtime",
		"left_stopped", "stopped_pids"]
	elif $c == "dump" then
		["ok", "error", "dir", "images", "written_bytes", "total_ms"]
	elif $c == "inspect" then
		["ok", "error", "version", "header", "rounds", "batches",
		"stream_end", "digest_verified", "digest_reason", "wire_bytes",
		"records", "skipped", "error_reason"]
	elif $c == "stat" then
		["ok", "error", "pid", "page_size_bytes", "known", "mappings",
		"total"]
	elif $c == "track" then
		if $o.type == "status" then ["interval", "duration_ms", "pages",
		"pages_per_s", "bytes_per_s", "ws_pages", "ws_bytes",
		"ws_intervals", "full_pages", "processes", "maps"]
		else ["ok", "error", "pid", "backend", "intervals", "pages",
		"pages_per_s", "total_ms"] end
	elif $c == "probe" and ($o | has("verdict")) then
		["ok", "error", "verdict", "backend", "caps", "remote",
		"features", "pagestate", "swap_areas", "kernel",
		"kernel_config", "library"]
	elif $c == "probe" then ["ok", "error", "features"]
	else null end;
	all(.[]; (del(.cmd, .type) | keys | sort) == (want(.) | sort))' \
		"$1" >/dev/null || no "$2: keys not as man/json-output.roff \
lists them: $(jq -c 'del(.cmd, .type) | keys_unsorted' "$1" | sort -u)"
}

# ---- send, recv, inspect -------------------------------------------------
"$bin" send --out s.pmts --size 8M --json >send.json 2>send.err ||
	no "send --json: exit $?: $(cat send.err)"
lines_ok send.json send
[ -s send.err ] && no "send --json wrote on stderr: $(cat send.err)"
jq -s -e --argjson tp $((8 * 1048576 / ps)) '
	map(select(.type == "status")) as $s |
	($s | length) >= 2 and
	all($s[]; (keys_unsorted | contains(["round", "final",
		"remaining_pages", "remaining_bytes", "transferred_bytes",
		"pages", "zero_pages", "total_pages", "dirty_rate_pages_per_s",
		"bandwidth_bytes_per_s", "expected_downtime_ms", "total_ms"]))
		and .total_pages == $tp and .zero_pages <= .pages and
		(.remaining_pages > 0 or .remaining_bytes == 0)) and
	[$s[].round] == [range($s | length)] and
	[$s[].final] == [range($s | length) | . == ($s | length) - 1] and
	$s[0].pages == $tp and $s[-1].remaining_pages == 0 and
	([$s[].transferred_bytes] | . == sort) and
	([$s[].total_ms] | . == sort) and
	.[-1].ok and .[-1].rounds == ($s | length) and
	.[-1].pages == ([$s[].pages] | add) and
	.[-1].zero_pages == ([$s[].zero_pages] | add) and
	.[-1].bytes >= $s[-1].transferred_bytes' send.json >/dev/null ||
	no "send: status and result figures: $(cat send.json)"
# each round's remaining pages are the next round's (the final round's
# also those written between the last collect and the stop)
jq -s -e 'map(select(.type == "status")) as $s |
	[range(($s | length) - 1) | $s[.].remaining_pages <=
	$s[. + 1].pages] | all' send.json >/dev/null ||
	no "send: remaining pages are not the next round's"

"$bin" recv --json s.pmts >recv.json 2>recv.err ||
	no "recv --json: exit $?: $(cat recv.err)"
lines_ok recv.json recv
jq_is recv.json '.ok and .digest_verified and .pages >= .zero_pages'
"$bin" inspect --json s.pmts >inspect.json 2>inspect.err ||
	no "inspect --json: exit $?: $(cat inspect.err)"
lines_ok inspect.json inspect
jq_is inspect.json '.ok and .stream_end.pages == ([.rounds[].pages] | add)'

# ---- dump, restore -------------------------------------------------------
"$bin" dump ck --size 8M --dumps 2 --interval-ms 50 --json >dump.json \
	2>dump.err || no "dump --json: exit $?: $(cat dump.err)"
lines_ok dump.json dump
jq -s -e 'map(select(.type == "status")) as $s | ($s | length) == 2 and
	[$s[].index] == [0, 1] and
	([$s[].written_bytes] == [foreach $s[].bytes as $b (0; . + $b)]) and
	all($s[]; .zero_pages <= .pages and .duration_ms >= 0 and
		(.total_ms | type) == "number") and
	.[-1].ok and .[-1].images == 2 and
	.[-1].written_bytes == $s[-1].written_bytes' dump.json >/dev/null ||
	no "dump: status and result figures: $(cat dump.json)"
"$bin" restore --json ck >restore.json 2>restore.err ||
	no "restore --json: exit $?: $(cat restore.err)"
lines_ok restore.json restore
jq_is restore.json '.ok and .images == 2 and .digest_verified'

# ---- stat ----------------------------------------------------------------
"$bin" stat --json self >stat-self.json 2>stat.err ||
	no "stat --json self: exit $?: $(cat stat.err)"
lines_ok stat-self.json stat

# ---- failures: still one result, ok false, the error -----------------------
"$bin" recv --json no-such.pmts >fail-recv.json 2>/dev/null &&
	no "recv of a missing file: exit 0"
lines_ok fail-recv.json recv
jq_is fail-recv.json '.ok == false and (.error | test("no-such.pmts"))'
head -c 100000 s.pmts >cut.pmts
"$bin" inspect --json cut.pmts >fail-inspect.json 2>/dev/null &&
	no "inspect of a cut stream: exit 0"
lines_ok fail-inspect.json inspect
jq_is fail-inspect.json '.ok == false and .error_reason == "truncated"'
"$bin" restore --json no-such-dir >fail-restore.json 2>/dev/null &&
	no "restore of a missing directory: exit 0"
lines_ok fail-restore.json restore
jq_is fail-restore.json '.ok == false'
mkdir full && : >full/000000.pmts
"$bin" dump full --size 4M --dumps 1 --json >fail-dump.json 2>/dev/null &&
	no "dump into a directory with an image: exit 0"
lines_ok fail-dump.json dump
jq_is fail-dump.json '.ok == false and (.error | test("already holds"))'
# failed before they began: the whole result all the same, nulls inside
"$bin" inspect --json no-such.pmts >fail-inspect2.json 2>/dev/null &&
	no "inspect of a missing file: exit 0"
lines_ok fail-inspect2.json inspect
jq_is fail-inspect2.json '.ok == false and .stream_end == null and
	.digest_reason == null'
jq_is fail-recv.json '.state == null and .regions == [] and
	.digest_status == null and .image == null'
nopid=2147483646
"$bin" stat --json $nopid >fail-stat.json 2>/dev/null &&
	no "stat of no process: exit 0"
lines_ok fail-stat.json stat
jq_is fail-stat.json ".ok == false and .pid == $nopid and .mappings == null"
"$bin" track $nopid --count 1 --json >fail-track.json 2>/dev/null &&
	no "track of no process: exit 0"
lines_ok fail-track.json track
jq_is fail-track.json '.ok == false and .intervals == 0 and .backend == null'
"$bin" dump --pid $nopid nopid-ck --json >fail-dump-pid.json 2>/dev/null &&
	no "dump --pid of no process: exit 0"
lines_ok fail-dump-pid.json dump
jq_is fail-dump-pid.json '.ok == false and .images == 0 and
	.has_digest == false and .downtime_ms == null'
# a bad command line prints no JSON
"$bin" send --out x.pmts --size 64k --json >usage.json 2>/dev/null
[ $? = 2 ] && [ ! -s usage.json ] || no "a bad command line: not exit 2, or JSON"
# --quiet: the result alone
"$bin" send --out q.pmts --size 8M --json --quiet >send-q.json 2>/dev/null ||
	no "send --json --quiet: exit $?"
lines_ok send-q.json send
[ "$(wc -l <send-q.json)" = 1 ] || no "send --json --quiet: status objects"
"$bin" dump ckq --size 8M --dumps 2 --interval-ms 50 --json --quiet \
	>dump-q.json 2>/dev/null || no "dump --json --quiet: exit $?"
lines_ok dump-q.json dump
[ "$(wc -l <dump-q.json)" = 1 ] || no "dump --json --quiet: status objects"
jq_is dump-q.json '.ok and .images == 2'

# ---- stat, track of a running target -------------------------------------
"$target" --mode writer --log log --ready ready --threads 2 --rate 20000 \
	2>target.err &
pid=$!
i=0
while [ ! -e ready ] && [ $i -lt 600 ] && kill -0 $pid 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
[ -e ready ] || { no "the target is not ready: $(cat target.err)"; exit 1; }
"$bin" track "$pid" --count 2 --interval-ms 100 --json >track.json \
	2>track.err
rc=$?
if [ $rc != 0 ] && grep -q 'no ptrace permission' track.err; then
	echo "SKIP: ptrace is forbidden here: $(cat track.err)"
	exit 77
fi
[ $rc = 0 ] || no "track --json: exit $rc: $(cat track.err)"
lines_ok track.json track
jq -s -e 'map(select(.type == "status")) | length == 2 and
	all(.[]; (.maps | length) > 0)' track.json >/dev/null ||
	no "track: two status objects with mappings: $(cat track.json)"
"$bin" track "$pid" --count 2 --interval-ms 100 --json --quiet \
	>track-q.json 2>/dev/null || no "track --json --quiet: exit $?"
lines_ok track-q.json track
[ "$(wc -l <track-q.json)" = 1 ] || no "track --json --quiet: status objects"
# dump --pid and the restore of its chain; then into a directory that
# holds images: nothing written, so no images and no digest
"$bin" dump --pid "$pid" pck --dumps 2 --interval-ms 50 --json \
	>dump-pid.json 2>dump-pid.err || no "dump --pid --json: exit $?: $(cat dump-pid.err)"
lines_ok dump-pid.json dump
jq_is dump-pid.json '.ok and .images == 2 and .has_digest and
	(.downtime_ms | type) == "number"'
"$bin" restore pck --json >restore-pid.json 2>restore-pid.err ||
	no "restore of a --pid chain: exit $?: $(cat restore-pid.err)"
lines_ok restore-pid.json restore
jq_is restore-pid.json '.ok and .kind == "process" and .images == 2 and
	.digest_status == "verified" and (.chain | length) == 2'
"$bin" dump --pid "$pid" pck --json --quiet >fail-dump-pid2.json 2>/dev/null &&
	no "dump --pid into a directory with images: exit 0"
lines_ok fail-dump-pid2.json dump
jq_is fail-dump-pid2.json '.ok == false and .images == 0 and
	.has_digest == false and .written_bytes == 0'
"$bin" restore no-such-dir --json >/dev/null 2>&1
"$bin" stat --json "$pid" >stat.json 2>stat.err ||
	no "stat --json PID: exit $?: $(cat stat.err)"
lines_ok stat.json stat
jq_is stat.json ".ok and .pid == $pid and (.mappings | length) > 0"
# probe: the whole report, and --feature (its ok is the answer)
"$bin" probe --json >probe.json 2>probe.err ||
	no "probe --json: exit $?: $(cat probe.err)"
lines_ok probe.json probe
jq_is probe.json '.ok and (.features | length) > 0 and (.remote | has("ok"))'
"$bin" probe --json --feature uffd-wp >probe-f.json 2>probe-f.err
rc=$?
lines_ok probe-f.json probe
jq_is probe-f.json "(.features | length) == 1 and
	.ok == ($rc == 0) and .features[0].ok == ($rc == 0)"

# ---- the progress bar ----------------------------------------------------
# $1 (a command line) run on a terminal: its output, both streams, in $2
on_tty() {
	TERM=xterm script -qec "$1" /dev/null >"$2" 2>&1 </dev/null
}
# a bar: a carriage return, the erasing escape and a bar with some of it
# filled (a terminal ends every line with \r\n: \r alone tells nothing)
esc=$(printf '\033')
has_esc() { grep -q "$esc" "$1"; }
has_bar() { grep -q "$(printf '\r')" "$1" && has_esc "$1" && grep -q '\[###' "$1"; }
# nothing but plain lines: no carriage return, no escape
plain() { ! grep -q "$(printf '\r')" "$1" && ! grep -q "$esc" "$1"; }

# send: the capped round 0 (32 MiB at 64 MiB/s) moves the bar
on_tty "$bin send --out tty.pmts --size 32M --max-bandwidth 64M" tty-send.out
has_bar tty-send.out || no "send on a terminal: no bar: $(od -c tty-send.out | head)"
grep -q 'round 0: ' tty-send.out || no "send on a terminal: no round line"
# the bar's text is cut between its parts, never after a comma
grep -q ",$esc" tty-send.out && no "send on a terminal: a bar ends in a comma"
on_tty "$bin send --out tty.pmts --size 32M --max-bandwidth 64M --quiet" \
	tty-send-q.out
has_esc tty-send-q.out && no "send --quiet on a terminal: a bar"
grep -q 'round ' tty-send-q.out && no "send --quiet: round lines"
grep -q 'converged: ' tty-send-q.out || no "send --quiet: no totals"
"$bin" send --out pipe.pmts --size 32M --max-bandwidth 64M >pipe-send.out \
	2>pipe-send.err || no "send to files: exit $?"
plain pipe-send.err || no "send: stderr to a file holds a bar"
plain pipe-send.out || no "send: stdout to a file holds a bar"
# dump: a bar across the images
on_tty "$bin dump tty-ck --size 8M --dumps 3 --interval-ms 100" tty-dump.out
has_bar tty-dump.out || no "dump on a terminal: no bar"
on_tty "$bin dump tty-ckq --size 8M --dumps 3 --interval-ms 100 --quiet" \
	tty-dump-q.out
has_esc tty-dump-q.out && no "dump --quiet on a terminal: a bar"
grep -q 'image ' tty-dump-q.out && no "dump --quiet: image lines"
"$bin" dump pipe-ck --size 8M --dumps 3 --interval-ms 100 >pipe-dump.out \
	2>pipe-dump.err || no "dump to files: exit $?"
plain pipe-dump.err && plain pipe-dump.out || no "dump: a bar in a file"
# track: a bar across the intervals
on_tty "$bin track $pid --count 3 --interval-ms 100" tty-track.out
has_bar tty-track.out || no "track on a terminal: no bar"
on_tty "$bin track $pid --count 3 --interval-ms 100 --quiet" tty-track-q.out
has_esc tty-track-q.out && no "track --quiet on a terminal: a bar"
"$bin" track "$pid" --count 2 --interval-ms 100 >pipe-track.out \
	2>pipe-track.err || no "track to files: exit $?"
plain pipe-track.err || no "track: stderr to a file holds a bar"
# recv and restore: a bar on a terminal, none with --quiet or in a file
on_tty "$bin recv tty.pmts" tty-recv.out
has_esc tty-recv.out || no "recv on a terminal: no bar"
on_tty "$bin recv tty.pmts --quiet" tty-recv-q.out
has_esc tty-recv-q.out && no "recv --quiet: a bar"
"$bin" recv tty.pmts >pipe-recv.out 2>pipe-recv.err || no "recv: exit $?"
plain pipe-recv.err || no "recv: stderr to a file holds a bar"
on_tty "$bin restore tty-ck" tty-restore.out
has_esc tty-restore.out || no "restore on a terminal: no bar"
on_tty "$bin restore tty-ck --quiet" tty-restore-q.out
has_esc tty-restore-q.out && no "restore --quiet: a bar"

[ $fail = 0 ] && echo "cli_json: all passed"
exit $fail
