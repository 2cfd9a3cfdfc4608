#!/bin/sh
# SPDX-License-Identifier: MIT
# pmtrack probe, as criu check: the verdict line first, a reason on every
# "no", --feature's exit status agreeing with the full report, --json's
# keys; under a seccomp filter that fails userfaultfd(2) with ENOSYS the
# uffd features say seccomp.  Kernel-agnostic: what is usable may differ,
# the agreement may not.  With "unprivileged" (root only, else 77): as user
# nobody, a root process cannot be tracked, for a reason of privilege.
# Every step that fails says so; the exit status is 1 if any did.
#   cli_probe.sh PMTRACK_BINARY SECCOMP_ERRNO_BINARY WORK_DIR [unprivileged]
set -u
bin=$1 seccomp=$2 work=$3 mode=${4:-}
fail=0
no() { echo "FAIL: $*"; fail=1; }
. "$(dirname "$0")/json_check.sh" # jq: json_ok, jq_is
rm -rf "$work" && mkdir -p "$work" || exit 1
cd "$work" || exit 1

# the rows of a report: "NAME WORD" for each "  NAME  yes|no|unknown..." line
rows() { sed -n 's/^  \([a-z0-9-]*\)  *\(yes\|no\|unknown\).*/\1 \2/p' "$1"; }
# the answer (yes, no) of row $2 in report $1
answer() { rows "$1" | awk -v n="$2" '$1 == n { print $2 }'; }
# the text after "NAME  no: " of row $2 in report $1
reason() { sed -n "s/^  $2  *no: //p" "$1"; }
# a report: the verdict first, naming the backend of the "backend:" line,
# and every "no" with a reason
check_report() { # file what
	head -n 1 "$1" | grep -q '^pmtrack probe: \(backend [a-z-]* (\|no backend (\)' ||
		no "$2: the first line is not the verdict: $(head -n 1 "$1")"
	b=$(sed -n 's/^backend: \([a-z-]*\).*/\1/p' "$1")
	case $b in
	none) head -n 1 "$1" | grep -q '^pmtrack probe: no backend' ||
		no "$2: no backend, but the verdict says otherwise" ;;
	"") no "$2: no backend line" ;;
	*) head -n 1 "$1" | grep -q "^pmtrack probe: backend $b (" ||
		no "$2: the verdict does not name backend $b" ;;
	esac
	head -n 1 "$1" | grep -q '; remote tracking \(of PID [0-9]* \)\?\(yes\|no\) (.' ||
		no "$2: the verdict says nothing of remote tracking"
	[ -n "$(rows "$1")" ] || no "$2: no rows"
	grep '^  [a-z0-9-]*  *no' "$1" | grep -v '^  [a-z0-9-]*  *no: [^ ]' |
		while read -r l; do echo "FAIL: $2: a no without a reason: $l"; done |
		grep . && fail=1
	grep -q '^  [a-z0-9-]*  *unknown' "$1" &&
		no "$2: a probe failed: $(grep '^  [a-z0-9-]*  *unknown' "$1")"
}

