#!/bin/sh
# SPDX-License-Identifier: MIT
# pmtrack inspect on the golden streams: text, JSON (read with jq), stdin,
# a truncated and a corrupted stream, and usage errors.
#   inspect.sh PMTRACK_BINARY GOLDEN_DIR WORK_DIR
set -u
bin=$1 golden=$2 work=$3
fail=0
no() { echo "FAIL: $*"; fail=1; }
. "$(dirname "$0")/json_check.sh" # jq: json_ok, jq_is

rm -rf "$work" && mkdir -p "$work"
for f in raw-v1 zstd-v1; do
	"$bin" inspect "$golden/$f.pmts" >"$work/$f.txt" || no "$f: exit $?"
	grep -q '^digest: verified$' "$work/$f.txt" || no "$f: digest not verified"
	grep -q '^end: 3 rounds, 67 pages (12 zero)' "$work/$f.txt" ||
		no "$f: end line"
done
"$bin" inspect "$golden/parent-v1.pmts" | grep -q 'not checked (the stream has a parent)' ||
	no "parent: digest line"
"$bin" inspect --json --batches - <"$golden/raw-v1.pmts" >"$work/raw.json" ||
	no "json from stdin: exit $?"
json_ok "$work/raw.json"
grep -q '"digest_verified":true' "$work/raw.json" || no "json: digest_verified"
grep -q '"batches":\[{' "$work/raw.json" || no "json: batches"
jq_is "$work/raw.json" '.version == 1 and .header.page_size_bytes == 1024 and
	.header.producer == "golden" and .header.parent_id == null and
	(.header.stream_id | test("^[0-9a-f]{32}$"))'
jq_is "$work/raw.json" '[.header.regions[] | .pages * 1024 == .length_bytes] |
	length == 3 and all'
jq_is "$work/raw.json" '.header.regions[1].name == "odd" and
	.header.regions[0].name == null and .header.regions[2].pages == 3'
jq_is "$work/raw.json" '.stream_end == {rounds: 3, pages: 67, zero_pages: 12,
	digest: "092d4e3ce9ae3c162d7375614bf0edff", state_digest: null}'
# the same stream with END's state digest: checked from the pages decoded
"$bin" inspect "$golden/state-v1.pmts" >"$work/state.txt" || no "state: exit $?"
grep -q '^end: 3 rounds, 67 pages (12 zero), digest 092d4e3ce9ae3c162d7375614bf0edff, state [0-9a-f]\{32\}$' \
	"$work/state.txt" || no "state: end line: $(grep '^end' "$work/state.txt")"
grep -q '^digest: verified$' "$work/state.txt" || no "state: not verified"
# sizes in IEC units: the page size, a region's length, the totals
grep -q '^page size [0-9.]* [KMG]*i*B$' "$work/state.txt" &&
	grep -q '^totals: [0-9]* wire bytes ([0-9.]* [KMG]*i*B), ' "$work/state.txt" ||
	no "state: a size without IEC units: $(cat "$work/state.txt")"
"$bin" inspect --json "$golden/state-v1.pmts" >"$work/state.json" ||
	no "state json: exit $?"
jq_is "$work/state.json" '(.stream_end.state_digest | test("^[0-9a-f]{32}$")) and
	.digest_verified == true'
jq_is "$work/raw.json" '.digest_verified == true and
	.digest_reason == null and .ok and .error == null and
	.skipped == 0 and .records == 16'
# the rounds and the batch list say the same as END and as the text
jq_is "$work/raw.json" '[.rounds[].round] == [0, 1, 2] and
	([.rounds[].pages] | add) == .stream_end.pages and
	([.batches[].pages] | add) == .stream_end.pages - .stream_end.zero_pages and
	([.rounds[].zero_pages] | add) == .stream_end.zero_pages and
	all(.rounds[]; .pages == .batch_pages + .zero_pages) and
	([.rounds[].batches] | add) == (.batches | length) and
	all(.rounds[]; .ratio == 1 and .zstd == 0 and .raw == .batches)'
jq_is "$work/raw.json" 'all(.batches[]; .codec == "raw" and .runs >= 1 and
	.payload_bytes == .pages * 1024)'
wire=$(sed -n 's/^totals: \([0-9]*\) wire bytes.*/\1/p' "$work/raw-v1.txt")
jq_is "$work/raw.json" ".wire_bytes == ${wire:-0}"
"$bin" inspect --json "$golden/zstd-v1.pmts" >"$work/zstd.json" ||
	no "json zstd-v1: exit $?"
json_ok "$work/zstd.json"
jq_is "$work/zstd.json" '.batches == null and .digest_verified and
	all(.rounds[]; .zstd > 0 and .ratio > 1 and .raw_bytes > .payload_bytes)'
"$bin" inspect --json "$golden/parent-v1.pmts" >"$work/parent.json" ||
	no "json parent-v1: exit $?"
json_ok "$work/parent.json"
jq_is "$work/parent.json" '.digest_verified == false and
	.digest_reason == "the stream has a parent" and
	(.header.parent_id | test("^[0-9a-f]{32}$"))'

head -c 20000 "$golden/raw-v1.pmts" >"$work/cut.pmts"
"$bin" inspect "$work/cut.pmts" >"$work/cut.txt" 2>"$work/cut.err"
[ $? -eq 1 ] || no "truncated: exit status"
grep -q '(truncated)' "$work/cut.err" || no "truncated: message: $(cat "$work/cut.err")"
grep -q '^round 0' "$work/cut.txt" || no "truncated: decoded part not shown"
"$bin" inspect --json "$work/cut.pmts" >"$work/cut.json" 2>/dev/null
[ $? -eq 1 ] || no "truncated json: exit status"
grep -q '"error_reason":"truncated"' "$work/cut.json" ||
	no "truncated: json error member"
json_ok "$work/cut.json"
jq_is "$work/cut.json" '.cmd == "inspect" and .type == "result" and
	.ok == false and .error_reason == "truncated" and
	(.error | length > 0) and .stream_end == null and
	.digest_verified == false and .digest_reason == "no END record" and
	(.rounds | length) >= 1'
# nothing decoded: the document is still whole
: >"$work/empty.pmts"
"$bin" inspect --json "$work/empty.pmts" >"$work/empty.json" 2>/dev/null
[ $? -eq 1 ] || no "empty json: exit status"
json_ok "$work/empty.json"
jq_is "$work/empty.json" '.version == null and .header == null and
	.rounds == [] and .stream_end == null and .error_reason != null'

cp "$golden/raw-v1.pmts" "$work/bad.pmts"
printf 'X' | dd of="$work/bad.pmts" bs=1 seek=30000 conv=notrunc 2>/dev/null
"$bin" inspect "$work/bad.pmts" >/dev/null 2>"$work/bad.err"
[ $? -eq 1 ] || no "corrupt: exit status"
grep -q 'checksum' "$work/bad.err" || no "corrupt: message: $(cat "$work/bad.err")"

"$bin" inspect >/dev/null 2>&1
[ $? -eq 2 ] || no "no file: want exit 2"
"$bin" inspect --bogus x >/dev/null 2>&1
[ $? -eq 2 ] || no "bad option: want exit 2"
"$bin" nosuchcommand >/dev/null 2>&1
[ $? -eq 2 ] || no "unknown command: want exit 2"
"$bin" --help | grep -q inspect || no "help lists inspect"

[ $fail -eq 0 ] && echo "inspect: all ok"
exit $fail
