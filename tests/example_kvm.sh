#!/bin/sh
# SPDX-License-Identifier: MIT
# pmtrack-kvm-migrate (examples/kvm_migrate.c): a running KVM guest,
# migrated over TCP loopback, finishes on the destination with the result
# and the final RAM (compared byte for byte with cmp) of the same guest run
# without migration, over several seeds, sizes and both re-arm modes; and
# a backend without PMTRACK_CAP_KERNEL_WRITES is refused with a message
# that says so; --no-verify drops the audit but not the reference run,
# --no-reference the reference run but not the audit.  Exit 1 if any step
# failed, 77 (with a SKIP line) where this machine cannot run the example
# (it exits 77 too: KVM not usable, or no backend here tracks KVM's
# writes).
#   example_kvm.sh PMTRACK_KVM_MIGRATE WORK_DIR
set -u
bin=$1 work=$2
fail=0
no() { echo "FAIL: $*"; fail=1; }

rm -rf "$work" && mkdir -p "$work" || exit 1
cd "$work" || exit 1

# one configuration: the reference run, then the migration; same result,
# same final RAM
pair() {
	name=$1
	shift
	"$bin" --no-migrate --ram-out ref.ram "$@" >"$name.ref" 2>&1
	rc=$?
	if [ $rc -eq 77 ]; then
		echo "SKIP: this machine cannot run pmtrack-kvm-migrate:"
		cat "$name.ref"
		exit 77
	fi
	[ $rc -eq 0 ] || { no "$name: the reference run exited $rc"; cat "$name.ref"; return; }
	"$bin" --ram-out mig.ram "$@" >"$name.out" 2>&1
	rc=$?
	cat "$name.out"
	[ $rc -eq 0 ] || { no "$name: the migration exited $rc"; return; }
	ref=$(sed -n 's/^result \([0-9a-f]*\),.*/\1/p' "$name.ref")
	got=$(sed -n 's/^destination: .*result \([0-9a-f]*\) .*/\1/p' "$name.out")
	[ -n "$ref" ] && [ "$ref" = "$got" ] ||
		no "$name: result '$got' on the destination, '$ref' unmigrated"
	grep -q '^verified: ' "$name.out" || no "$name: not verified"
	# the audit of the paused source ran after the switchover
	grep -Eq '^audit: the paused source RAM is what was sent \([0-9.]+ ms' \
		"$name.out" || no "$name: no audit line"
	# the guest finished on the destination, not before the switchover
	grep -Eq '^destination: resumed at phase [0-9]+ of [0-9]+, finished' \
		"$name.out" || no "$name: no resumed line"
	cmp -s ref.ram mig.ram || no "$name: final guest RAM differs from the unmigrated run's"
	rm -f ref.ram mig.ram
}

# the guests run for a second or more, so that the migration starts while
# the vCPU runs; wherever the switchover falls, the device holds the
# guest's last request until then, so the guest finishes on the destination
pair small-written --size 64M --working-set 16M --read-passes 1500 --seed 1 \
	--migrate-after-ms 100
pair small-range --size 64M --working-set 16M --read-passes 1500 --seed 2 \
	--rearm range --migrate-after-ms 100
pair big --size 512M --working-set 48M --read-passes 300 --phases 5 \
	--seed 24301 --device-pages 512 --migrate-after-ms 200

# --no-verify: no audit, still compared with the reference run
small="--size 24M --working-set 16M --read-passes 300 --migrate-after-ms 100"
# shellcheck disable=SC2086
"$bin" $small --no-verify >noverify.out 2>&1
rc=$?
[ $rc -eq 0 ] || { no "--no-verify exited $rc"; cat noverify.out; }
grep -q '^audit: ' noverify.out && no "--no-verify: the audit ran"
grep -q '^verified: ' noverify.out || no "--no-verify: no reference run compared"
# --no-reference: the audit, no reference run
# shellcheck disable=SC2086
"$bin" $small --no-reference >noref.out 2>&1
rc=$?
[ $rc -eq 0 ] || { no "--no-reference exited $rc"; cat noref.out; }
grep -q '^audit: the paused source RAM is what was sent' noref.out ||
	no "--no-reference: no audit"
grep -q '^verified: ' noref.out && no "--no-reference: a reference run compared"
grep -q 'no reference run to compare it with (--no-reference)$' noref.out ||
	no "--no-reference: does not say there was no reference run"

# a backend KVM cannot work with: refused before any guest runs
"$bin" --backend mprotect --size 64M --working-set 16M >refuse.out 2>&1
rc=$?
[ $rc -eq 1 ] || no "--backend mprotect exited $rc, not 1"
grep -q 'PMTRACK_CAP_KERNEL_WRITES' refuse.out ||
	no "--backend mprotect: the message does not name PMTRACK_CAP_KERNEL_WRITES"
grep -q '^round' refuse.out && no "--backend mprotect: a migration started"
cat refuse.out

# usage errors
"$bin" --rearm sometimes >usage.out 2>&1
[ $? -eq 2 ] || no "--rearm sometimes did not exit 2"
"$bin" --size 8M --working-set 64M >usage.out 2>&1
[ $? -eq 2 ] || no "a working set larger than RAM did not exit 2"
# the seed is decimal digits, as every N of docs/cli.md
"$bin" --seed 0x10 >usage.out 2>&1
[ $? -eq 2 ] || no "--seed 0x10 did not exit 2"

[ $fail -eq 0 ] && echo "PASS"
exit $fail
