#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Report the functions of lib/ (or the folders given) over the limits of
# docs/design.md: more than 80 lines, or a cyclomatic complexity (pmccabe's
# modified or traditional figure) over 20.  A report, not a gate: it exits 0
# whatever it finds, and 2 only when it cannot measure (no pmccabe).
# Functions kept over the limits on purpose are listed in
# tests/complexity-exceptions.txt, one "file function" per line with why.
set -euo pipefail
cd "$(dirname "$0")/.."
max_lines=80 max_cc=20
command -v pmccabe >/dev/null || {
	echo "complexity: pmccabe is not installed (apt-get install pmccabe)" >&2
	exit 2
}
[ $# -gt 0 ] || set -- lib
exceptions=tests/complexity-exceptions.txt
files=$(find "$@" -name '*.c' | sort)
total=$(pmccabe $files | wc -l)
over=$(pmccabe $files | awk -v l=$max_lines -v c=$max_cc \
	'$1 > c || $2 > c || $5 > l {
		split($6, a, "("); print a[1], $7, $5, $1 "/" $2 }')
echo "complexity: $total functions in $*; limits $max_lines lines, CC $max_cc"
if [ -z "$over" ]; then
	echo "complexity: none over the limits"
	exit 0
fi
printf '%-40s %-28s %6s %8s  %s\n' file function lines 'CC m/t' status
while read -r file fn lines cc; do
	status=NEW
	if [ -f "$exceptions" ] &&
	   grep -qE "^$file[[:space:]]+$fn([[:space:]]|$)" "$exceptions"; then
		status="kept (see $exceptions)"
	fi
	printf '%-40s %-28s %6s %8s  %s\n' "$file" "$fn" "$lines" "$cc" "$status"
done <<<"$over"
