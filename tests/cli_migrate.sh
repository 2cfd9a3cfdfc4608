#!/bin/sh
# SPDX-License-Identifier: MIT
# pmtrack send/recv/dump/restore: a live migration over TCP loopback with
# the received image saved and checked again, a stream through a pipe,
# a checkpoint chain and its restore, truncated and corrupted input, and
# usage errors; the --json documents are read with jq.  Every step that
# fails says so; the exit status is 1 if any did.
#   cli_migrate.sh PMTRACK_BINARY WORK_DIR GOLDEN_DIR TCP_PEER
set -u
bin=$1 work=$2 golden=$3 peer=$4
fail=0
no() { echo "FAIL: $*"; fail=1; }
# the first line of a file that starts with $2, or nothing
line() { grep "^$2" "$1" | head -n 1; }
. "$(dirname "$0")/json_check.sh" # jq: json_ok, jq_is
# the members every receiver's report has, of a complete, verified copy
rx_ok='.state == "complete" and .digest_verified == true and
	.digest_status == "verified" and .error == null and .ok and .streams >= 1 and
	(.stream_id | test("^[0-9a-f]{32}$")) and (.apply_ms | type) == "number"
	and .type == "result" and
	all(.regions[]; .pages * $ps == .length_bytes and
	(.start | test("^0x[0-9a-f]+$")))'

rm -rf "$work" && mkdir -p "$work" || exit 1
cd "$work" || exit 1

# ---- 1. live migration over TCP, image saved by the receiver ----------
"$bin" recv --listen 127.0.0.1:0 --port-file port --image img \
	>recv.out 2>recv.err &
rpid=$!
i=0
while [ ! -s port ] && [ $i -lt 100 ] && kill -0 $rpid 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
if [ -s port ]; then
	"$bin" send --to "127.0.0.1:$(cat port)" --size 32M --writers 2 \
		--rate 2000 >send.out 2>send.err ||
		no "send: exit $?: $(cat send.err)"
else
	no "recv wrote no port file in 10 s: $(cat recv.err)"
fi
# the receiver ends when the sender closes; never wait more than 30 s
(
	i=0
	while [ $i -lt 150 ] && [ ! -e recv.done ]; do
		sleep 0.2
		i=$((i + 1))
	done
	[ -e recv.done ] || kill $rpid
) >/dev/null 2>&1 &
wpid=$!
wait $rpid
rc=$?
touch recv.done
wait $wpid
[ $rc -eq 0 ] || no "recv: exit $rc: $(cat recv.err)"
grep -q '^listening on 127\.0\.0\.1:' recv.out || no "recv: listening line"
grep -q '^connection from 127\.0\.0\.1:' recv.out || no "recv: peer line"
grep -q '^state: complete$' recv.out || no "recv: state"
grep -q '^digest: verified$' recv.out || no "recv: digest not verified"
grep -q '^image: img$' recv.out || no "recv: image line"
grep -q '^round 0: [0-9]* pages' send.out || no "send: round 0 line"
grep -q '^round [0-9]* (stop-and-copy): ' send.out || no "send: final round"
grep -q '^downtime: ' send.out || no "send: downtime line"
grep -q '^converged: ' send.out || no "send: converged line"
# the return path: the receiver answered, the sender heard it
grep -q '^receiver: applied and verified the stream' send.out ||
	no "send: the receiver's answer: $(cat send.out)"
grep -q '^answer: sent to the sender$' recv.out || no "recv: answer line"
# both sides count the same pages and bytes
for k in 'pages: ' 'bytes: ' 'rounds: '; do
	s=$(line send.out "$k") r=$(line recv.out "$k")
	[ -n "$s" ] && [ "$s" = "$r" ] || no "send '$s' != recv '$r'"
done
[ -f img ] || no "image: img missing"
ls img.partial* >/dev/null 2>&1 && no "image: img.partial-* left behind"
imgsize=$(wc -c <img 2>/dev/null || echo 0)
[ "bytes: $imgsize (" = "$(line recv.out 'bytes: ' | cut -d'(' -f1)(" ] ||
	no "image is $imgsize bytes, recv says $(line recv.out 'bytes: ')"

"$bin" inspect img >inspect.out 2>&1 || no "inspect img: exit $?"
grep -q '^digest: verified$' inspect.out || no "inspect img: digest"
"$bin" recv img >recv-file.out 2>recv-file.err ||
	no "recv img: exit $?: $(cat recv-file.err)"
