#!/bin/sh
# SPDX-License-Identifier: MIT
# pmtrack-gc-demo (examples/gc_writewatch.c) on the backend PMTRACK_BACKEND
# names: the concurrent mark misses no live object (the example checks it
# against a stop-the-world mark), and its re-scan rounds show the point of
# write watches: in every round the pages re-scanned are the pages
# GetWriteWatch reported, more than none (the mutators wrote; the example
# lets them store between rounds) and no more than the nursery's (the only
# pages the mutators write: more would be pages reported that nobody
# wrote), and over all rounds they are a small part (under 10 %) of what
# re-scanning the whole heap each round would visit.  The total line must
# add the rounds up; numbers are plain digits.  Exit 77 (the example's
# SKIP lines printed) where no backend gives write watches.
#   example_gc.sh PMTRACK_GC_DEMO [ARGS...]
set -u
bin=$1
shift
out=$(mktemp) || exit 1
trap 'rm -f "$out"' EXIT

"$bin" "$@" >"$out" 2>&1
rc=$?
cat "$out"
[ $rc -eq 77 ] && exit 77
[ $rc -eq 0 ] || { echo "FAIL: pmtrack-gc-demo exited $rc"; exit 1; }
grep -q '^OK: every live object was marked$' "$out" ||
	{ echo "FAIL: no OK line"; exit 1; }
grep -q '^live [0-9]*, marked [0-9]* .*, live but unmarked 0$' "$out" ||
	{ echo "FAIL: live objects left unmarked"; exit 1; }

# heap ... a S nursery (N pages), ...
# round N[ (mutators paused)]: GetWriteWatch reported R written pages;
# re-scanned V of H heap pages (P %), ...
# total: re-scanned V pages in N rounds (GetWriteWatch reported R), of T ...
awk '
function fail(msg) { print "FAIL: " msg; bad = 1 }
/^heap / {
	if (!match($0, /nursery \([0-9]+ pages\)/)) {
		fail("setup line not understood: " $0); next
	}
	split(substr($0, RSTART, RLENGTH), w, /[( ]/)
	nursery = w[3]
}
/[0-9],[0-9][0-9][0-9]/ { fail("a number with a thousands separator: " $0) }
/^round / {
	n++
	if (!match($0, /reported [0-9]+ written pages; re-scanned [0-9]+ of [0-9]+ heap pages/)) {
		fail("round line not understood: " $0); next
	}
	split(substr($0, RSTART, RLENGTH), w, " ")
	rep = w[2]; vis = w[6]; heap = w[8]
	if (rep != vis)
		fail("round " n ": re-scanned " vis " pages, GetWriteWatch reported " rep)
	if (vis + 0 <= 0)
		fail("round " n ": no page re-scanned (the mutators wrote)")
	if (vis + 0 > heap + 0)
		fail("round " n ": more pages re-scanned than the heap has")
	if (nursery == "")
		fail("round " n ": no nursery size before it")
	else if (rep + 0 > nursery + 0)
		fail("round " n ": GetWriteWatch reported " rep " pages, the mutators write only the " nursery " of the nursery")
	paused += /\(mutators paused\)/
	sum_v += vis; sum_r += rep; pages = heap
}
/^total: / {
	if (!match($0, /re-scanned [0-9]+ pages in [0-9]+ rounds \(GetWriteWatch reported [0-9]+\), of [0-9]+ /)) {
		fail("total line not understood: " $0); next
	}
	split(substr($0, RSTART, RLENGTH), w, " ")
	tv = w[2]; tn = w[5]; tr = w[9]; tall = w[11]
	sub(/\),/, "", tr)
	seen_total = 1
}
END {
	if (n < 2) fail("fewer than two re-scan rounds")
	if (paused != 1) fail("not exactly one round with the mutators paused")
	if (!seen_total) fail("no total line")
	else {
		if (tn != n || tv != sum_v || tr != sum_r || tall != n * pages)
			fail("the total (" tv " of " tall " in " tn " rounds, " tr " reported) does not add up the rounds (" sum_v " of " n * pages " in " n ", " sum_r ")")
		if (tv * 10 >= tall)
			fail("re-scanned " tv " of " tall " page visits: not under 10 %")
		printf "re-scanned %d of %d page visits (%.2f %%) in %d rounds, at most %d pages (the nursery) each\n", tv, tall, 100 * tv / tall, n, nursery
	}
	exit bad
}' "$out" || exit 1
echo PASS
