#!/usr/bin/env perl
#
# Corpus BLEU of tokenized text, in the output format of Moses'
# multi-bleu.perl (which the original toolkit's tutorial used):
#
#   bin/tools/multi-bleu.perl [-lc] REFERENCE [MORE_REFERENCES...] < HYPOTHESES
#
# Tokens are the whitespace-separated words of each line. References are
# REFERENCE0, REFERENCE1, ... (as many as exist), REFERENCE itself if it
# exists, and any further files given on the command line; line i of every
# reference belongs to hypothesis line i. Files ending in .gz are read
# through gzip. -lc lowercases hypotheses and references first.
#
# Per sentence, each hypothesis n-gram (n = 1..4) counts as correct up to
# the largest number of times it occurs in any one reference; the reference
# length is that of the reference closest in length to the hypothesis (the
# shorter one on a tie). The score is BP * exp(mean of log precisions), with
# BP = exp(1 - ref_len / hyp_len) when hyp_len < ref_len, else 1; it is 0
# when any precision is 0 (no smoothing). Prints one line:
#
#   BLEU = 23.45, 56.7/30.1/18.2/11.9 (BP=1.000, ratio=1.012, hyp_len=N, ref_len=M)
#
# Perl core only (no CPAN modules). Text is read as UTF-8.

use strict;
use warnings;

my $MAX_ORDER = 4;

sub usage_error {
    my ($message) = @_;
    print STDERR "multi-bleu.perl: error: $message\n";
    exit 2;
}

sub read_lines {
    my ($path) = @_;
    my $handle;
    if ($path =~ /\.gz$/) {
        open($handle, "-|", "gzip", "-dc", $path)
          or usage_error("cannot run gzip to read '$path': $!");
    }
    else {
        open($handle, "<", $path)
          or usage_error("cannot read reference file '$path': $!");
    }
    binmode($handle, ":encoding(UTF-8)");
    my @lines;
    while (my $line = <$handle>) {
        $line =~ s/\r?\n\z//;
        push @lines, $line;
    }
    close($handle);
    return \@lines;
}

sub tokens {
    my ($line, $lowercase) = @_;
    $line = lc($line) if $lowercase;
    return split(' ', $line);
}

# Counts of every n-gram of the tokens, keyed "n token ... token".
sub ngram_counts {
    my @words = @_;
    my %counts;
    for my $n (1 .. $MAX_ORDER) {
        for my $start (0 .. $#words - $n + 1) {
            $counts{join(" ", $n, @words[$start .. $start + $n - 1])}++;
        }
    }
    return \%counts;
}

my $lowercase = 0;
my @arguments;
for my $argument (@ARGV) {
    if ($argument eq "-lc") {
        $lowercase = 1;
    }
    elsif ($argument eq "-h" || $argument eq "--help") {
        print "usage: multi-bleu.perl [-lc] REFERENCE [MORE_REFERENCES...] < HYPOTHESES\n";
        exit 0;
    }
    elsif ($argument =~ /^-./) {
        usage_error("unknown option '$argument' (the only option is -lc)");
    }
    else {
        push @arguments, $argument;
    }
}
usage_error("no reference file given; usage: multi-bleu.perl [-lc] REFERENCE < HYPOTHESES")
  unless @arguments;

my ($stem, @extra) = @arguments;
my @reference_files;
for (my $index = 0; -e "$stem$index"; $index++) {
    push @reference_files, "$stem$index";
}
push @reference_files, $stem if -e $stem;
usage_error("no reference file '$stem' (nor '${stem}0', '${stem}1', ...)")
  unless @reference_files;
for my $path (@extra) {
    usage_error("no reference file '$path'") unless -e $path;
    push @reference_files, $path;
}
my @references = map { read_lines($_) } @reference_files;

binmode(STDIN, ":encoding(UTF-8)");
my @hypotheses;
while (my $line = <STDIN>) {
    $line =~ s/\r?\n\z//;
    push @hypotheses, $line;
}
for my $index (0 .. $#references) {
    my $count = scalar @{ $references[$index] };
    if ($count != scalar @hypotheses) {
        usage_error(
            sprintf(
                "reference file '%s' has %d lines but the hypotheses have %d; "
                  . "give one reference line per hypothesis line",
                $reference_files[$index], $count, scalar @hypotheses
            )
        );
    }
}

my (@correct, @total);
for my $n (1 .. $MAX_ORDER) { $correct[$n] = 0; $total[$n] = 0; }
my ($hyp_len, $ref_len) = (0, 0);

for my $sentence (0 .. $#hypotheses) {
    my @words = tokens($hypotheses[$sentence], $lowercase);
    my $length = scalar @words;
    my %best;    # each n-gram's largest count in one reference
    my ($closest_diff, $closest_length);
    for my $reference (@references) {
        my @ref_words = tokens($reference->[$sentence], $lowercase);
        my $ref_length = scalar @ref_words;
        my $diff = abs($length - $ref_length);
        if (!defined $closest_diff
            || $diff < $closest_diff
            || ($diff == $closest_diff && $ref_length < $closest_length))
        {
            ($closest_diff, $closest_length) = ($diff, $ref_length);
        }
        my $counts = ngram_counts(@ref_words);
        while (my ($ngram, $count) = each %$counts) {
            $best{$ngram} = $count if !defined $best{$ngram} || $best{$ngram} < $count;
        }
    }
    $hyp_len += $length;
    $ref_len += $closest_length;
    my $counts = ngram_counts(@words);
    while (my ($ngram, $count) = each %$counts) {
        my ($n) = $ngram =~ /^(\d+) /;
        $total[$n] += $count;
        if (defined $best{$ngram}) {
            $correct[$n] += $count < $best{$ngram} ? $count : $best{$ngram};
        }
    }
}

if ($ref_len == 0) {
    print "BLEU = 0, 0/0/0/0 (BP=0, ratio=0, hyp_len=0, ref_len=0)\n";
    exit 1;
}

my @precision;
for my $n (1 .. $MAX_ORDER) {
    $precision[$n] = $total[$n] ? $correct[$n] / $total[$n] : 0;
}
my $brevity_penalty = 1;
if ($hyp_len < $ref_len) {
    $brevity_penalty = $hyp_len ? exp(1 - $ref_len / $hyp_len) : 0;
}
my $bleu = 0;
if (!grep { $precision[$_] == 0 } 1 .. $MAX_ORDER) {
    my $log_sum = 0;
    $log_sum += log($precision[$_]) for 1 .. $MAX_ORDER;
    $bleu = $brevity_penalty * exp($log_sum / $MAX_ORDER);
}
printf(
    "BLEU = %.2f, %.1f/%.1f/%.1f/%.1f (BP=%.3f, ratio=%.3f, hyp_len=%d, ref_len=%d)\n",
    100 * $bleu,
    (map { 100 * $precision[$_] } 1 .. $MAX_ORDER),
    $brevity_penalty, $hyp_len / $ref_len, $hyp_len, $ref_len
);
