#!/usr/bin/perl
# SPDX-License-Identifier: MIT
# Check every program's command line against docs/cli.md, the one grammar:
# each `pmtrack` command and each example is asked for --help, --version
# and a bad option, and its listed options are held against the table of
# options with one meaning everywhere (same value, same default), the
# names that the grammar replaced, and the rules on durations, --json and
# --quiet.  Sizes written with a suffix the grammar refuses must be
# refused.
#   cli_grammar.pl BUILD_DIR SOURCE_DIR
use strict;
use warnings;

my ($build, $src) = @ARGV;
die "usage: cli_grammar.pl BUILD_DIR SOURCE_DIR\n" unless $src;
my $tool = "$build/tools/pmtrack";
my @examples = map { "$build/examples/$_" }
	qw(pmtrack-demo pmtrack-gc-demo pmtrack-vmm-migrate pmtrack-checkpoint
	   pmtrack-kvm-migrate);
my @fail;

sub fail { push @fail, join('', @_); }

# run a command line (a list): exit status, stdout, stderr
sub run {
	my @cmd = @_;
	my $out = "/tmp/cli_grammar.$$.out";
	my $err = "/tmp/cli_grammar.$$.err";
	my $pid = fork() // die "fork: $!";
	if (!$pid) {
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>', $out);
		open(STDERR, '>', $err);
		exec(@cmd) or exit 127;
	}
	waitpid($pid, 0);
	my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;
	local $/;
	open(my $o, '<', $out); my $so = <$o> // ''; close($o);
	open(my $e, '<', $err); my $se = <$e> // ''; close($e);
	unlink($out, $err);
	return ($rc, $so, $se);
}

