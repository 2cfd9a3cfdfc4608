#!/bin/sh
# SPDX-License-Identifier: MIT
# What the pmtrack tool does with the paths it writes (send --out, recv
# --image, recv --port-file): a regular file is replaced once complete; a
# character device, a FIFO or a Unix socket is written in place and stays
# what it was; a symlink is followed, a dangling one refused; a directory
# is refused before any work starts.  The devices are made with mknod in a
# scratch directory (root only; exit 77 otherwise).
#   cli_outpath.sh PMTRACK_BINARY WORK_DIR
set -u
bin=$1 work=$2
fail=0
no() { echo "FAIL: $*"; fail=1; }

rm -rf "$work" && mkdir -p "$work" || exit 1
cd "$work" || exit 1
if ! mknod null c 1 3 2>mknod.err || ! mknod full c 1 7 2>>mknod.err; then
	echo "SKIP: cannot make device nodes here: $(cat mknod.err)"
	exit 77
fi
kind() {
	if [ -L "$1" ]; then echo symlink
	elif [ -c "$1" ]; then echo chardev
	elif [ -p "$1" ]; then echo fifo
	elif [ -S "$1" ]; then echo socket
	elif [ -d "$1" ]; then echo dir
	elif [ -f "$1" ]; then echo file
	else echo none
	fi
}
expect_kind() {
	[ "$(kind "$1")" = "$2" ] || no "$3: $1 is now a $(kind "$1"), was a $2"
}
leftovers() {
	ls -a | grep -q 'partial' && no "$1: a partial file was left: $(ls -a)"
}

# a write error on a device is a failure, and the device stays a device
"$bin" send --out full --size 4M --quiet >full.out 2>&1
rc=$?
[ $rc -eq 1 ] || no "send --out full: exit $rc, want 1: $(cat full.out)"
grep -q 'No space left on device' full.out ||
	no "send --out full: message: $(cat full.out)"
grep -q '^converged' full.out && no "send --out full: reported a result"
expect_kind full chardev "send --out full"
leftovers "send --out full"

"$bin" send --out null --size 4M --quiet >null.out 2>&1 ||
	no "send --out null: exit $?: $(cat null.out)"
expect_kind null chardev "send --out null"
leftovers "send --out null"

# a FIFO is written in place: the reader gets the stream
mkfifo fifo
# (every FIFO end has a timeout: if the FIFO were replaced, its other end
# would wait for ever)
timeout 60 sh -c 'exec "$0" recv - <fifo' "$bin" >fifo-recv.out 2>&1 &
rpid=$!
timeout 60 "$bin" send --out fifo --size 4M --quiet >fifo.out 2>&1 ||
	no "send --out fifo: exit $?: $(cat fifo.out)"
wait $rpid || no "recv from the FIFO: exit $?: $(cat fifo-recv.out)"
grep -q '^digest: verified$' fifo-recv.out || no "recv from the FIFO: digest"
expect_kind fifo fifo "send --out fifo"

# a symlink to a file: the file is replaced, the symlink stays
echo old >target
ln -s target link
"$bin" send --out link --size 4M --quiet >link.out 2>&1 ||
	no "send --out link: exit $?: $(cat link.out)"
expect_kind link symlink "send --out link"
"$bin" recv target >link-recv.out 2>&1 ||
	no "the symlink's target is not the stream: $(cat link-recv.out)"
leftovers "send --out link"

# a dangling symlink is refused, and nothing is created behind it
ln -s missing dangling
"$bin" send --out dangling --size 4M --quiet >dangling.out 2>&1
rc=$?
[ $rc -eq 1 ] || no "send --out dangling: exit $rc, want 1"
grep -q 'symlink' dangling.out || no "send --out dangling: $(cat dangling.out)"
expect_kind dangling symlink "send --out dangling"
[ -e missing ] && no "send --out dangling created its target"

# a directory is refused before the workload or the migration starts
mkdir dir
"$bin" send --out dir --size 1G --quiet >dir.out 2>&1
rc=$?
[ $rc -eq 1 ] || no "send --out dir: exit $rc, want 1"
grep -q 'is a directory' dir.out || no "send --out dir: $(cat dir.out)"
grep -q '^workload' dir.out && no "send --out dir: started the workload"
expect_kind dir dir "send --out dir"

# recv --image: the same rules
"$bin" send --out s.pmts --size 4M --quiet >/dev/null 2>&1 || no "send s.pmts"
"$bin" recv s.pmts --image null >img-null.out 2>&1 ||
	no "recv --image null: exit $?: $(cat img-null.out)"
expect_kind null chardev "recv --image null"
"$bin" recv s.pmts --image full >img-full.out 2>&1
rc=$?
[ $rc -eq 1 ] || no "recv --image full: exit $rc, want 1"
expect_kind full chardev "recv --image full"
timeout 60 cat fifo >img-fifo.pmts &
cpid=$!
timeout 60 "$bin" recv s.pmts --image fifo >img-fifo.out 2>&1 ||
	no "recv --image fifo: exit $?: $(cat img-fifo.out)"
wait $cpid
cmp -s s.pmts img-fifo.pmts || no "recv --image fifo: the reader got other bytes"
expect_kind fifo fifo "recv --image fifo"
"$bin" recv s.pmts --image link >img-link.out 2>&1 ||
	no "recv --image link: exit $?: $(cat img-link.out)"
expect_kind link symlink "recv --image link"
cmp -s s.pmts target || no "recv --image link: the target is not the image"
"$bin" recv s.pmts --image dangling >/dev/null 2>&1 &&
	no "recv --image dangling: exit 0"
expect_kind dangling symlink "recv --image dangling"
# refused before reading: stdin is never read
"$bin" recv - --image dir </dev/zero >img-dir.out 2>&1
rc=$?
[ $rc -eq 1 ] || no "recv --image dir: exit $rc, want 1"
grep -q 'is a directory' img-dir.out || no "recv --image dir: $(cat img-dir.out)"
leftovers "recv --image"

# --port-file: a FIFO is written in place; a directory is refused before
# listening
timeout 60 cat fifo >port &
cpid=$!
timeout 60 "$bin" recv --listen 127.0.0.1:0 --port-file fifo >pf.out 2>&1 &
rpid=$!
wait $cpid
[ -s port ] || no "--port-file fifo: the reader got no port"
if [ -s port ]; then
	"$bin" send --to "127.0.0.1:$(cat port)" --size 4M --quiet \
		>pf-send.out 2>&1 || no "send to the port file's port: exit $?"
fi
wait $rpid || no "recv --port-file fifo: exit $?: $(cat pf.out)"
expect_kind fifo fifo "--port-file fifo"
"$bin" recv --listen 127.0.0.1:0 --port-file dir >pfd.out 2>&1
rc=$?
[ $rc -eq 1 ] || no "--port-file dir: exit $rc, want 1"
grep -q '^listening' pfd.out && no "--port-file dir: listened first"
expect_kind dir dir "--port-file dir"

[ $fail -eq 0 ] && echo "cli_outpath: all ok"
exit $fail
