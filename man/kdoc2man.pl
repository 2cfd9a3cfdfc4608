#!/usr/bin/perl
# SPDX-License-Identifier: MIT
#
# kdoc2man.pl: section 3 manual pages from the kernel-doc comments of the
# public headers, so that the pages and the headers cannot drift apart.
#
#   kdoc2man.pl --map lib/libpmtrack.map --out DIR --version X.Y.Z
#               [--group HEADER=PAGE] HEADER...
#
# Writes DIR/man3/NAME.3 for every function in the export map (one page
# each, or a .so link to the group page of its header), and
# DIR/man3/NAME.3type for every struct the headers define.  A function
# comment looks like
#
#   /**
#    * name() - summary, possibly over several lines
#    * @param: what it is, continuation lines indented
#    *
#    * Body paragraphs; "- " starts a list item.
#    *
#    * Return: what it returns.  Thread-safe.
#    */
#
# It fails (exit 1, naming the symbol) for an exported function without
# such a comment, without a prototype after it, without "Return:" when it
# returns something, or whose comment names a parameter (@x: or @x) the
# prototype does not have; and for a field of a struct the headers define
# that has no comment (one before it or after it on its line; `size_t sz`
# aside, whose text is the convention of <pmtrack/common.h>).
use strict;
use warnings;
use Getopt::Long;
use File::Basename;
use File::Path qw(make_path remove_tree);

my ($map, $out, $version, @groups);
GetOptions('map=s' => \$map, 'out=s' => \$out, 'version=s' => \$version,
	   'group=s' => \@groups)
	or die "usage: kdoc2man.pl --map MAP --out DIR --version V HEADER...\n";
die "kdoc2man: --map, --out and --version are required\n"
	unless $map && $out && $version;
my %group = map { split /=/, $_, 2 } @groups;
my @errors;

# ---- reading ----------------------------------------------------------------

my %func;	# name -> { header, summary, params, body, ret, thread, proto }
my %struct;	# name -> { header, comment, fields, def }
my %filedoc;	# header -> [lines of its top comment]
my %doc;	# DOC: name -> [lines], shared by the functions that name it

sub strip_comment_lines {
	my @l = @_;
	for (@l) {
		s/\s+$//;
		s{^\s*/\*\*?\s?}{};
		s{\s*\*/\s*$}{};
		s/^\s*\*(?:\s|$)// or s/^\s*\*$//;
	}
	return @l;
}

# a plain /* */ comment's text, for struct and field comments
sub comment_text {
	my ($c) = @_;
	$c =~ s{^\s*/\*+}{};
	$c =~ s{\*/\s*$}{};
	my @l = split /\n/, $c;
	s/^\s*\*?\s?// for @l;
	s/\s+$// for @l;
	shift @l while @l && $l[0] eq '';
	pop @l while @l && $l[-1] eq '';
	return @l;
}

for my $path (@ARGV) {
	my $h = basename($path);
	open my $fh, '<', $path or die "kdoc2man: $path: $!\n";
	my @lines = <$fh>;
	close $fh;
	chomp @lines;
	my $i = 0;
	my ($lastc, $lastc_end) = (undef, -2);
	my $seen_file_comment = 0;
	while ($i < @lines) {
		my $l = $lines[$i];
		if ($l =~ m{^\s*/\*\*(?!/)}) {
			my @c;
			while ($i < @lines) {
				push @c, $lines[$i];
				last if $lines[$i++] =~ m{\*/};
			}
			parse_kdoc($h, [strip_comment_lines(@c)], \@lines, $i);
			next;
		}
		if ($l =~ m{^\s*/\*}) {
			my $c = '';
			while ($i < @lines) {
				$c .= $lines[$i] . "\n";
				last if $lines[$i++] =~ m{\*/};
			}
			if (!$seen_file_comment && $c !~ /SPDX-License/) {
				$seen_file_comment = 1;
				$filedoc{$h} = [comment_text($c)];
			}
			($lastc, $lastc_end) = ($c, $i - 1);
			next;
		}
		if ($l =~ /^struct (\w+) \{/) {
			my $name = $1;
			my $cm = $lastc_end == $i - 1 ? $lastc : undef;
			my @body;
			$i++;
			while ($i < @lines && $lines[$i] !~ /^\};/) {
				push @body, $lines[$i++];
			}
			$struct{$name} = parse_struct($h, $name, $cm, @body);
		}
		$i++;
	}
}

