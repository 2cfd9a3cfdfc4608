#!/bin/sh
# SPDX-License-Identifier: MIT
# The command lines of the examples, as docs/cli.md has them: --help (and
# -h) print the usage on stdout and exit 0, listing every option, each
# option of docs/cli.md's table with the table's default, and the exit
# statuses (0, 1, 2, 77 this machine cannot run it); --version prints
# "PROGRAM (libpmtrack X.Y.Z)"; an unknown option, an abbreviated one, a
# bad value, an operand and the old names (--digest, --no-bar, --ram,
# positional sizes) exit 2 with "PROGRAM: ..." on stderr and nothing on
# stdout.  Then the progress bar of the migration and checkpoint examples:
# drawn on a terminal (under script(1)), not with --quiet, and never a
# carriage return or an escape sequence when stderr is a file.
#   example_cli.sh EXAMPLES_DIR WORK_DIR
set -u
dir=$1 work=$2
fail=0
no() { echo "FAIL: $*"; fail=1; }

rm -rf "$work" && mkdir -p "$work" || exit 1
cd "$work" || exit 1

# the options each program must list
opts_demo="--help --version"
opts_gc="--heap --mutators --nursery --store-rate --rounds --help --version"
opts_vmm="--size --writers --rate --hot --downtime-ms --max-rounds
	--max-bandwidth --level --full-digest --no-verify --quiet --help
	--version"
opts_ckpt="--dir --size --writers --rate --hot --dumps --interval-ms --level
	--keep --restore --quiet --help --version"
opts_kvm="--size --working-set --phases --write-words --read-passes
	--read-stride --device-pages --seed --downtime-ms --max-rounds
	--max-bandwidth --migrate-after-ms --rearm --backend --finish-on-source
	--no-migrate --no-verify --no-reference --ram-out --quiet --help
	--version"

# docs/cli.md's defaults, for the programs that take the option
spec_default() {
	case $1 in
	--size) echo "256 MiB" ;;
	--writers) echo 2 ;;
	--rate) echo 10000 ;;
	--hot | --level | --max-bandwidth) echo 0 ;;
	--downtime-ms) echo 300 ;;
	--max-rounds) echo 30 ;;
	--interval-ms) echo 500 ;;
	--dumps) echo 3 ;;
	--backend) echo auto ;;
	esac
}

# the help text of option $2 in help file $1: its line and the
# continuation lines under it, joined
opt_text() {
	awk -v o="$2" '
	on && /^      / { t = t " " $0; next }
	{ on = 0 }
	$0 ~ "^  (-h, )?" o "( |$)" { on = 1; t = $0 }
	END { print t }' "$1"
}

# bad_line NAME CMD...: exit 2, "NAME: " on stderr, nothing on stdout
bad_line() {
	name=$1
	shift
	"$@" >bad.out 2>bad.err
	rc=$?
	[ $rc -eq 2 ] || no "$*: exited $rc, not 2"
	[ -s bad.out ] && no "$*: printed on stdout"
	grep -q "^$name: " bad.err || no "$*: no '$name: ' message on stderr"
}

check() {
	name=$1 opts=$2
	bin=$dir/$name
	[ -x "$bin" ] || { no "$bin is missing"; return; }
	"$bin" --help >help.out 2>help.err
	rc=$?
	[ $rc -eq 0 ] || no "$name --help exited $rc"
	[ -s help.err ] && no "$name --help wrote on stderr"
	head -n 1 help.out | grep -q "^usage: $name" ||
		no "$name --help does not start with 'usage: $name'"
	"$bin" -h | cmp -s - help.out || no "$name -h differs from --help"
	for o in $opts; do
		t=$(opt_text help.out "$o")
		[ -n "$t" ] || { no "$name --help does not list $o"; continue; }
		d=$(spec_default "$o")
		[ -z "$d" ] && continue
		echo "$t" | grep -q "(default $d)" ||
			no "$name --help: $o without docs/cli.md's default ($d): $t"
	done
	# the exit statuses, 77 included (every example can meet a machine
	# that cannot run it)
	tr '\n' ' ' <help.out | tr -s ' ' |
		grep -q 'Exit status: 0 [^,]*, 1 [^,]*, 2 a bad command line, 77 this machine cannot run it (why on stderr' ||
		no "$name --help does not give the exit statuses 0, 1, 2 and 77"
	# fits 80 columns
	awk 'length > 79 { exit 1 }' help.out ||
		no "$name --help has lines of 80 columns or more"
	v=$("$bin" --version)
	rc=$?
	[ $rc -eq 0 ] || no "$name --version exited $rc"
	echo "$v" | grep -Eqx "$name \(libpmtrack [0-9]+\.[0-9]+\.[0-9]+\)" ||
		no "$name --version printed '$v'"
	bad_line "$name" "$bin" --no-such-option
	bad_line "$name" "$bin" --help=yes
	bad_line "$name" "$bin" -- operand
	bad_line "$name" "$bin" operand
	bad_line "$name" "$bin" --vers
}

