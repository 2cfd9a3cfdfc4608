#!/bin/sh
# SPDX-License-Identifier: MIT
# The manual pages of a build tree: every symbol of the export map has a
# section 3 page (its own or a .so link), every page renders with man -l
# without a warning from groff, and pmtrack and each installed example
# have a section 1 page; every NAME line is what whatis(1) can show: plain
# text (no escape but the "\-" after the names), a description of under
# 100 characters, and lexgrog(1) parses it.
#   man_pages.sh MAN_DIR EXPORT_MAP "PROGRAM..."
set -eu
mandir=$1 map=$2 progs=$3
if ! command -v man >/dev/null 2>&1; then
	echo "SKIP: man is not installed (apt-get install man-db groff-base)"
	exit 77
fi
fail=0
err=$(mktemp)
trap 'rm -f "$err"' EXIT

# (a) a page per exported symbol
n=0
for sym in $(sed -n 's/^[[:space:]]*\(pmtrack_[A-Za-z0-9_]*\);.*/\1/p' "$map"); do
	n=$((n + 1))
	if [ ! -s "$mandir/man3/$sym.3" ]; then
		echo "FAIL: no page for $sym in $mandir/man3"
		fail=1
	fi
done
[ "$n" -gt 0 ] || { echo "FAIL: no symbols in $map"; exit 1; }
echo "section 3: $n exported symbols, each with a page"

# (b) every page renders without a warning (man --warnings=w passes -ww
# to groff; a .so page renders its target, so it is run from MAN_DIR)
pages=0
for page in "$mandir"/man1/*.1 "$mandir"/man3/*.3 "$mandir"/man3/*.3type \
		"$mandir"/man7/*.7; do
	[ -e "$page" ] || continue
	pages=$((pages + 1))
	rel=${page#"$mandir"/}
	if ! (cd "$mandir" && MANWIDTH=80 LC_ALL=C.UTF-8 \
			man --warnings=w -l "$rel" >/dev/null 2>"$err"); then
		echo "FAIL: man -l $rel failed"
		cat "$err"
		fail=1
	elif [ -s "$err" ]; then
		echo "FAIL: $rel: warnings:"
		cat "$err"
		fail=1
	fi
done
echo "rendered $pages pages"

# (b2) NAME lines: the line after .SH NAME (a .so link page is its
# target's), no escape other than "\-", under 100 characters after the
# " \- ", and lexgrog, which builds the whatis database, parses the page
lexgrog=$(command -v lexgrog || true)
[ -n "$lexgrog" ] || echo "note: no lexgrog (man-db): NAME lines not parsed"
names=0
for page in "$mandir"/man1/*.1 "$mandir"/man3/*.3 "$mandir"/man3/*.3type \
		"$mandir"/man7/*.7; do
	[ -e "$page" ] || continue
	grep -q '^\.so ' "$page" && continue
	rel=${page#"$mandir"/}
	names=$((names + 1))
	# the footer says which version the page is of, as every page does
	grep -q '^\.TH .*"libpmtrack [0-9][0-9.]*"' "$page" || {
		echo "FAIL: $rel: no \"libpmtrack VERSION\" in its .TH line"
		fail=1
	}
	line=$(awk '/^\.SH NAME/ { on = 1; next }
		on && /^\./ { exit }
		on { printf "%s%s", sep, $0; sep = " " }' "$page")
	case $line in
	*' \- '*) ;;
	*)
		printf 'FAIL: %s: NAME line is not "NAME... \\- text": %s\n' \
			"$rel" "$line"
		fail=1
		continue
		;;
	esac
	desc=${line#*' \- '}
	if printf '%s\n' "$line" | sed 's/\\-//g' | grep -q '\\'; then
		printf 'FAIL: %s: NAME line has an escape other than \\-: %s\n' \
			"$rel" "$line"
		fail=1
	fi
	if [ "${#desc}" -ge 100 ]; then
		printf 'FAIL: %s: NAME description of %d characters: %s\n' \
			"$rel" "${#desc}" "$desc"
		fail=1
	fi
	if [ -n "$lexgrog" ] && ! out=$("$lexgrog" "$page" 2>&1); then
		printf 'FAIL: lexgrog %s: %s\n' "$rel" "$out"
		fail=1
	elif [ -n "$lexgrog" ] && printf '%s\n' "$out" | grep -q 'parse failed'; then
		printf 'FAIL: lexgrog %s: %s\n' "$rel" "$out"
		fail=1
	fi
done
echo "NAME lines: $names pages checked${lexgrog:+, parsed by lexgrog}"

# (b3) SEE ALSO names pages that exist: every ".BR pmtrack... (3...)" or
# "(7)" after .SH "SEE ALSO" is a page of this tree (section 1 pages exist
# only for the programs built, which (c) checks)
refs=0
for page in "$mandir"/man1/*.1 "$mandir"/man3/*.3 "$mandir"/man3/*.3type \
		"$mandir"/man7/*.7; do
	[ -e "$page" ] || continue
	rel=${page#"$mandir"/}
	for ref in $(sed -n '/^\.SH "SEE ALSO"/,/^\.SH [^"]/s/^\.BR \(pmtrack[^ ]*\) (\([0-9][a-z]*\)).*/\1.\2/p' \
			"$page" | sed 's/\\-/-/g'); do
		sec=${ref##*.}
		sec=${sec%"${sec#?}"}
		[ "$sec" = 1 ] && continue
		refs=$((refs + 1))
		if [ ! -e "$mandir/man$sec/$ref" ]; then
			echo "FAIL: $rel: SEE ALSO names $ref, which is not in $mandir"
			fail=1
		fi
	done
done
echo "SEE ALSO: $refs references to pmtrack pages, each a page"
[ -s "$mandir/man7/pmtrack.7" ] || { echo "FAIL: no pmtrack.7"; fail=1; }

# (c) section 1 for pmtrack and each installed example
for p in $progs; do
	if [ ! -s "$mandir/man1/$p.1" ]; then
		echo "FAIL: no section 1 page for $p"
		fail=1
	fi
done
[ "$fail" -eq 0 ] && echo "man pages: all ok"
exit "$fail"