if [ "$mode" = unprivileged ]; then
	nobody="setpriv --reuid=65534 --regid=65534 --clear-groups"
	if [ "$(id -u)" != 0 ]; then
		echo "SKIP: not root: cannot run as nobody next to a root process"
		exit 77
	fi
	if ! $nobody test -x "$bin" 2>/dev/null; then
		echo "SKIP: setpriv cannot run $bin as uid 65534"
		exit 77
	fi
	sleep 300 &
	sp=$!
	$nobody "$bin" probe --pid "$sp" >nobody.out 2>nobody.err ||
		no "probe --pid as nobody: exit $?: $(cat nobody.err)"
	check_report nobody.out "probe --pid as nobody"
	head -n 1 nobody.out | grep -q "remote tracking of PID $sp no (" ||
		no "verdict as nobody: $(head -n 1 nobody.out)"
	[ "$(answer nobody.out remote)" = no ] ||
		no "as nobody, remote tracking of root's $sp is not 'no'"
	reason nobody.out remote | grep -q 'uid 0.*CAP_SYS_PTRACE\|ptrace_scope' ||
		no "as nobody, remote's reason names no privilege: $(reason nobody.out remote)"
	$nobody "$bin" probe --pid "$sp" --feature remote >nf.out 2>&1
	[ $? -eq 1 ] || no "--feature remote --pid as nobody: want exit 1"
	grep -q "^remote: no: .*uid 0" nf.out || no "--feature remote as nobody: $(cat nf.out)"
	$nobody "$bin" probe --pid "$sp" --json >nobody.json || no "--json as nobody: exit $?"
	jq_is nobody.json ".remote.ok == false and .remote.pid == $sp and
		(.remote.reason | test(\"CAP_SYS_PTRACE|ptrace_scope\"))"
	kill "$sp"
	wait "$sp" 2>/dev/null
	# without --pid: every no has a reason; map_files needs a capability
	$nobody "$bin" probe >nobody2.out 2>nobody2.err ||
		no "probe as nobody: exit $?: $(cat nobody2.err)"
	check_report nobody2.out "probe as nobody"
	[ "$(answer nobody2.out map-files)" = no ] &&
		! reason nobody2.out map-files | grep -q CAP_SYS_ADMIN &&
		no "map-files as nobody: $(reason nobody2.out map-files)"
	[ $fail -eq 0 ] && echo "cli_probe unprivileged: all checks passed"
	exit $fail
fi

"$bin" probe >probe.out 2>probe.err || no "probe: exit $?: $(cat probe.err)"
[ -s probe.err ] && no "probe wrote on stderr: $(cat probe.err)"
check_report probe.out probe
grep -qx "kernel: $(uname -r)" probe.out || no "probe: no kernel line"
# --list-features: the rows of the report, in its order
"$bin" probe --list-features >list.out || no "--list-features: exit $?"
[ "$(cat list.out)" = "$(rows probe.out | cut -d' ' -f1)" ] ||
	no "--list-features and the rows of the report differ"
for f in pagemap-scan uffd-wp-async uffd-wp soft-dirty page-is-guard \
	backend-pagemap-scan backend-mprotect cap-atomic-reset remote map-files \
	cachestat swap; do
	grep -qx "$f" list.out || no "--list-features lacks $f"
done

# --feature NAME agrees with the report, for every name
while read -r f; do
	want=$(answer probe.out "$f")
	"$bin" probe --feature "$f" >f.out 2>f.err
	rc=$?
	case $want in
	yes) [ $rc -eq 0 ] || no "--feature $f: exit $rc, the report says yes"
		grep -q "^$f: yes" f.out || no "--feature $f: $(cat f.out)" ;;
	no) [ $rc -eq 1 ] || no "--feature $f: exit $rc, the report says no"
		grep -q "^$f: no: [^ ]" f.out || no "--feature $f: no reason: $(cat f.out)" ;;
	*) no "--feature $f: the report says '$want'" ;;
	esac
	[ "$(wc -l <f.out)" -eq 1 ] || no "--feature $f: not one line"
done <list.out
# reasons that name their cause
if [ "$(answer probe.out soft-dirty)" = no ]; then
	reason probe.out soft-dirty |
		grep -q 'CONFIG_MEM_SOFT_DIRTY\|CONFIG_HAVE_ARCH_SOFT_DIRTY\|clear_refs' ||
		no "soft-dirty's reason names no config: $(reason probe.out soft-dirty)"
	"$bin" probe --feature soft-dirty >sd.out
	[ $? -eq 1 ] || no "--feature soft-dirty: want exit 1"
	grep -q "^soft-dirty: no: .*CONFIG_" sd.out || no "--feature soft-dirty: $(cat sd.out)"
fi
if [ "$(answer probe.out pagemap-scan)" = no ]; then
	reason probe.out pagemap-scan | grep -q 'Linux 6.7\|seccomp\|pagemap' ||
		no "pagemap-scan's reason: $(reason probe.out pagemap-scan)"