check pmtrack-demo "$opts_demo"
check pmtrack-gc-demo "$opts_gc"
check pmtrack-vmm-migrate "$opts_vmm"
check pmtrack-checkpoint "$opts_ckpt"
check pmtrack-kvm-migrate "$opts_kvm"

# values and the old names
bad_line pmtrack-gc-demo "$dir/pmtrack-gc-demo" 8 2
bad_line pmtrack-gc-demo "$dir/pmtrack-gc-demo" --heap 8MB
bad_line pmtrack-gc-demo "$dir/pmtrack-gc-demo" --mutators 17
bad_line pmtrack-vmm-migrate "$dir/pmtrack-vmm-migrate" --digest
bad_line pmtrack-vmm-migrate "$dir/pmtrack-vmm-migrate" --no-bar
bad_line pmtrack-vmm-migrate "$dir/pmtrack-vmm-migrate" --siz 64M
bad_line pmtrack-vmm-migrate "$dir/pmtrack-vmm-migrate" --size 64m
bad_line pmtrack-vmm-migrate "$dir/pmtrack-vmm-migrate" --size 64MB
bad_line pmtrack-vmm-migrate "$dir/pmtrack-vmm-migrate" --rate 10K
bad_line pmtrack-vmm-migrate "$dir/pmtrack-vmm-migrate" --hot 101
bad_line pmtrack-vmm-migrate "$dir/pmtrack-vmm-migrate" --size
bad_line pmtrack-checkpoint "$dir/pmtrack-checkpoint" --dumps 0
bad_line pmtrack-checkpoint "$dir/pmtrack-checkpoint" --interval-ms 1s
bad_line pmtrack-kvm-migrate "$dir/pmtrack-kvm-migrate" --ram 64M
bad_line pmtrack-kvm-migrate "$dir/pmtrack-kvm-migrate" --backend nope
bad_line pmtrack-kvm-migrate "$dir/pmtrack-kvm-migrate" --seed 0x10

# the progress bar: $1 = name, then the command's arguments
bar() {
	name=$1
	shift
	# on a terminal: drawn (and script(1) gives the command one)
	TERM=xterm script -qec "$dir/$name $*" /dev/null >tty.out 2>&1
	rc=$?
	[ $rc -eq 77 ] && { echo "skip the bar of $name: this machine cannot run it"; return; }
	[ $rc -eq 0 ] || { no "$name $* on a terminal exited $rc"; cat tty.out; }
	grep -q '\[##' tty.out || no "$name $*: no progress bar on a terminal"
	grep -q '^verified' tty.out || no "$name $*: not verified on a terminal"
	# on a terminal with --quiet: none, and no escape sequence
	TERM=xterm script -qec "$dir/$name $* --quiet" /dev/null >quiet.out 2>&1 ||
		no "$name $* --quiet on a terminal failed"
	grep -q '\[#\|\[ ' quiet.out && no "$name $* --quiet: a progress bar"
	grep -q "$(printf '\033')" quiet.out && no "$name $* --quiet: an escape sequence"
	grep -q '^round \|^image ' quiet.out && no "$name $* --quiet: per-step lines"
	# stderr to a file: no carriage return, no escape sequence
	"$dir/$name" "$@" >file.out 2>file.err || no "$name $* with stderr to a file failed"
	grep -q "$(printf '\r')\|$(printf '\033')" file.err file.out &&
		no "$name $*: a carriage return or an escape sequence in a file"
	echo "bar of $name: drawn on a terminal, not with --quiet, not in a file"
}
if command -v script >/dev/null; then
	# long enough for the bar to fill: a capped bandwidth, images apart
	bar pmtrack-vmm-migrate --size 64M --max-bandwidth 64M
	bar pmtrack-checkpoint --size 32M --interval-ms 300
	bar pmtrack-kvm-migrate --size 24M --working-set 16M --read-passes 300 \
		--migrate-after-ms 300 --max-bandwidth 16M
else
	echo "skip the progress bar checks: no script(1)"
fi

# 77 where the machine cannot run it: pmtrack-kvm-migrate with a /dev/kvm
# that is not KVM (/dev/null bound over it in a private mount namespace)
if [ "$(id -u)" = 0 ] && [ -e /dev/kvm ] && command -v unshare >/dev/null; then
	unshare -m --propagation private sh -c \
		'mount --bind /dev/null /dev/kvm && exec "$0" --size 24M --working-set 16M' \
		"$dir/pmtrack-kvm-migrate" >nokvm.out 2>nokvm.err
	rc=$?
	[ $rc -eq 77 ] && [ -s nokvm.err ] ||
		no "pmtrack-kvm-migrate without KVM: exit $rc, want 77 and why: $(cat nokvm.err)"
	echo "pmtrack-kvm-migrate without KVM: exit $rc: $(head -n 1 nokvm.err)"
else
	echo "skip the exit 77 check: needs root, /dev/kvm and unshare"
fi

[ $fail -eq 0 ] && echo "PASS"
exit $fail
