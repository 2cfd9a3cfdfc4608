# SPDX-License-Identifier: MIT
#
# Pre-copy rounds per dirty rate, from the CSVs that
# `pmtrack-bench-migrate --csv-dir DIR` writes (DIR/rounds-<rate>.csv: round,
# pages, dirty_pages, bytes, duration_ms, expected_downtime_ms; one file per
# dirty rate, the run with the median total time).
#
#   gnuplot -c bench/plot_rounds.gp DIR [OUT.svg] [LIMIT_MS] [SUBTITLE]
#
# (after regenerating, put the SPDX comment back under the XML declaration)
# OUT defaults to DIR/precopy-rounds.svg; LIMIT_MS (default 300) is the
# downtime limit drawn in the lower panel; SUBTITLE goes under the title.
# The figure in docs/benchmarks.md:
#
#   ./build/bench/pmtrack-bench-migrate --csv-dir /tmp/rounds
#   gnuplot -c bench/plot_rounds.gp /tmp/rounds docs/precopy-rounds.svg 300 \
#       "1 GiB, 2 writers, 80% hot"
#
# Upper panel: pages written during each round (sent by the next one); lower
# panel: the expected downtime after each round against the limit.  Both
# axes are logarithmic, so zeros (the final round, a rate of 0) are not
# drawn.

if (ARGC < 1) {
	print "usage: gnuplot -c plot_rounds.gp CSV_DIR [OUT.svg] [LIMIT_MS] [SUBTITLE]"
	exit status 2
}
dir = ARG1
out = ARGC >= 2 ? ARG2 : dir . "/precopy-rounds.svg"
limit = ARGC >= 3 ? real(ARG3) : 300.0
subtitle = ARGC >= 4 ? "\n" . ARG4 : ""

rates = system(sprintf("ls '%s' | sed -n 's/^rounds-\\([0-9]*\\)\\.csv$/\\1/p' | sort -n", dir))
if (words(rates) == 0) {
	print sprintf("plot_rounds.gp: no rounds-<rate>.csv in %s", dir)
	exit status 1
}
file(r) = sprintf("%s/rounds-%s.csv", dir, r)
pos(v) = v > 0 ? v : NaN

set terminal svg size 800,700 dynamic enhanced font "sans,12" background "white"
set output out
set datafile separator ","
set key at screen 0.99, screen 0.9 right top Left reverse title "dirty rate" box
set lmargin at screen 0.11
set rmargin at screen 0.72
set grid
set logscale y
set format y "10^{%L}"
set xtics 1
set xrange [-0.3:*]
set offsets 0, 0.3, 0, 0

set multiplot layout 2,1 title "pmtrack_precopy() rounds by dirty rate (pmtrack-bench-migrate)" . subtitle noenhanced

set ylabel "dirty pages after the round"
unset xlabel
plot for [r in rates] file(r) skip 1 using 1:(pos($3)) \
	with linespoints lw 2 pt 7 ps 0.7 title r . " pages/s"

set xlabel "round"
set ylabel "expected downtime (ms)"
set key inside right top title ""
set key nobox
plot for [r in rates] file(r) skip 1 using 1:(pos($6)) \
	with linespoints lw 2 pt 7 ps 0.7 notitle, \
	limit with lines dt 2 lw 1.5 lc rgb "black" \
	title sprintf("limit %g ms", limit)

unset multiplot
set output