fi
# several: 0 only if all are usable
yes=$(rows probe.out | awk '$2 == "yes" { print $1 }' | head -n 2)
set -- $yes
if [ $# -eq 2 ]; then
	"$bin" probe --feature "$1" --feature "$2" >f2.out || no "--feature $1 --feature $2: exit $?"
	[ "$(wc -l <f2.out)" -eq 2 ] || no "--feature twice: not two lines"
fi
nope=$(rows probe.out | awk '$2 == "no" { print $1; exit }')
if [ -n "$nope" ] && [ -n "$yes" ]; then
	"$bin" probe --feature "$1" --feature "$nope" >/dev/null
	[ $? -eq 1 ] || no "--feature $1 --feature $nope: want exit 1"
fi
# usage errors
"$bin" probe --feature no-such-thing >/dev/null 2>err
[ $? -eq 2 ] || no "--feature no-such-thing: want exit 2"
grep -q "^pmtrack probe: bad value for --feature: 'no-such-thing' (want .*--list-features" err &&
	grep -q "^pmtrack probe: try 'pmtrack help probe'$" err &&
	[ "$(wc -l <err)" -eq 2 ] ||
	no "unknown feature: not the message and one hint line: $(cat err)"
for a in "--feature" "--pid 0" "--pid x" "--bogus" "extra"; do
	"$bin" probe $a >/dev/null 2>&1
	[ $? -eq 2 ] || no "probe $a: want exit 2"
done
"$bin" probe --help | head -n 1 | grep -q '^usage: pmtrack probe' || no "probe --help"
"$bin" help probe | grep -q '^  --feature NAME ' || no "help probe: no --feature line"
# --pid of no process
"$bin" probe --pid 2147483646 --feature remote >pid.out
[ $? -eq 1 ] || no "--feature remote --pid of no process: want exit 1"
grep -q '^remote: no: no process 2147483646' pid.out || no "--pid of no process: $(cat pid.out)"

# --json: one object per docs/cli.md, the same answers as the text
"$bin" probe --json >probe.json || no "probe --json: exit $?"
json_ok probe.json
[ "$(wc -l <probe.json)" -eq 1 ] || no "probe --json: not one line"
jq_is probe.json '(keys_unsorted | .[0:2]) == ["cmd", "type"] and
	.cmd == "probe" and .type == "result"'
jq_is probe.json '[paths | .[] | strings] | all(test("^[a-z0-9_]+$"))'
jq_is probe.json '(.verdict | type) == "string" and (.caps | type) == "array"
	and (.remote | has("ok") and has("how") and has("reason"))
	and (.features | type) == "array" and (.pagestate | type) == "array"
	and (.library | type) == "string"'
jq_is probe.json ".kernel == \"$(uname -r)\""
jq_is probe.json '[.features[], .pagestate[]] | all(has("name") and
	has("ok") and has("reason") and
	(if .ok then .reason == null else (.reason | length) > 0 end))'
jq_is probe.json '.remote.ok == ([.features[] | select(.name == "remote")][0].ok)'
[ "$(jq -r .verdict probe.json)" = "$(head -n 1 probe.out)" ] ||
	no "--json's verdict is not the text's first line"
b=$(sed -n 's/^backend: \([a-z-]*\).*/\1/p' probe.out)
case $b in
none) jq_is probe.json '.backend == null and .caps == []' ;;
*) jq_is probe.json ".backend == \"$b\""
	caps=$(sed -n 's/^caps: *//p' probe.out | tr ' ' '\n' | grep . |
		jq -R . | jq -sc .)
	jq_is probe.json ".caps == ${caps:-[]}" ;;
esac
[ "$(jq -r '(.features + .pagestate)[] |
	"\(.name) \(if .ok == null then "unknown" elif .ok then "yes" else "no" end)"' \
	probe.json)" = "$(rows probe.out)" ] || no "--json and the text differ"
# --feature with --json: those features alone
"$bin" probe --json --feature pagemap-scan --feature soft-dirty >f.json
rc=$?
json_ok f.json
jq_is f.json '.cmd == "probe" and .type == "result" and
	[.features[].name] == ["pagemap-scan", "soft-dirty"] and
	.ok == all(.features[]; .ok)'
[ "$rc" -eq "$(jq -r 'if .ok then 0 else 1 end' f.json)" ] ||
	no "--feature --json: exit $rc against ok $(jq .ok f.json)"

# userfaultfd(2) failing with ENOSYS under a seccomp filter: the uffd
# features say no, because of seccomp
if "$seccomp" userfaultfd -- true 2>seccomp.err; then
	"$seccomp" userfaultfd -- "$bin" probe >sc.out 2>sc.err ||
		no "probe under seccomp: exit $?: $(cat sc.err)"
	check_report sc.out "probe under seccomp"
	for f in uffd-wp-async uffd-wp; do
		[ "$(answer sc.out $f)" = no ] || no "$f under seccomp: not no"
		reason sc.out $f | grep -q seccomp ||
			no "$f under seccomp: $(reason sc.out $f)"
	done
	"$seccomp" userfaultfd -- "$bin" probe --feature uffd-wp >sc1.out
	[ $? -eq 1 ] || no "--feature uffd-wp under seccomp: want exit 1"
	grep -q "^uffd-wp: no: .*seccomp" sc1.out || no "--feature uffd-wp under seccomp: $(cat sc1.out)"
	# nor is pagemap-scan a backend then, nor remote by injection
	[ "$(answer sc.out backend-pagemap-scan)" = no ] ||
		no "backend-pagemap-scan under seccomp: not no"
	head -n 1 sc.out | grep -q 'pmtrack probe: backend pagemap-scan' &&
		no "under seccomp the verdict still says pagemap-scan"
else
	echo "note: no seccomp filter here ($(cat seccomp.err)): not checked"
fi

[ $fail -eq 0 ] && echo "cli_probe: all checks passed"
exit $fail