grep -q '^digest: verified$' recv-file.out || no "recv img: digest"
[ "$(line recv-file.out 'pages: ')" = "$(line recv.out 'pages: ')" ] ||
	no "recv img: pages differ from the live receive"
"$bin" recv --json - <img >recv.json || no "recv --json -: exit $?"
grep -q '"digest_verified":true' recv.json || no "recv json: digest"
grep -q '"error":null' recv.json || no "recv json: error member"
json_ok recv.json
ps=$(getconf PAGESIZE)
jq_is recv.json ".page_size_bytes as \$ps | $rx_ok"
jq_is recv.json '.source == "-" and .peer == null and .image == null and
	.answer == null and .streams == 1'
jq_is recv.json '.regions == [{index: 0, id: 1, start: .regions[0].start,
	length_bytes: 33554432, pages: (33554432 / .page_size_bytes),
	name: "guest-ram"}]'
# the same pages and bytes as the live receive's text
pages=$(line recv.out 'pages: ' | cut -d' ' -f2)
zero=$(line recv.out 'pages: ' | sed 's/.*(\([0-9]*\) zero)/\1/')
jq_is recv.json ".pages == ${pages:-0} and .zero_pages == ${zero:-0} and
	.bytes == $imgsize"

# ---- 2. a stream file, and a pipe --------------------------------------
"$bin" send --out s.pmts --size 8M --level 3 --quiet >send2.out 2>&1 ||
	no "send --out: exit $?: $(cat send2.out)"
[ -f s.pmts ] || no "send --out: file"
ls s.pmts.partial* >/dev/null 2>&1 && no "send --out: s.pmts.partial-* left"
grep -q '^round ' send2.out && no "send --quiet: printed rounds"
grep -q '^receiver: none: the stream was written, not verified' send2.out ||
	no "send --out: says what a file means: $(cat send2.out)"
"$bin" recv s.pmts >recv2.out 2>&1 || no "recv s.pmts: exit $?"
# a few pages converge at once, whatever bandwidth tiny rounds show
"$bin" send --out small.pmts --size 64K --quiet >small.out 2>&1 ||
	no "send --size 64K: exit $?: $(cat small.out)"
grep -q '^converged: yes$' small.out || no "send --size 64K: $(cat small.out)"
rounds=$(line small.out 'rounds: ' | cut -d' ' -f2)
[ "${rounds:-99}" -le 4 ] || no "send --size 64K: $rounds rounds"
grep -q '^digest: verified$' recv2.out || no "recv s.pmts: digest"
{
	"$bin" send --out - --size 8M --writers 1 --rate 1000 2>pipe-send.err
	echo $? >pipe-send.rc
} | "$bin" recv - >pipe-recv.out 2>pipe-recv.err ||
	no "recv from a pipe: exit $?: $(cat pipe-recv.err)"
[ "$(cat pipe-send.rc)" = 0 ] || no "send --out -: $(cat pipe-send.err)"
grep -q '^round 0: ' pipe-send.err || no "send --out -: report not on stderr"
grep -q '^digest: verified$' pipe-recv.out || no "recv -: digest"

# pages are the stream's: the golden streams have 1 KiB pages
"$bin" recv "$golden/raw-v1.pmts" >golden.out 2>&1 ||
	no "recv raw-v1.pmts: exit $?: $(cat golden.out)"
grep -q '^page size: 1 KiB$' golden.out || no "recv raw-v1: page size line"
grep -Eq '^ +2 +114 +0x0000000300000000 +3 KiB +3  -$' golden.out ||
	no "recv raw-v1: region 2 is 3 pages: $(grep 0x00000003 golden.out)"
"$bin" recv --json "$golden/raw-v1.pmts" >golden.json 2>&1 ||
	no "recv --json raw-v1.pmts: exit $?"
grep -q '"page_size_bytes":1024,' golden.json || no "recv json: page_size"
grep -q '"length_bytes":3072,"pages":3,' golden.json || no "recv json: pages"
json_ok golden.json
jq_is golden.json ".page_size_bytes as \$ps | $rx_ok"
jq_is golden.json '.page_size_bytes == 1024 and .regions[2] == {index: 2,
	id: 114, start: "0x300000000", length_bytes: 3072, pages: 3,
	name: null} and
	.regions[1].name == "odd" and .pages == 67 and .zero_pages == 12'
