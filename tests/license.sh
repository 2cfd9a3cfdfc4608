#!/bin/sh
# SPDX-License-Identifier: MIT
# LICENSE holds the MIT license and names its holders, and every file git
# tracks (the binary test data aside) carries the SPDX tag of that license
# and no other.
#   license.sh SOURCE_DIR
set -eu
src=$1
cd "$src"
if ! command -v git >/dev/null 2>&1 || ! git rev-parse --git-dir >/dev/null 2>&1; then
	echo "SKIP: not a git checkout (or no git): the tracked files are unknown"
	exit 77
fi
head -1 LICENSE | grep -qx 'MIT License' ||
	{ echo "FAIL: LICENSE does not start with 'MIT License'"; exit 1; }
grep -q '^Copyright (c) [0-9]\{4\} ' LICENSE ||
	{ echo "FAIL: LICENSE names no copyright holder"; exit 1; }
grep -q 'Permission is hereby granted, free of charge' LICENSE ||
	{ echo "FAIL: LICENSE is not the MIT text"; exit 1; }

bad=0 n=0
for f in $(git ls-files); do
	case $f in
	LICENSE | tests/golden/* | tests/fuzz/corpus/*) continue ;;
	esac
	n=$((n + 1))
	tags=$(grep -o 'SPDX-License-Identifier: [A-Za-z0-9.+-][A-Za-z0-9.+-]*' "$f" | sort -u)
	if [ "$tags" != "SPDX-License-Identifier: MIT" ]; then
		echo "FAIL: $f: ${tags:-no SPDX tag}"
		bad=1
	fi
done
[ "$bad" -eq 0 ] || exit 1
echo "license: LICENSE is MIT; $n tracked files tagged MIT"
