#!/bin/sh
# SPDX-License-Identifier: MIT
# pmtrack inspect on the golden streams: text, JSON, stdin, a truncated and
# a corrupted stream, and usage errors.
#   inspect.sh PMTRACK_BINARY GOLDEN_DIR WORK_DIR
set -u
bin=$1 golden=$2 work=$3
fail=0
no() { echo "FAIL: $*"; fail=1; }

rm -rf "$work" && mkdir -p "$work"
for f in raw-v1 zstd-v1; do
	"$bin" inspect "$golden/$f.pmts" >"$work/$f.txt" || no "$f: exit $?"
	grep -q '^digest: verified$' "$work/$f.txt" || no "$f: digest not verified"
	grep -q '^end: 3 rounds, 55 pages, 12 zero pages' "$work/$f.txt" ||
		no "$f: end line"
done
"$bin" inspect "$golden/parent-v1.pmts" | grep -q 'not checked (the stream has a parent)' ||
	no "parent: digest line"
"$bin" inspect --json --batches - <"$golden/raw-v1.pmts" >"$work/raw.json" ||
	no "json from stdin: exit $?"
grep -q '"digest_verified":true' "$work/raw.json" || no "json: digest_verified"
grep -q '"batches":\[{' "$work/raw.json" || no "json: batches"
if command -v python3 >/dev/null 2>&1; then
	python3 -m json.tool "$work/raw.json" >/dev/null || no "json does not parse"
fi

head -c 20000 "$golden/raw-v1.pmts" >"$work/cut.pmts"
"$bin" inspect "$work/cut.pmts" >"$work/cut.txt" 2>"$work/cut.err"
[ $? -eq 1 ] || no "truncated: exit status"
grep -q '(truncated)' "$work/cut.err" || no "truncated: message: $(cat "$work/cut.err")"
grep -q '^round 0' "$work/cut.txt" || no "truncated: decoded part not shown"
"$bin" inspect --json "$work/cut.pmts" 2>/dev/null | grep -q '"error":{"reason":"truncated"' ||
	no "truncated: json error member"

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