# a path that is not UTF-8 is still UTF-8 in the JSON: each such byte is
# U+0080..U+00FF
cp "$golden/raw-v1.pmts" "$(printf 'bad-\377\376.pmts')"
"$bin" recv --json "$(printf 'bad-\377\376.pmts')" >badname.json ||
	no "recv --json of a file named in Latin-1: exit $?"
json_ok badname.json
jq_is badname.json '.source == "bad-\u00ff\u00fe.pmts"'

# ---- the return path and timeouts: peers that are not ours ----------------
wait_file() {
	i=0
	while [ ! -s "$1" ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ -s "$1" ]
}
# a sink that reads everything and never answers: no success
rm -f sinkport
"$peer" sink sinkport &
spid=$!
if wait_file sinkport; then
	"$bin" send --to "127.0.0.1:$(cat sinkport)" --size 4M --quiet \
		--timeout-ms 2000 >sink.out 2>&1
	rc=$?
	[ $rc -eq 1 ] || no "send to a sink: exit $rc, want 1: $(cat sink.out)"
	grep -q 'no progress and no answer for 2000 ms' sink.out ||
		no "send to a sink: message: $(cat sink.out)"
	grep -q 'runs on here' sink.out || no "send to a sink: resumed?"
	grep -q '^converged' sink.out && no "send to a sink: printed totals"
else
	no "tcp_peer sink wrote no port"
fi
kill $spid 2>/dev/null
wait $spid 2>/dev/null
# a peer that connects and says nothing does not hold recv for ever
rm -f idleport
"$bin" recv --listen 127.0.0.1:0 --port-file idleport --timeout-ms 1000 \
	>idle.out 2>idle.err &
rpid=$!
if wait_file idleport; then
	"$peer" idle "$(cat idleport)" 30 &
	ipid=$!
	wait $rpid
	rc=$?
	[ $rc -eq 1 ] || no "recv from a silent peer: exit $rc, want 1"
	grep -q 'nothing received for 1000 ms (--timeout-ms)' idle.err ||
		no "recv from a silent peer: message: $(cat idle.err)"
	kill $ipid 2>/dev/null
	wait $ipid 2>/dev/null
else
	no "recv --port-file idleport: no port"
	kill $rpid 2>/dev/null
fi
# nobody listening: connect fails at once
"$bin" send --to 127.0.0.1:1 --size 4M --quiet >refused.out 2>&1 &&
	no "send to a closed port: exit 0"
grep -q 'cannot connect' refused.out || no "send to a closed port: message"

# ---- 3. checkpoints ----------------------------------------------------
"$bin" dump ck --size 16M --dumps 3 --interval-ms 100 >dump.out 2>dump.err ||
	no "dump: exit $?: $(cat dump.err)"
for n in 0 1 2; do
	[ -f ck/00000$n.pmts ] || no "dump: no image $n"
done
[ "$(grep -c '^image [0-9] (0000[0-9][0-9].pmts)' dump.out)" = 3 ] ||
	no "dump: want 3 image lines: $(cat dump.out)"
grep -q '^image 0 (000000.pmts): .*digest yes$' dump.out ||
	no "dump: image 0 is live, with the state digest"
grep -q '^image 2 (000002.pmts) stopped: .*digest yes, audited$' dump.out ||
	no "dump: image 2 is stopped and audited"
"$bin" restore ck >restore.out 2>restore.err ||
	no "restore: exit $?: $(cat restore.err)"
