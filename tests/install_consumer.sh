#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the library into a scratch prefix, then build and run a consumer
# program against the installed copy: via pkg-config (shared and static)
# and via CMake's find_package(pmtrack).  Also check what the shared
# library exports.
#   install_consumer.sh BUILD_DIR SOURCE_DIR WORK_DIR [EXTRA_CFLAGS]
set -eu
build=$1 src=$2 work=$3 cflags=${4:-}
cc=${CC:-cc}
for tool in cmake pkg-config "$cc"; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "SKIP: $tool is not installed (a test VM without a toolchain)"
		exit 77
	fi
done

rm -rf "$work"
mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >"$work/install.log"

pc=$(find "$work/prefix" -name pmtrack.pc)
[ -n "$pc" ] || { echo "FAIL: pmtrack.pc not installed"; exit 1; }
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
libdir=$(pkg-config --variable=libdir pmtrack)
echo "pkg-config: pmtrack $(pkg-config --modversion pmtrack), libdir $libdir"

# shellcheck disable=SC2046,SC2086
$cc $cflags -Wall -Wextra -Werror "$src/tests/consumer/consumer.c" \
	$(pkg-config --cflags --libs pmtrack) -Wl,-rpath,"$libdir" \
	-o "$work/consumer-pc"
"$work/consumer-pc"

# shellcheck disable=SC2046,SC2086
$cc $cflags -Wall -Wextra -Werror "$src/tests/consumer/consumer.c" \
	$(pkg-config --cflags pmtrack) "$libdir/libpmtrack.a" \
	$(pkg-config --static --libs-only-other pmtrack) \
	$(pkg-config --static --libs-only-l pmtrack | sed 's/-lpmtrack//') \
	-o "$work/consumer-static"
"$work/consumer-static"

# the public header is valid C++ too
if command -v c++ >/dev/null 2>&1; then
	printf '#include <pmtrack/pmtrack.h>\n#include <pmtrack/stream.h>\n#include <pmtrack/migrate.h>\n' |
		c++ -x c++ -fsyntax-only -Wall -Werror $(pkg-config --cflags pmtrack) -
fi

cmake -S "$src/tests/consumer" -B "$work/cmake" \
	-DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_C_FLAGS="$cflags" \
	-DCMAKE_EXE_LINKER_FLAGS="$cflags" >"$work/cmake.log"
cmake --build "$work/cmake" >>"$work/cmake.log"
"$work/cmake/consumer"
"$work/cmake/consumer_static"

# only pmtrack_* symbols leave the shared library, and the soname is .so.0
so="$libdir/libpmtrack.so"
bad=$(nm -D --defined-only "$so" | awk '{print $3}' | grep -v -e '^pmtrack_' -e '^PMTRACK_' || true)
[ -z "$bad" ] || { echo "FAIL: unexpected exports: $bad"; exit 1; }
n=$(nm -D --defined-only "$so" | grep -c ' T pmtrack_')
echo "exports: $n pmtrack_ functions"
readelf -d "$so" | grep -q 'SONAME.*libpmtrack\.so\.0\]' ||
	{ echo "FAIL: soname"; readelf -d "$so" | grep SONAME; exit 1; }
# the manual pages are found where they were installed, and render
if [ -d "$work/prefix/share/man/man3" ]; then
	if command -v man >/dev/null 2>&1; then
		export MANPATH="$work/prefix/share/man"
		for q in pmtrack_collect_pages "1 pmtrack" "7 pmtrack"; do
			# shellcheck disable=SC2086
			p=$(man -w $q) || { echo "FAIL: man -w $q"; exit 1; }
			case $p in "$work/prefix/share/man/"*) ;;
			*) echo "FAIL: man -w $q found $p, not the installed page"
			   exit 1 ;;
			esac
			echo "man -w $q: $p"
		done
		MANWIDTH=80 man -P cat pmtrack_collect_pages 2>&1 |
			grep -q 'RETURN VALUE' ||
			{ echo "FAIL: man pmtrack_collect_pages does not render"; exit 1; }
		unset MANPATH
	else
		echo "man is not installed: installed pages not looked up"
	fi
	comp="$work/prefix/share/bash-completion/completions"
	[ -s "$comp/pmtrack" ] || { echo "FAIL: no bash completion installed"; exit 1; }
fi
echo "install consumer: all ok"
