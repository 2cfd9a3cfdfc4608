#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run the CTest suite of a build tree on another kernel: Debian's packaged
# kernel (6.1 on Debian 12), booted under qemu-system-x86_64 with software
# emulation, with an initramfs made here from the build tree, the test
# scripts, the shared libraries they need, ctest and a static busybox.
# The guest's ctest output and per-test log come back over serial ports;
# this script prints one line per test (PASS, SKIP with the test's reason,
# FAIL) and exits with the guest's ctest status.
#
#   tests/kernel_matrix.sh [options] BUILD_DIR [-- CTEST_ARGS...]
#
#   --package NAME     Debian kernel package to boot (default: the one
#                      linux-image-amd64 depends on), fetched with
#                      apt-get download into the cache
#   --kernel FILE      boot this bzImage instead of a package
#   --cache DIR        where packages, kernel and initramfs go
#                      (default BUILD_DIR/kernel-matrix)
#   --timeout SEC      limit for the whole guest run (default 1500)
#   --memory MIB       guest RAM (default 4096)
#   --cpus N           guest CPUs (default 2)
#   --must-pass REGEX  every test whose name matches must pass, not skip
#   --must-skip REGEX  every test whose name matches must skip
#   --expect-auto NAME the backend automatic selection picks in the guest
#                      (as `pmtrack probe` reports it) must be NAME
#
# Exit status: 0 when every test passed or skipped and every expectation
# held; 1 when a test failed or an expectation did not hold; 2 for usage
# errors; 3 when a tool or the kernel is missing; 4 when the guest did not
# boot or did not finish in time.
set -euo pipefail

die() { echo "kernel_matrix: $*" >&2; exit "${rc:-3}"; }
usage() { rc=2 die "usage: $0 [options] BUILD_DIR [-- CTEST_ARGS...]"; }

src=$(cd "$(dirname "$0")/.." && pwd)
pkg="" kernel="" cache="" timeout=1500 mem=4096 cpus=2
must_pass="" must_skip="" expect_auto=""
build=""
while [ $# -gt 0 ]; do
	case $1 in
	--package) pkg=${2:?}; shift 2 ;;
	--kernel) kernel=${2:?}; shift 2 ;;
	--cache) cache=${2:?}; shift 2 ;;
	--timeout) timeout=${2:?}; shift 2 ;;
	--memory) mem=${2:?}; shift 2 ;;
	--cpus) cpus=${2:?}; shift 2 ;;
	--must-pass) must_pass=${2:?}; shift 2 ;;
	--must-skip) must_skip=${2:?}; shift 2 ;;
	--expect-auto) expect_auto=${2:?}; shift 2 ;;
	--) shift; break ;;
	-*) usage ;;
	*) [ -z "$build" ] || usage; build=$1; shift ;;
	esac
done
[ -n "$build" ] || usage
case $timeout$mem$cpus in *[!0-9]*) usage ;; esac
[ -f "$build/CTestTestfile.cmake" ] ||
	rc=2 die "$build is not a configured build tree (no CTestTestfile.cmake)"
build=$(cd "$build" && pwd)
cache=${cache:-$build/kernel-matrix}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

for tool in qemu-system-x86_64 busybox ctest ldd timeout; do
	command -v "$tool" >/dev/null ||
		die "$tool not found (apt-get install qemu-system-x86 busybox-static cmake)"
done
busybox=$(command -v busybox)
if ldd "$busybox" >/dev/null 2>&1; then
	die "$busybox is dynamically linked; the guest needs busybox-static"
fi