sub parse_kdoc {
	my ($h, $c, $lines, $i) = @_;
	my @c = @$c;
	shift @c while @c && $c[0] eq '';
	pop @c while @c && $c[-1] eq '';
	# "DOC: NAME", a block that function comments pull in with a line
	# "DOC: NAME" of their own
	if (@c && $c[0] =~ /^DOC:\s*(\w+)\s*$/) {
		my $t = $1;
		shift @c;
		shift @c while @c && $c[0] eq '';
		$doc{$t} = [@c];
		return;
	}
	return unless @c && $c[0] =~ /^(\w+)\(\)\s+-\s+(.*)$/;
	my ($name, $summary) = ($1, $2);
	shift @c;
	# a Return: in mid-line starts a line of its own
	@c = map { /^(.*\S)\s+(Return:.*)$/ ? ($1, $2) : $_ } @c;
	if ($summary =~ /^(.*\S)\s+(Return:.*)$/) {
		$summary = $1;
		unshift @c, $2;
	}
	# the summary runs on to a blank line, a parameter or Return:
	while (@c && $c[0] ne '' && $c[0] !~ /^\s*@\w+.*?:/ &&
	       $c[0] !~ /^Return:/) {
		$summary .= ' ' . ($c[0] =~ s/^\s+//r);
		shift @c;
	}
	# the declaration: up to the first ';' (or a #define line)
	my $decl = '';
	while ($i < @$lines) {
		my $d = $lines->[$i++];
		last if $decl eq '' && $d =~ /^\s*$/;
		$decl .= ' ' . $d;
		last if $d =~ /;/ || $d =~ /^#/;
	}
	$decl =~ s/\s+/ /g;
	$decl =~ s/^\s+|\s+$//g;
	return unless $decl =~ /\bPMTRACK_API\b/;
	$decl =~ s/\bPMTRACK_API\s+//;
	my (@params, @body, @ret, $in);
	for my $l (@c) {
		if ($l =~ /^\s*((?:@\w+\s*,\s*)*@\w+)\s*:\s*(.*)$/ && !$in) {
			my ($names, $t) = ($1, $2);
			push @params, [[map { s/^@//r } split /\s*,\s*/, $names],
				       [$t]];
			next;
		}
		if ($l =~ /^Return:\s*(.*)$/) {
			$in = 'ret';
			push @ret, $1;
			next;
		}
		if ($in && $in eq 'ret') {
			if ($l eq '') {
				$in = 'body';
			} else {
				push @ret, $l;
				next;
			}
		}
		if (@params && !$in && $l ne '' && $l =~ /^\s/) {
			push @{$params[-1][1]}, $l;
			next;
		}
		$in = 'body' if $l ne '' || @body;
		push @body, $l;
	}
	shift @body while @body && $body[0] eq '';
	pop @body while @body && $body[-1] eq '';
	# sentences about threads go to THREAD SAFETY
	my @thread;
	for my $part (\@body, \@ret) {
		my $t = join("\n", @$part);
		while ($t =~ s/(?:^|(?<=[.;]\s)|(?<=[.;]\s\s)|(?<=\n))((?:Thread-safe|Thread safety)\b[^.]*(?:\.|$))\s*//s) {
			my $s = $1;
			$s =~ s/\s+/ /g;
			push @thread, $s;
		}
		$t =~ s/[ \t]+$//mg;
		$t =~ s/[.;]\s*$/./ if $part == \@ret && $t =~ /\S/;
		@$part = $t eq '' ? () : split /\n/, $t, -1;
	}
	$func{$name} = { header => $h, summary => $summary,
			 params => \@params, body => \@body, ret => \@ret,
			 thread => \@thread, proto => $decl };
}

sub split_top {
	my ($s) = @_;
	my ($depth, $cur, @parts) = (0, '');
	for my $ch (split //, $s) {
		$depth++ if $ch eq '(' || $ch eq '[';
		$depth-- if $ch eq ')' || $ch eq ']';
		if ($ch eq ',' && $depth == 0) {
			push @parts, $cur;
			$cur = '';
		} else {
			$cur .= $ch;
		}
	}
	push @parts, $cur;
	s/^\s+|\s+$//g for @parts;
	return @parts;
}

# "const uint8_t out[PMTRACK_DIGEST_LEN]" -> ("const uint8_t ", "out", "[...]")
sub split_decl {
	my ($d) = @_;
	return ($1, $2, $3) if $d =~ /^(.*\(\s*\*\s*)(\w+)(\).*)$/;
	return ($1, $2, $3) if $d =~ /^(.*?[\s*])(\w+)(\s*(?:\[[^\]]*\])*)$/;
	return ($d, '', '');
}

sub parse_struct {
	my ($h, $name, $cm, @body) = @_;
	my (@fields, @def, @pending);
	my $i = 0;
	while ($i < @body) {
		my $l = $body[$i++];
		next if $l =~ /^\s*$/;
		if ($l =~ m{^\s*/\*}) {
			my $c = $l . "\n";
			while ($l !~ m{\*/} && $i < @body) {
				$l = $body[$i++];
				$c .= $l . "\n";
			}
			push @pending, comment_text($c);
			next;
		}
		my $decl = $l;
		while ($decl !~ /;/ && $i < @body) {
			$decl .= ' ' . ($body[$i++] =~ s/^\s+//r);
		}
		my $trail = '';
		if ($decl =~ s{;\s*(/\*.*)$}{;}) {
			$trail = $1;
			while ($trail !~ m{\*/} && $i < @body) {
				$trail .= "\n" . $body[$i++];
			}
		}
		$decl =~ s/^\s+|\s+$//g;
		$decl =~ s/\s+/ /g;
		push @def, $decl;
		my @text = (@pending, $trail ne '' ? comment_text($trail) : ());
		@pending = ();
		next if $decl =~ /^size_t\s*:\s*0;$/;
		$decl =~ s/;$//;
		my @names;
		if ($decl =~ /\(\s*\*\s*(\w+)\s*\)/) {
			@names = ($1);
		} else {
			my @parts = split_top($decl);
			my ($type) = split_decl($parts[0]);
			$type =~ s/\*+\s*$//;
			for my $p (@parts) {
				my (undef, $n) = split_decl($p);
				push @names, $n;
			}
		}
		push @fields, { names => \@names, decl => $decl, text => \@text };
	}
	return { header => $h, comment => $cm ? [comment_text($cm)] : [],
		 fields => \@fields, def => \@def };
}

# ---- checks -----------------------------------------------------------------

open my $mf, '<', $map or die "kdoc2man: $map: $!\n";
my @exported;
while (<$mf>) {
	push @exported, $1 if /^\s*(pmtrack_\w+)\s*;/;
}
close $mf;
die "kdoc2man: no symbols in $map\n" unless @exported;

my %proto;	# name -> { ret, params => [[type, name, suffix]...] }
for my $name (@exported) {
	my $f = $func{$name};
	unless ($f) {
		push @errors, "$name: exported ($map) but no kernel-doc comment " .
			"(/** $name() - summary) before its prototype in the headers";
		next;
	}
	unless ($f->{proto} =~ /^(.*?)\b\Q$name\E\s*\((.*)\)\s*;$/) {
		push @errors, "$name: the declaration after its comment is not its " .
			"prototype: $f->{proto}";
		next;
	}
	my ($ret, $args) = ($1, $2);
	$ret =~ s/\s+$//;
	my @p;
	if ($args !~ /^\s*void\s*$/) {
		@p = map { [split_decl($_)] } split_top($args);
	}
	$proto{$name} = { ret => $ret, params => \@p };
	my $text = join "\n", @{$f->{body}}, @{$f->{ret}},
		map { @{$_->[1]} } @{$f->{params}};
	my %has = map { $_->[1] => 1 } @p;
	for my $pd (@{$f->{params}}) {
		for my $n (@{$pd->[0]}) {
			push @errors, "$name: the comment documents \@$n, which the " .
				"prototype does not have" unless $has{$n};
		}
	}
	while ($text =~ /@(\w+)/g) {
		push @errors, "$name: the comment names \@$1, which the " .
			"prototype does not have" unless $has{$1};
	}
	if ($ret !~ /^void$/ && !@{$f->{ret}}) {
		push @errors, "$name: returns $ret but its comment has no " .
			"\"Return:\" section";
	}
}
# every field of every struct of the headers says what it is
for my $s (sort keys %struct) {
	for my $fl (@{$struct{$s}{fields}}) {
		next if @{$fl->{text}} || $fl->{decl} eq 'size_t sz';
		push @errors, "struct $s ($struct{$s}{header}): field " .
			"\"$fl->{decl}\" has no comment (/* ... */ before it, " .
			"or after it on its line)";
	}
}
if (@errors) {
	print STDERR "kdoc2man: $_\n" for @errors;
	print STDERR "kdoc2man: ", scalar(@errors), " problem(s): fix the " .
		"comments in the headers\n";
	exit 1;
}

# ---- roff -------------------------------------------------------------------

my %exported = map { $_ => 1 } @exported;

sub esc {
	my ($t) = @_;
	$t =~ s/\\/\\e/g;
	$t =~ s/-/\\-/g;
	return $t;
}

# a line of running text: escaped, functions bold, parameters italic
sub inline {
	my ($t) = @_;
	$t = esc($t);
	$t =~ s/\b(\w+)\(\)/\\fB$1\\fP()/g;
	$t =~ s/@(\w+)/\\fI$1\\fP/g;
	$t =~ s/^([.'])/\\&$1/;
	return $t;
}

# (text with "(...)" groups that follow a space taken out)
sub drop_parens {
	my ($t) = @_;
	my ($o, $depth) = ('', 0);
	for my $i (0 .. length($t) - 1) {
		my $ch = substr $t, $i, 1;
		if ($depth) {
			$depth++ if $ch eq '(';
			$depth-- if $ch eq ')';
			next;
		}
		if ($ch eq '(' && $o =~ /\s$/) {
			$o =~ s/\s+$//;
			$depth = 1;
			next;
		}
		$o .= $ch;
	}
	return $o;
}

# The description of a NAME line, the one line whatis(1) and apropos(1)
# show: plain text (no font changes, hyphens as they are), one clause.
# The summary is cut to its first sentence, and if that is over 80
# characters its parenthesised asides go, then what follows the last
# ";", ":" or "," within 80 characters; the whole summary stays in
# DESCRIPTION.  Its first letter is lower-cased when the rest of its first
# word is lower case ("A region", "Windows"; not "XXH3", "GetWriteWatch()").  Over 100 characters after
# all that is an error: shorten the summary in the header.
my $NAME_MAX = 80;
sub name_desc {
	my ($what, $t) = @_;
	$t =~ s/@(\w+)/$1/g;
	$t =~ s/\s+/ /g;
	$t =~ s/^\s+|\s+$//g;
	$t = $1 if $t =~ /^(.*?[^.\s])\.\s+\S/;
	if (length $t > $NAME_MAX) {
		$t = drop_parens($t);
		$t = $1 if length $t > $NAME_MAX &&
			$t =~ /^(.{1,$NAME_MAX}\S)[;:,]\s/;
	}
	$t =~ s/[.:;,]$//;
	$t = lcfirst $t if $t =~ /^[A-Z][a-z]*(?:[\s,:;]|$)/;
	push @errors, "$what: the NAME line's description is " . length($t) .
		" characters (over 100): \"$t\"" if length $t > 100;
	$t =~ s/\\/\\e/g;
	return $t;
}

# text lines -> roff: blank lines part paragraphs, "- " starts a list item
sub render {
	my (@l) = @_;
	my ($o, $para, $item, $item_ind) = ('', 0, 0, 0);
	for my $l (@l) {
		if ($l =~ /^\s*$/) {
			$para = 1;
			next;
		}
		if ($l =~ /^(\s*)-\s+(.*)$/) {
			$o .= ".IP \\(bu 2\n" . inline($2) . "\n";
			($item, $item_ind, $para) = (1, length($1), 0);
			next;
		}
		if ($item && !$para && $l =~ /^(\s*)/ && length($1) > $item_ind) {
			$o .= inline($l =~ s/^\s+//r) . "\n";
			next;
		}
		if ($para || $item) {
			$o .= ".PP\n" if $o ne '';
			($para, $item) = (0, 0);
		}
		$o .= inline($l =~ s/^\s+//r) . "\n";
	}
	return $o;
}

sub th {
	my ($name, $sec) = @_;
	return ".\\\" SPDX-License-Identifier: MIT\n" .
		".\\\" Generated by man/kdoc2man.pl from the kernel-doc " .
		"comments of the headers; do not edit.\n" .
		".TH \U$name\E $sec \"\" \"libpmtrack $version\" " .
		"\"libpmtrack Programmer's Manual\"\n";
}

sub synopsis_func {
	my ($name) = @_;
	my $p = $proto{$name};
	my $ret = esc($p->{ret});
	my $sep = $p->{ret} =~ /\*$/ ? '' : ' ';
	my @ps = @{$p->{params}};
	return ".BI \"$ret$sep$name(void);\"\n" unless @ps;
	my $o = '';
	my $lead = "$ret$sep$name(";
	my $pad = ' ' x length($p->{ret} . $sep . $name . '(');
	for my $k (0 .. $#ps) {
		my ($type, $n, $suf) = @{$ps[$k]};
		my $end = $k == $#ps ? ');' : ',';
		my $t = esc($type);
		my $s = esc($suf);
		$o .= ".BI \"$lead$t\" \"$n\" \"$s$end\"\n";
		$lead = $pad;
	}
	return $o;
}

sub see_also {
	my ($self, $text, @extra) = @_;
	my %refs;
	while ($text =~ /\b(pmtrack_\w+)\(\)/g) {
		$refs{"$1(3)"} = 1 if $exported{$1} && $1 ne $self;
	}
	$refs{$_} = 1 for @extra;
	delete $refs{"$self(3)"};
	my @r = sort keys %refs;
	push @r, 'pmtrack(7)';
	my $o = ".SH \"SEE ALSO\"\n";
	for my $k (0 .. $#r) {
		my ($n, $s) = $r[$k] =~ /^(.*)\((.*)\)$/;
		$o .= ".BR " . esc($n) . " ($s)" . ($k < $#r ? ",\n" : "\n");
	}
	return $o;
}

sub thread_text {
	my ($f) = @_;
	return @{$f->{thread}} if @{$f->{thread}};
	my $fd = $filedoc{$f->{header}} or return ();
	my (@p, $on);
	for my $l (@$fd) {
		if ($l =~ /^Thread safety:/) {
			$on = 1;
		} elsif ($on && $l eq '') {
			last;
		}
		push @p, $l if $on;
	}
	return @p;
}

sub func_sections {
	my ($name, $level) = @_;
	my $f = $func{$name};
	my $o = '';
	if (@{$f->{params}}) {
		$o .= ".PP\n" if $level eq 'SS';
		$o .= ".$level \"PARAMETERS\"\n" if $level eq 'SH';
		for my $pd (@{$f->{params}}) {
			$o .= ".TP\n" . join(', ', map { "\\fI$_\\fP" }
					     @{$pd->[0]}) . "\n";
			$o .= render(map { s/^\s+//r } @{$pd->[1]});
		}
	}
	$o .= ".$level DESCRIPTION\n" if $level eq 'SH';
	$o .= ".PP\n" if $level eq 'SS';
	$o .= inline(ucfirst($f->{summary})) . "\n";
	if (@{$f->{body}}) {
		my @b = map {
			/^DOC:\s*(\w+)$/ ? @{$doc{$1} || die "kdoc2man: " .
				"$name: no DOC: $1\n"} : $_
		} @{$f->{body}};
		$o .= ".PP\n" . render(@b);
	}
	if (@{$f->{ret}}) {
		$o .= $level eq 'SH' ? ".SH \"RETURN VALUE\"\n" : ".PP\n";
		$o .= render(@{$f->{ret}});
	}
	my @th = thread_text($f);
	if (@th) {
		$o .= $level eq 'SH' ? ".SH \"THREAD SAFETY\"\n" : ".PP\n";
		$o .= render(@th);
	}
	return $o;
}

sub structs_of {
	my ($s) = @_;
	my @r;
	while ($s =~ /struct (pmtrack_\w+)/g) {
		push @r, "$1(3type)" if $struct{$1};
	}
	return @r;
}

# the functions of the same family (pmtrack_rx_*), and the constructors of
# the objects the prototype takes
sub related {
	my ($name) = @_;
	my @r;
	my ($fam) = $name =~ /^(pmtrack_[a-z]+)_/;
	if ($fam) {
		push @r, map { "$_(3)" }
			grep { /^\Q$fam\E_/ && $_ ne $name } @exported;
	}
	while ($func{$name}{proto} =~ /struct (pmtrack\w*) \*[^*]/g) {
		my $obj = $1;
		push @r, map { "$_(3)" } grep {
			$_ ne $name && $func{$_}{proto} =~ /struct \Q$obj\E \*\*/
		} @exported;
	}
	return @r;
}

sub write_page {
	my ($file, $text) = @_;
	open my $fh, '>', $file or die "kdoc2man: $file: $!\n";
	print $fh $text;
	close $fh or die "kdoc2man: $file: $!\n";
}

my $dir = "$out/man3";
remove_tree($dir);
make_path($dir);

my %grouped;	# header -> [functions]
for my $name (@exported) {
	my $f = $func{$name};
	if (my $g = $group{$f->{header}}) {
		push @{$grouped{$f->{header}}}, $name;
		write_page("$dir/$name.3", ".so man3/$g.3\n");
		next;
	}
	my $o = th($name, 3);
	$o .= ".SH NAME\n" . esc($name) . " \\- " .
		name_desc($name, $f->{summary}) . "\n";
	$o .= ".SH SYNOPSIS\n.nf\n.B #include <pmtrack/$f->{header}>\n.PP\n";
	$o .= synopsis_func($name) . ".fi\n";
	$o .= ".PP\nLink with \\fI\\-lpmtrack\\fP " .
		"(\\fBpkg\\-config \\-\\-libs pmtrack\\fP).\n";
	$o .= func_sections($name, 'SH');
	my $all = join "\n", $f->{summary}, @{$f->{body}}, @{$f->{ret}},
		map { @{$_->[1]} } @{$f->{params}};
	$o .= see_also($name, $all, structs_of($f->{proto}), related($name));
	write_page("$dir/$name.3", $o);
}

for my $h (sort keys %grouped) {
	my $g = $group{$h};
	my @names = @{$grouped{$h}};
	my $fd = $filedoc{$h} || [];
	my @first = grep { $_ ne '' } @$fd;
	my $o = th($g, 3);
	$o .= ".SH NAME\n" . join(", ", map { esc($_) } @names) . " \\- " .
		name_desc($g, $first[0]) . "\n";
	$o .= ".SH SYNOPSIS\n.nf\n.B #include <pmtrack/$h>\n";
	for my $n (@names) {
		$o .= ".PP\n" . synopsis_func($n);
	}
	$o .= ".fi\n.PP\nLink with \\fI\\-lpmtrack\\fP " .
		"(\\fBpkg\\-config \\-\\-libs pmtrack\\fP).\n";
	$o .= ".SH DESCRIPTION\n" . render(@$fd);
	my $all = join "\n", @$fd;
	for my $n (@names) {
		$o .= ".SS " . esc($n) . "()\n" . func_sections($n, 'SS');
		my $f = $func{$n};
		$all .= join "\n", '', @{$f->{body}}, @{$f->{ret}},
			map { @{$_->[1]} } @{$f->{params}};
	}
	my %self = map { $_ => 1 } @names;
	$all =~ s/\b(pmtrack_\w+)\(\)/$self{$1} ? '' : "$1()"/ge;
	$o .= see_also($g, $all);
	write_page("$dir/$g.3", $o);
}

# ---- structs ----------------------------------------------------------------

my %users;	# struct -> functions whose prototype names it
for my $name (@exported) {
	while ($func{$name}{proto} =~ /struct (pmtrack_\w+)/g) {
		$users{$1}{$name} = 1;
	}
}
my @common_rules = @{$filedoc{'common.h'} || []};

for my $s (sort keys %struct) {
	my $st = $struct{$s};
	my @cm = @{$st->{comment}};
	my @u = sort keys %{$users{$s} || {}};
	my $summary;
	if (@cm) {
		($summary = join(' ', @cm)) =~ s/\s+/ /g;
		$summary =~ s/^(.*?[.:])(\s.*|$)/$1/;
		$summary =~ s/[.:]$//;
	} elsif (@u) {
		$summary = "structure of " . join(', ', map { "$_()" } @u);
	} else {
		$summary = "structure of <pmtrack/$st->{header}>";
	}
	my $o = th($s, '3type');
	$o .= ".SH NAME\n" . esc($s) . " \\- " . name_desc($s, $summary) .
		"\n";
	$o .= ".SH SYNOPSIS\n.nf\n.B #include <pmtrack/$st->{header}>\n.PP\n";
	$o .= ".B struct " . esc($s) . " {\n";
	$o .= ".B \"    " . esc($_) . "\"\n" for @{$st->{def}};
	$o .= ".B };\n.fi\n.SH DESCRIPTION\n";
	$o .= @cm ? render(@cm) : inline(ucfirst($summary) . '.') . "\n";
	if (@{$st->{fields}}) {
		$o .= ".SS Fields\n";
		for my $fl (@{$st->{fields}}) {
			$o .= ".TP\n.B \"" . esc($fl->{decl}) . "\"\n";
			if (@{$fl->{text}}) {
				$o .= render(@{$fl->{text}});
			} elsif ($fl->{decl} eq 'size_t sz') {
				# the convention of <pmtrack/common.h>, in NOTES
				$o .= "sizeof(struct " . esc($s) . "), set by " .
					"the caller (\\fBPMTRACK_OPTS\\fP() " .
					"does it); see NOTES.\n";
			} else {
				die "kdoc2man: $s: $fl->{decl}: no comment\n";
			}
		}
	}
	my $all = join "\n", @cm, map { @{$_->{text}} } @{$st->{fields}};
	my @extra = map { "$_(3)" } @u;
	push @extra, structs_of(join ' ', @{$st->{def}});
	if (@{$st->{def}} && $st->{def}[0] =~ /^size_t sz;/ && @common_rules) {
		$o .= ".SH NOTES\n" . render(@common_rules);
		$all .= "\n" . join "\n", @common_rules;
	}
	$o .= see_also("", $all, grep { $_ ne "$s(3type)" } @extra);
	write_page("$dir/$s.3type", $o);
}
if (@errors) {
	print STDERR "kdoc2man: $_\n" for @errors;
	exit 1;
}
exit 0;
