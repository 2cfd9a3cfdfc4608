#!/bin/bash
# SPDX-License-Identifier: MIT
# The bash completion of pmtrack and the examples, driven as bash does:
# COMP_WORDS and COMP_CWORD set, the function called, COMPREPLY checked
# against what the programs' own help prints.
#   completion.sh COMPLETION_DIR TOOLS_DIR EXAMPLES_DIR
set -u
comp=$1 tools=$2 examples=$3
PATH=$tools:$examples:$PATH
fail=0

# shellcheck source=/dev/null
. "$comp/pmtrack" || { echo "FAIL: sourcing $comp/pmtrack"; exit 1; }

# no process substitution: it needs /dev/fd, which some systems (our
# Linux 6.1 guest) lack, and every completion would fail there
if grep -n '[<>](' "$comp/pmtrack"; then
	echo "FAIL: $comp/pmtrack uses process substitution"
	fail=1
fi

# offers WORD FN WORDS...: complete the last of WORDS with FN, as bash
# would; true if COMPREPLY then holds WORD
offers()
{
	local word=$1 fn=$2 w
	shift 2
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	"$fn"
	for w in "${COMPREPLY[@]}"; do
		[ "$w" = "$word" ] && return 0
	done
	return 1
}
# expect WANT FN WORD...: the completion must offer WANT
expect()
{
	local want=$1 r=0
	offers "$@" || r=$?
	shift 2
	if [ $r -eq 0 ]; then
		echo "ok: $* -> $want"
	else
		echo "FAIL: $* : COMPREPLY=(${COMPREPLY[*]}), expected $want in it"
		fail=1
	fi
}
# refuse NOTWANT FN WORD...: the completion must not offer NOTWANT
refuse()
{
	local notwant=$1 r=0
	offers "$@" || r=$?
	shift 2
	if [ $r -eq 0 ]; then
		echo "FAIL: $* offers $notwant"
		fail=1
	else
		echo "ok: $* -> not $notwant"
	fi
}

# commands from `pmtrack help`
expect send _pmtrack pmtrack se
refuse recv _pmtrack pmtrack se
expect restore _pmtrack pmtrack re
# options from `pmtrack help send`: the first one it lists starting --dow
opt=$(pmtrack help send | grep -oE -- '--dow[a-z0-9-]*' | head -n 1)
[ -n "$opt" ] || { echo "FAIL: pmtrack help send lists no --dow..."; exit 1; }
expect "$opt" _pmtrack pmtrack send --dow
expect --json _pmtrack pmtrack inspect --js
expect --help _pmtrack pmtrack --he
# options only from the usage and option lines: dump's paragraph names
# restore's --out-dir, restore's names dump's --pid
refuse --out-dir _pmtrack pmtrack dump --
expect --pid _pmtrack pmtrack dump --
refuse --pid _pmtrack pmtrack restore --
expect --out-dir _pmtrack pmtrack restore --
expect --upto _pmtrack pmtrack restore --
# every option offered is one the command takes: its help has it on an
# option line or a usage line
for c in probe stat inspect send recv dump restore track; do
	h=$(pmtrack help "$c")
	COMP_WORDS=(pmtrack "$c" --)
	COMP_CWORD=2
	COMPREPLY=()
	_pmtrack
	[ ${#COMPREPLY[@]} -gt 0 ] || { echo "FAIL: pmtrack $c -- offers nothing"; fail=1; }
	for o in "${COMPREPLY[@]}"; do
		grep -qE -- "^(usage:|   ).*[[ |]$o([] =|]|\$)|^  ( |  )?(-[A-Za-z], )?$o( |\$)" <<<"$h" ||
			{ echo "FAIL: pmtrack $c -- offers $o, not an option of its help"; fail=1; }
	done
done
echo "ok: pmtrack COMMAND -- offers only the commands' own options"
# values: the feature names pmtrack probe --list-features prints
feat=$(pmtrack probe --list-features | head -n 1)
[ -n "$feat" ] || { echo "FAIL: pmtrack probe --list-features prints nothing"; fail=1; }
expect "$feat" _pmtrack pmtrack probe --feature ""
expect backend-mprotect _pmtrack pmtrack probe --feature backend-m
refuse pagemap-scan _pmtrack pmtrack probe --feature backend-
# values: a file for --out FILE, directories for dump's DIR
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
touch "$work/stream.pmts"
mkdir "$work/ckptdir"
expect "$work/stream.pmts" _pmtrack pmtrack send --out "$work/st"
expect "$work/ckptdir" _pmtrack pmtrack inspect "$work/ck"
# an option whose value is a number completes nothing
COMP_WORDS=(pmtrack send --max-rounds "")
COMP_CWORD=3
COMPREPLY=()
_pmtrack
[ ${#COMPREPLY[@]} -eq 0 ] || { echo "FAIL: --max-rounds offers ${COMPREPLY[*]}"; fail=1; }

# an example, loaded under its name (the link bash-completion sources)
for p in pmtrack-vmm-migrate pmtrack-checkpoint pmtrack-kvm-migrate; do
	[ -e "$comp/$p" ] || { echo "FAIL: no completion for $p"; fail=1; continue; }
	[ -L "$comp/$p" ] || continue	# it prints no usage: file names only
	# shellcheck source=/dev/null
	. "$comp/$p"
	complete -p "$p" | grep -q -- '-F _pmtrack_prog' ||
		{ echo "FAIL: $p not registered"; fail=1; continue; }
	opt=$("$examples/$p" --help | grep -oE -- '--[a-z0-9][a-z0-9-]*' | head -n 1)
	expect "$opt" _pmtrack_prog "$examples/$p" "${opt:0:4}"
done
for p in pmtrack-demo pmtrack-gc-demo; do
	[ -e "$comp/$p" ] || { echo "FAIL: no completion for $p"; fail=1; }
done
# values of pmtrack-kvm-migrate: --rearm written|range gives both words;
# --backend NAME, whose text lists them, the backends
if [ -L "$comp/pmtrack-kvm-migrate" ]; then
	kvm=$examples/pmtrack-kvm-migrate
	expect written _pmtrack_prog "$kvm" --rearm ""
	expect range _pmtrack_prog "$kvm" --rearm ""
	refuse range _pmtrack_prog "$kvm" --rearm w
	for b in auto pagemap-scan soft-dirty uffd-wp mprotect; do
		expect "$b" _pmtrack_prog "$kvm" --backend ""
	done
	COMP_WORDS=("$kvm" --backend "")
	COMP_CWORD=2
	COMPREPLY=()
	_pmtrack_prog
	[ ${#COMPREPLY[@]} -eq 5 ] ||
		{ echo "FAIL: --backend offers ${COMPREPLY[*]}"; fail=1; }
fi
[ $fail -eq 0 ] && echo "completion: all ok"
exit $fail
