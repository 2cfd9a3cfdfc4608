# SPDX-License-Identifier: MIT
# Sourced by the CLI test scripts (after they define no()): the checks of a
# --json output, read with jq.
command -v jq >/dev/null 2>&1 || { echo "FAIL: jq is needed"; exit 1; }
# $1 holds one JSON object, in UTF-8 (jq alone lets other bytes through;
# the kernel matrix's guest has jq but no iconv, where the queries of the
# names that are not UTF-8 still tell)
json_ok() {
	jq -e 'type == "object"' "$1" >/dev/null 2>&1 ||
		no "$1: not a JSON object: $(head -c 200 "$1")"
	! command -v iconv >/dev/null 2>&1 ||
		iconv -f UTF-8 -t UTF-8 "$1" >/dev/null 2>&1 ||
		no "$1: not UTF-8"
}
# the JSON in $1 makes the jq filter $2 true
jq_is() { jq -e "$2" "$1" >/dev/null 2>&1 || no "$1: not true: $2"; }