# the table "Options with one meaning everywhere" of docs/cli.md
my %reg;
open(my $md, '<', "$src/docs/cli.md") or die "docs/cli.md: $!";
my $in = 0;
while (<$md>) {
	$in = 1 if /^## Options with one meaning everywhere/;
	$in = 0 if $in && /^## / && !/one meaning/;
	next unless $in && /^\| `(--[a-z0-9-]+)` \|/;
	my @c = map { s/^\s+|\s+$//gr } split(/\|/);
	$reg{$1} = { value => $c[2], default => $c[4] };
}
close($md);
die "docs/cli.md: no option table\n" unless keys %reg > 10;

# names the grammar replaced: none may come back
my %gone = map { $_ => 1 } qw(--downtime --interval --timeout --no-bar
	--digest --no-digest --ram);

# a size or number as written in a default: bytes or the number
sub norm {
	my ($v) = @_;
	$v =~ s/,//g;
	return undef unless $v =~ /^(\d+)\s*([KMGT]?)(iB)?$/;
	my %sh = ('' => 0, K => 10, M => 20, G => 30, T => 40);
	return $1 * 2**$sh{$2};
}

# the options a --help text lists: name => { value, text, default }
sub options {
	my ($help) = @_;
	my (%o, $cur);
	for (split(/\n/, $help)) {
		if (/^\s{1,4}(--[a-z0-9][a-z0-9-]*)(?:[ =]([\[A-Z][A-Z0-9\/|:.\[\]-]*))?(?:\s{2,}(.*))?$/) {
			$cur = $1;
			$o{$cur} = { value => $2 // '', text => $3 // '' };
		} elsif (/^\s{1,4}--/) {
			# the man page is made from these lines: an option, its
			# value, two spaces, its description
			fail("$_[1]: cannot read the option line '$_'");
			undef $cur;
		} elsif (defined $cur && /^\s{6,}(\S.*)$/) {
			$o{$cur}{text} .= " $1";
		} else {
			undef $cur;
		}
	}
	for my $k (keys %o) {
		$o{$k}{default} = $1 if $o{$k}{text} =~ /default:? ([^;,)]+)/;
	}
	return \%o;
}

my @commands;
my ($rc, $out, $err) = run($tool, 'help');
fail("pmtrack help: exit $rc") if $rc;
for (split(/\n/, $out)) {
	push @commands, $1 if /^  ([a-z]+)\s{2,}/ && $1 ne 'help';
}
fail("pmtrack help lists no commands") unless @commands >= 8;

($rc, $out) = run($tool, '--version');
fail("pmtrack --version: exit $rc, '$out'")
	unless !$rc && $out =~ /^pmtrack \(libpmtrack \d+\.\d+\.\d+\)$/m;

my %json = map { $_ => 1 } qw(send recv dump restore inspect probe stat track);
my %quiet = map { $_ => 1 } qw(send recv dump restore track
	pmtrack-vmm-migrate pmtrack-kvm-migrate pmtrack-checkpoint);

my @progs = map { [ "pmtrack $_", [ $tool, $_ ] ] } @commands;
push @progs, map { [ s{.*/}{}r, [ $_ ] ] } @examples;
my $checked = 0;
for my $p (@progs) {
	my ($name, $argv) = @$p;
	my $short = $name =~ s/^pmtrack //r;
	($rc, $out, $err) = run(@$argv, '--help');
	if ($rc || $out !~ /^usage: /m) {
		fail("$name --help: exit $rc, no usage on stdout");
		next;
	}
	($rc, undef, $err) = run(@$argv, '--no-such-option');
	fail("$name --no-such-option: exit $rc, want 2") unless $rc == 2;
	if ($name !~ /^pmtrack /) {
		my ($vrc, $vout) = run(@$argv, '--version');
		fail("$name --version: exit $vrc, '$vout'")
			unless !$vrc && $vout =~ /^\Q$name\E \(libpmtrack \d+\.\d+\.\d+\)$/m;
	}
	my $o = options($out, $name);
	# every option of the synopsis is described on a line of its own
	my $syn = join(' ', grep { /^(usage:|\s{6,}[\[<-])/ }
		       split(/\n/, $out =~ s/\n\n.*//sr));
	for my $opt ($syn =~ /(--[a-z0-9][a-z0-9-]*)/g) {
		next if $opt eq '--help' || $opt eq '--version';
		fail("$name: $opt is in the usage but not described")
			unless $o->{$opt};
	}
	for my $opt (sort keys %$o) {
		my $v = $o->{$opt}{value};
		fail("$name: $opt was replaced by the grammar") if $gone{$opt};
		fail("$name: $opt takes $v: durations are --*-ms MS")
			if $v =~ /^(SECONDS|SEC|S|MSEC|T)$/ ||
			   ($v eq 'MS' && $opt !~ /-ms$/) ||
			   ($opt =~ /-ms$/ && $v ne 'MS');
		my $r = $reg{$opt} or next;
		my $want = $r->{value} eq '' ? '' : $r->{value};
		fail("$name: $opt takes '$v', the grammar says '$want'")
			if $v ne $want;
		my $d = $o->{$opt}{default};
		next unless defined $d && $r->{default} ne '';
		my ($a, $b) = (norm($d), norm($r->{default} =~ s/ MiB/M/r =~ s/ GiB/G/r));
		fail("$name: $opt defaults to '$d', the grammar says '$r->{default}'")
			if defined $a && defined $b && $a != $b;
	}
	fail("$name: no --json") if $json{$short} && !$o->{'--json'};
	fail("$name: no --quiet") if $quiet{$short} && !$o->{'--quiet'};
	# a size with a suffix the grammar refuses is a usage error
	for my $sz (grep { $o->{$_}{value} eq 'SIZE' } sort keys %$o) {
		for my $bad ('64k', '64KB', '64MB') {
			my ($brc, undef, $berr) = run(@$argv, "$sz=$bad");
			fail("$name $sz=$bad: exit $brc, want 2 and a message naming $sz")
				unless $brc == 2 && $berr =~ /\Q$sz\E/;
		}
	}
	$checked++;
}

if (@fail) {
	print "FAIL: $_\n" for @fail;
	exit 1;
}
print "cli grammar: $checked programs follow docs/cli.md\n";
