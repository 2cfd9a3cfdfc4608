#!/bin/sh
# SPDX-License-Identifier: MIT
# README.md's install step, run exactly as written (its first sh block
# under "## Install", with "build" standing for this build tree), as root
# in a private mount namespace where /usr/local and /etc are overlays on
# scratch space: the host's are never written.  Then what README promises
# after it: pkg-config and find_package() find the library, a program
# linked with the README's cc line runs with no run path (ldconfig made
# the loader find libpmtrack.so.0), the man pages and the tool are found
# with the default MANPATH and PATH, and bash completion is installed.
#   readme_install.sh BUILD_DIR SOURCE_DIR WORK_DIR [EXTRA_CFLAGS]
set -eu
build=$1 src=$(cd "$2" && pwd) work=$3 cflags=${4:-}

if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP: needs root (README's install step is run as root)"
	exit 77
fi
for tool in unshare cmake pkg-config cc man; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "SKIP: $tool is not installed"
		exit 77
	fi
done
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
if [ "$prefix" != /usr/local ]; then
	echo "SKIP: this build installs into '$prefix', README's into /usr/local"
	exit 77
fi

# the install command, and the cc line, from README.md
cmd=$(awk '/^## Install/ { s = 1 } s && /^```sh/ { getline; print; exit }' \
	"$src/README.md")
ccline=$(awk '/^## Install/ { s = 1 } s && /^cc app.c/ { print; exit }' \
	"$src/README.md")
[ -n "$cmd" ] && [ -n "$ccline" ] ||
	{ echo "FAIL: README.md has no install step or cc line"; exit 1; }
echo "README install step: $cmd"
echo "README build line:   $ccline"

rm -rf "$work"
mkdir -p "$work/run" "$work/ul/up" "$work/ul/wk" "$work/etc/up" "$work/etc/wk"
ln -s "$(cd "$build" && pwd)" "$work/run/build"
cp "$src/tests/consumer/consumer.c" "$work/run/app.c"

# shellcheck disable=SC2016
if ! unshare -m --propagation private sh -euc '
	work=$1 cmd=$2 ccline=$3 cflags=$4 src=$5
	mount -t overlay overlay -o "lowerdir=/usr/local,upperdir=$work/ul/up,workdir=$work/ul/wk" /usr/local
	mount -t overlay overlay -o "lowerdir=/etc,upperdir=$work/etc/up,workdir=$work/etc/wk" /etc
	cd "$work/run"
	sh -ec "$cmd" >"$work/install.log"
	export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
	unset PKG_CONFIG_PATH MANPATH LD_LIBRARY_PATH CMAKE_PREFIX_PATH
	echo "pkg-config: pmtrack $(pkg-config --modversion pmtrack)"
	sh -ec "$ccline $cflags"
	readelf -d app | grep -Eq "R(UN)?PATH" && { echo "FAIL: app has a run path"; exit 1; }
	lib=$(ldd ./app | awk "/libpmtrack/ { print \$3 }")
	case $lib in
	/usr/local/lib*/libpmtrack.so.0) echo "loader: $lib" ;;
	*) echo "FAIL: the loader finds libpmtrack at \"$lib\""; exit 1 ;;
	esac
	./app
	cmake -S "$src/tests/consumer" -B cmake -DCMAKE_C_FLAGS="$cflags" \
		-DCMAKE_EXE_LINKER_FLAGS="$cflags" >cmake.log
	cmake --build cmake >>cmake.log
	./cmake/consumer
	for page in pmtrack_collect_pages "1 pmtrack" "7 pmtrack"; do
		# shellcheck disable=SC2086
		f=$(man -w $page) || { echo "FAIL: man -w $page"; exit 1; }
		# Debian links /usr/local/man to share/man
		f=$(readlink -f "$f")
		case $f in
		/usr/local/share/man/*) echo "man $page: $f" ;;
		*) echo "FAIL: man $page is $f, not the installed page"; exit 1 ;;
		esac
	done
	man -P cat pmtrack_collect_pages 2>/dev/null | grep -q "pmtrack_collect_pages" ||
		{ echo "FAIL: man pmtrack_collect_pages does not render"; exit 1; }
	[ "$(command -v pmtrack)" = /usr/local/bin/pmtrack ] ||
		{ echo "FAIL: pmtrack is not on PATH from /usr/local/bin"; exit 1; }
	pmtrack --version
	[ -f /usr/local/share/bash-completion/completions/pmtrack ] ||
		{ echo "FAIL: no bash completion for pmtrack"; exit 1; }
' sh "$work" "$cmd" "$ccline" "$cflags" "$src"; then
	echo "FAIL: see above (install log: $work/install.log)"
	exit 1
fi
echo "readme install: all ok"