# --- the kernel: Debian's package, cached
if [ -z "$kernel" ]; then
	if [ -z "$pkg" ]; then
		pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
			awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
		[ -n "$pkg" ] ||
			die "cannot tell which kernel linux-image-amd64 is (run apt-get update, or give --package/--kernel)"
	fi
	deb=$(find "$cache" -maxdepth 1 -name "${pkg}_*.deb" | sort | tail -1)
	if [ -z "$deb" ]; then
		echo "kernel_matrix: fetching $pkg"
		(cd "$cache" && apt-get download -q -o APT::Sandbox::User=root \
			"$pkg" >/dev/null) || die "apt-get download $pkg failed"
		deb=$(find "$cache" -maxdepth 1 -name "${pkg}_*.deb" | sort | tail -1)
		[ -n "$deb" ] || die "apt-get download left no ${pkg}_*.deb"
	fi
	kernel=$cache/vmlinuz-$(basename "$deb" .deb)
	kmods=$cache/modules-$(basename "$deb" .deb)
	if [ ! -s "$kernel" ] || [ ! -d "$kmods" ]; then
		# the kernel, and the modules a scratch disk needs (virtio
		# block, ext4): the swap tests put their swap file on it
		rm -rf "$cache/deb" "$kmods" && mkdir "$cache/deb"
		k='./lib/modules/*/kernel'
		dpkg-deb --fsys-tarfile "$deb" |
			tar -x -C "$cache/deb" --wildcards './boot/vmlinuz-*' \
				"$k/drivers/virtio/*" "$k/drivers/block/virtio_blk.ko" \
				"$k/fs/ext4/*" "$k/fs/jbd2/*" "$k/fs/mbcache.ko" \
				"$k/lib/crc16.ko" "$k/crypto/crc32c_generic.ko"
		mv "$cache"/deb/boot/vmlinuz-* "$kernel"
		mv "$cache"/deb/lib/modules/*/kernel "$kmods"
		rm -rf "$cache/deb"
	fi
fi
[ -s "$kernel" ] || die "no kernel image at $kernel"

# --- the initramfs: build tree, test scripts, libraries, ctest, busybox
stage=$cache/root
rm -rf "$stage"
mkdir -p "$stage"/{bin,usr/bin,proc,sys,dev,tmp,run,etc}
chmod 1777 "$stage/tmp"
cp "$busybox" "$stage/bin/busybox"
cp "$(command -v ctest)" "$stage/usr/bin/ctest"
# util-linux's setpriv runs tests as another user (busybox's cannot), jq
# reads the tools' --json output, and
# the test scripts get bash as sh: busybox's sh runs its own applets first
for tool in setpriv bash jq; do
	if command -v $tool >/dev/null; then
		cp "$(command -v $tool)" "$stage/usr/bin/$tool"
	fi
done
[ -x "$stage/usr/bin/bash" ] && ln -s /usr/bin/bash "$stage/bin/sh"
# the build tree at its own path (CTest files name absolute paths), without
# objects, scratch directories of earlier runs (*-work) or this cache; the
# sources the tests read (scripts, golden files)
(cd / && tar -c --exclude='*.o' --exclude='*.a' --exclude='*-work' \
	--exclude="${cache#/}" --exclude="${build#/}/kernel-matrix" \
	--exclude="${build#/}/Testing" "${build#/}" "${src#/}/tests") |
	tar -x -C "$stage"
chmod -R a+rX "$stage"
# every ELF file's libraries, at the paths ldd names
elves=$( (find "$stage" -type f -perm -u+x; find "$stage" -name '*.so*') |
	while read -r f; do
		[ "$(head -c4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] &&
			echo "$f"
	done)
libgcc=$(gcc -print-file-name=libgcc_s.so.1 2>/dev/null || true)
# shellcheck disable=SC2086
for lib in $( (for f in $elves; do ldd "$f" 2>/dev/null || true; done) |
	awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
	sort -u) ${libgcc:+$(readlink -f "$libgcc")}; do
	[ -f "$lib" ] || continue
	mkdir -p "$stage$(dirname "$lib")"
	cp -L "$lib" "$stage$lib"
done
# pthread_cancel and friends load libgcc_s by soname at run time
if [ -n "$libgcc" ] && [ -f "$libgcc" ]; then
	mkdir -p "$stage/lib/x86_64-linux-gnu"
	cp -L "$libgcc" "$stage/lib/x86_64-linux-gnu/libgcc_s.so.1"
fi
# modules in load order (each after what its .modinfo says it depends on)
modload() {
	local f dep
	case " $loaded " in *" $1 "*) return 0 ;; esac
	f=$(find "$kmods" -name "$1.ko" | head -1)
	[ -n "$f" ] || return 1
	for dep in $(tr '\0' '\n' <"$f" | sed -n 's/^depends=//p' | tr ',' ' '); do
		modload "$dep" || return 1
	done
	loaded="$loaded $1"
	cp "$f" "$stage/modules/$(printf %02d "$(echo $loaded | wc -w)")-$1.ko"
}
mkdir -p "$stage/modules"
disk=""
if [ -n "${kmods:-}" ] && [ -d "$kmods" ]; then
	loaded=""
	for m in crc32c_generic virtio_pci virtio_blk ext4; do
		modload "$m" || { echo "kernel_matrix: no module $m: no scratch disk"; break; }
	done
	mkfs=$(PATH=$PATH:/sbin:/usr/sbin command -v mkfs.ext4 || true)
	if [ -n "$mkfs" ] && ls "$stage"/modules/*-ext4.ko >/dev/null 2>&1; then
		disk=$cache/scratch.img
		rm -f "$disk"
		truncate -s 1G "$disk"
		"$mkfs" -q -F -O ^has_journal "$disk"
	fi
fi
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' \
	>"$stage/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$stage/etc/group"

# quote each ctest argument for the guest's sh
cargs=""
for a in "$@"; do
	cargs="$cargs '$(printf %s "$a" | sed "s/'/'\\\\''/g")'"
done
cat >"$stage/init" <<EOF
#!/bin/busybox sh
# --install finds busybox through /proc/self/exe
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin 2>/dev/null
export PATH=/usr/bin:/bin HOME=/tmp
# everything runs 2-36 times slower under emulation: Check's per-case
# limits (CK_DEFAULT_TIMEOUT) stretch with it; CTest's stay
export CK_TIMEOUT_MULTIPLIER=2
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
ip link set lo up
for m in /modules/*.ko; do [ -e "\$m" ] && insmod "\$m"; done
# not on /tmp or /var/tmp: the build tree may live there (the root file
# system is tmpfs already)
if [ -b /dev/vda ] && mkdir -p /scratch && mount -t ext4 /dev/vda /scratch; then
	chmod 1777 /scratch
	export TMPDIR=/scratch
fi
for t in /dev/ttyS1 /dev/ttyS2; do stty -F \$t raw -echo; done
out=/dev/ttyS1
echo "PMTRACK-MATRIX-BOOTED \$(uname -r)" >\$out
echo "=== pmtrack probe" >\$out
$build/tools/pmtrack probe >\$out 2>&1
echo "=== ctest" >\$out
cd $build
# through a pipe: ctest colours its output on a terminal
{ ctest --test-dir $build --output-on-failure$cargs; echo \$? >/tmp/rc; } 2>&1 |
	cat >\$out
rc=\$(cat /tmp/rc)
echo "PMTRACK-MATRIX-CTEST-EXIT \$rc" >\$out
cat $build/Testing/Temporary/LastTest.log >/dev/ttyS2
echo "PMTRACK-MATRIX-DONE" >/dev/ttyS2
sync
poweroff -f
EOF
chmod 755 "$stage/init"
initrd=$cache/initramfs.cpio
(cd "$stage" && find . | busybox cpio -o -H newc -R 0:0 2>/dev/null) >"$initrd"
echo "kernel_matrix: $(basename "$kernel"), initramfs $(($(stat -c %s "$initrd") >> 20)) MiB," \
	"$cpus CPUs, $mem MiB, limit $timeout s"

# --- boot; the guest powers off when ctest is done
log=$cache/console.log out=$cache/ctest.log last=$cache/LastTest.log
rm -f "$log" "$out" "$last"
start=$(date +%s)
qrc=0
timeout -k 10 "$timeout" qemu-system-x86_64 -nodefaults -display none \
	-no-reboot -machine pc -accel tcg,thread=multi -cpu max \
	-smp "$cpus" -m "$mem" -kernel "$kernel" -initrd "$initrd" \
	-append "console=ttyS0 panic=-1 oops=panic mitigations=off quiet" \
	-serial "file:$log" -serial "file:$out" -serial "file:$last" \
	${disk:+-drive "file=$disk,format=raw,if=virtio,cache=unsafe"} \
	-monitor none || qrc=$?
secs=$(($(date +%s) - start))
sed -i 's/\r$//' "$out" "$last" 2>/dev/null || true

if ! grep -q '^PMTRACK-MATRIX-BOOTED' "$out" 2>/dev/null; then
	echo "kernel_matrix: FAIL: the guest did not boot (qemu status $qrc after $secs s); console:" >&2
	tail -40 "$log" >&2 || true
	exit 4
fi
guest=$(awk '/^PMTRACK-MATRIX-BOOTED/ { print $2; exit }' "$out")
if ! grep -q '^PMTRACK-MATRIX-DONE' "$last" 2>/dev/null; then
	if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
		why="did not finish within $timeout s"
	else
		why="stopped before the end (qemu status $qrc after $secs s)"
	fi
	echo "kernel_matrix: FAIL: the run on $guest $why; last output:" >&2
	tail -30 "$out" >&2 || true
	echo "--- console:" >&2
	tail -20 "$log" >&2 || true
	exit 4
fi
crc=$(awk '/^PMTRACK-MATRIX-CTEST-EXIT/ { print $2 }' "$out")
summary=0

# --- per-test summary: status from ctest's lines, reasons from the log
awk -v must_pass="$must_pass" -v must_skip="$must_skip" \
	-v guest="$guest" -v secs="$secs" -v crc="$crc" '
FILENAME == ARGV[1] {
	# the reason of a test: its first SKIP or FAIL line, else its last
	if ($0 ~ /^[0-9]+\/[0-9]+ Testing: /) {
		name = $0; sub(/^[^:]*: /, "", name)
		reason[name] = ""; last[name] = ""
	} else if ($0 == "Output:") {
		inout = 1
	} else if ($0 == "<end of output>") {
		inout = 0
		if (reason[name] == "") reason[name] = last[name]
	} else if (inout && $0 !~ /^-*$/) {
		last[name] = $0
		if ($0 ~ /^(SKIP|FAIL)/ && reason[name] == "") reason[name] = $0
	}
	next
}
/^PMTRACK-MATRIX-CTEST-EXIT/ { incl = 0 }
/^=== ctest/ { incl = 1 }
/Test +#[0-9]+: / && incl {
	n = $0; sub(/.*Test +#[0-9]+: /, "", n)
	st = n; sub(/ .*/, "", n)
	if (st ~ /\*\*\*Skipped|Not Run.*Skipped/) s = "SKIP"
	else if (st ~ / Passed/) s = "PASS"
	else s = "FAIL"
	order[++count] = n; status[n] = s; tally[s]++
}
END {
	bad = 0
	for (i = 1; i <= count; i++) {
		n = order[i]; s = status[n]; line = s " " n
		r = reason[n]; sub(/^(SKIP|FAIL):? */, "", r)
		if (s != "PASS" && r != "") line = line ": " r
		if (must_pass != "" && n ~ must_pass && s != "PASS") {
			line = line "  <-- must pass here"; bad = 1
		}
		if (must_skip != "" && n ~ must_skip && s != "SKIP") {
			line = line "  <-- must skip here"; bad = 1
		}
		print line
	}
	printf "=== Linux %s: %d passed, %d skipped, %d failed of %d tests in %d s; ctest exit %s\n", \
		guest, tally["PASS"], tally["SKIP"], tally["FAIL"], count, secs, crc
	if (count == 0) { print "kernel_matrix: no test ran"; bad = 1 }
	exit bad
}' "$last" "$out" || summary=1

if [ -n "$expect_auto" ]; then
	auto=$(awk '/^backend: / { print $2; exit }' "$out")
	if [ "$auto" != "$expect_auto" ]; then
		echo "kernel_matrix: FAIL: automatic selection picks '${auto:-?}' on $guest, expected '$expect_auto'"
		summary=1
	else
		echo "=== automatic selection picks $auto on $guest, as expected"
	fi
fi
[ "$crc" = 0 ] && [ "$summary" = 0 ] || exit 1