grep -q '^images: 3 ' restore.out || no "restore: images line"
grep -q '^digest: verified$' restore.out || no "restore: digest"
"$bin" restore --json ck >restore.json || no "restore --json: exit $?"
grep -q '"digest_verified":true' restore.json || no "restore json: digest"
json_ok restore.json
jq_is restore.json ".page_size_bytes as \$ps | $rx_ok"
ckbytes=$(cat ck/00000[0-2].pmts | wc -c)
jq_is restore.json ".dir == \"ck\" and .images == 3 and .streams == 3 and
	.image_bytes == $ckbytes and .bytes == $ckbytes and
	(has(\"source\") | not) and (has(\"image\") | not)"

# image 0 is a live pre-dump, verified by the state digest it carries
"$bin" restore ck --upto 0 >upto0.out 2>upto0.err ||
	no "restore --upto 0: exit $?: $(cat upto0.err)"
grep -q '^digest: verified$' upto0.out || no "restore --upto 0: digest line"
"$bin" inspect ck/000001.pmts >inspect1.out 2>&1 ||
	no "inspect of image 1: exit $?"
grep -q '^digest: not checked (the state digest continues a parent stream)$' \
	inspect1.out || no "inspect of image 1: $(line inspect1.out digest)"
# a chain of one stopped image is verified at 0
"$bin" dump ck1 --size 4M --dumps 1 >/dev/null 2>&1 || no "dump --dumps 1"
"$bin" restore ck1 --upto 0 >upto0b.out 2>&1 ||
	no "restore ck1 --upto 0: exit $?: $(cat upto0b.out)"
grep -q '^digest: verified$' upto0b.out || no "restore ck1: digest"

"$bin" dump ck --size 4M --dumps 1 >/dev/null 2>dump2.err
rc=$?
[ $rc -eq 1 ] || no "dump into a used DIR: exit $rc, want 1"
grep -q 'already holds' dump2.err || no "dump into a used DIR: message"
"$bin" restore ck --upto 7 >upto7.out 2>upto7.err
rc=$?
[ $rc -eq 1 ] || no "restore --upto 7: exit $rc, want 1"
grep -q 'no image 000003.pmts' upto7.err || no "restore --upto 7: message"
grep -q '^state: complete up to image 000002.pmts only (image 000003.pmts was not applied)$' \
	upto7.out || no "restore --upto 7: state line: $(line upto7.out state)"
grep -q '^digest: not verified (the restore failed)$' upto7.out ||
	no "restore --upto 7: digest line: $(line upto7.out digest)"
"$bin" restore --json ck --upto 7 >upto7.json 2>/dev/null
rc=$?
[ $rc -eq 1 ] || no "restore --json --upto 7: exit $rc, want 1"
json_ok upto7.json
jq_is upto7.json '.images == 3 and .state == "complete" and
	.digest_verified == false and
	.digest_status == "failed" and
	.ok == false and (.error | length > 0) and
	.error_reason == null and .errno == 2'
# a directory named in Latin-1
"$bin" dump "$(printf 'ck-\377')" --size 4M --dumps 1 >/dev/null 2>&1 ||
	no "dump into a directory named in Latin-1: exit $?"
"$bin" restore --json "$(printf 'ck-\377')" >ckname.json ||
	no "restore --json of a directory named in Latin-1: exit $?"
json_ok ckname.json
jq_is ckname.json '.dir == "ck-\u00ff" and .images == 1 and .digest_verified'

# an empty later image writes nothing: the memory is image 1's
cp ck/000002.pmts keep2.pmts
: >ck/000002.pmts
"$bin" restore ck >empty2.out 2>empty2.err
rc=$?
[ $rc -eq 1 ] || no "restore with an empty image 2: exit $rc, want 1"
grep -q '^state: complete up to image 000001.pmts only (image 000002.pmts was not applied)$' \
	empty2.out || no "restore empty image 2: $(line empty2.out state)"
grep -q '^digest: not verified (the restore failed)$' empty2.out ||
	no "restore empty image 2: $(line empty2.out digest)"
mv keep2.pmts ck/000002.pmts
size=$(wc -c <ck/000002.pmts)
head -c $((size / 2)) ck/000002.pmts >cut2 && mv cut2 ck/000002.pmts
"$bin" restore ck >cut-restore.out 2>cut-restore.err
rc=$?
[ $rc -eq 1 ] || no "restore of a truncated chain: exit $rc, want 1"
grep -q '000002.pmts: .*(truncated)' cut-restore.err ||
	no "restore truncated: message: $(cat cut-restore.err)"
grep -q '^state: partial$' cut-restore.out || no "restore truncated: state"

# ---- 4. truncated and corrupted streams --------------------------------
head -c 1000000 img >cut.pmts
"$bin" recv cut.pmts --image cutimg >/dev/null 2>cut.err
rc=$?
[ $rc -eq 1 ] || no "recv of a truncated file: exit $rc, want 1"
grep -q '(truncated)' cut.err || no "recv truncated: message: $(cat cut.err)"
[ ! -e cutimg ] && ! ls cutimg.partial* >/dev/null 2>&1 ||
	no "recv truncated: the image was kept"
"$bin" recv --json cut.pmts >cut.json 2>/dev/null
grep -q '"error_reason":"truncated"' cut.json || no "recv json: error"
json_ok cut.json
jq_is cut.json '.state == "partial" and .digest_verified == false and
	.digest_status == "failed" and .error_reason == "truncated" and
	.errno > 0 and (.error | length > 0) and .ok == false and .image == null
	and .source == "cut.pmts" and .bytes == 1000000'
cp img bad.pmts
printf 'X' | dd of=bad.pmts bs=1 seek=300000 conv=notrunc 2>/dev/null
"$bin" recv bad.pmts >/dev/null 2>bad.err
rc=$?
[ $rc -eq 1 ] || no "recv of a corrupted file: exit $rc, want 1"
grep -q '(checksum)' bad.err || no "recv corrupted: message: $(cat bad.err)"
"$bin" recv ck/000001.pmts >/dev/null 2>parent.err
rc=$?
[ $rc -eq 1 ] || no "recv of an incremental image: exit $rc, want 1"
grep -q 'parent' parent.err || no "recv incremental: message"
"$bin" recv --allow-unverified ck/000000.pmts >/dev/null 2>&1 ||
	no "recv --allow-unverified of a live pre-dump: exit $?"

# ---- 5. usage ------------------------------------------------------------
usage() {
	"$bin" "$@" >/dev/null 2>usage.err
	rc=$?
	[ $rc -eq 2 ] || no "'$*': exit $rc, want 2"
	# the message, then one hint line instead of the whole usage
	[ "$(wc -l <usage.err)" -eq 2 ] &&
		grep -q "^pmtrack $1: try 'pmtrack help $1'\$" usage.err ||
		no "'$*': not a message and the hint: $(cat usage.err)"
}
usage recv
usage recv a b
usage recv --listen 99999
usage recv --listen 0 img
usage recv --bogus img
usage send
usage send --to localhost
usage send --to 127.0.0.1:1 --out x
usage send --out x --size 12X
usage send --out x --size -1
usage send --out x --writers 65
usage send --out x --rate fast
usage send --out x --level 99
usage send --out x --downtime-ms
usage send --out x --downtime 300
usage send --out x --timeout 60
usage send --out x --size 64k
usage send --out x --size 64KB
usage send --out x --rate 10K
usage send --out x --full-digest --no-verify
usage send --out - --json
usage recv --timeout 1 img
usage dump
usage dump d --dumps 0
usage dump d --interval-ms 1.5
usage dump d --interval 100
usage dump d --no-digest
usage dump d --no-verify
usage restore
usage restore ck --upto x
[ ! -e x ] && [ ! -e d ] || no "a usage error created a file"
# a bad value as the examples say it; the range of a size in IEC units
"$bin" send --out x --size 64k 2>usage.err
grep -q "^pmtrack send: bad value for --size: '64k' (want a size" usage.err ||
	no "--size 64k: $(cat usage.err)"
"$bin" send --out x --size 128T 2>usage.err
grep -q "^pmtrack send: bad value for --size: '128T' (want a size from 1 B to 64 TiB)\$" \
	usage.err || no "--size 128T: $(cat usage.err)"
"$bin" dump d --dumps 0 2>usage.err
grep -q "^pmtrack dump: bad value for --dumps: '0' (want a whole number from 1 to 1000000)\$" \
	usage.err || no "--dumps 0: $(cat usage.err)"
"$bin" send --out x --bogus 2>usage.err
grep -q "^pmtrack send: unknown option '--bogus'\$" usage.err ||
	no "--bogus: $(cat usage.err)"
"$bin" stat 0 extra 2>usage.err
grep -q "^pmtrack stat: unexpected argument 'extra'\$" usage.err ||
	no "stat 0 extra: $(cat usage.err)"
"$bin" help send | grep -q 'rounded up to whole pages' ||
	no "help send: --size does not say it is rounded up to whole pages"
"$bin" help dump | grep -q 'rounded up to whole pages' ||
	no "help dump: --size does not say it is rounded up to whole pages"
"$bin" --help >help.out || no "--help: exit $?"
for c in send recv dump restore; do
	grep -q "^  $c " help.out || no "--help does not list $c"
	"$bin" help $c | grep -q "^usage: pmtrack $c" || no "help $c"
done

[ $fail -eq 0 ] && echo "cli_migrate: all ok"
exit $fail
