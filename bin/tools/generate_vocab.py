#!/usr/bin/env python3
"""Builds a vocabulary file from tokenized text.

Reads a text file (or standard input), splits every line into tokens the
same way the input pipelines do, and prints one `token<TAB>count` line per
distinct token, the most frequent first; tokens with the same count are
ordered by token, descending, as in the original tool, so the output is
deterministic.

    python3 bin/tools/generate_vocab.py --max_vocab_size 50000 train.en > vocab.en

Uses only the Python standard library, so it runs without TensorFlow.
"""

import argparse
import collections
import io
import os
import sys

if __package__:
    from ._usage import ArgumentParser, UsageError, reports_usage_errors
else:  # run as a script: this directory is sys.path[0]
    from _usage import ArgumentParser, UsageError, reports_usage_errors

# Added by the model after the file's tokens; never written to a vocabulary.
RESERVED_TOKENS = ("UNK", "SEQUENCE_START", "SEQUENCE_END")


def _bool(text):
    value = str(text).strip().lower()
    if value in ("true", "yes", "on", "1"):
        return True
    if value in ("false", "no", "off", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser():
    parser = ArgumentParser(
        description="Generate a vocabulary file from tokenized text."
    )
    parser.add_argument(
        "infile",
        nargs="?",
        default=None,
        help="Tokenized text file; standard input if omitted or '-'.",
    )
    parser.add_argument(
        "--min_frequency",
        type=int,
        default=0,
        help="Keep only tokens seen MORE than this many times (the original's "
        "rule); 0 keeps all.",
    )
    parser.add_argument(
        "--max_vocab_size",
        type=int,
        default=None,
        help="Keep at most this many of the most frequent tokens.",
    )
    parser.add_argument(
        "--downcase",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        help="Lower-case the text first (--downcase or --downcase=true).",
    )
    parser.add_argument(
        "--delimiter",
        type=str,
        default=" ",
        help='Token separator: " " for words (default), "" for characters.',
    )
    return parser


def tokenize(line, delimiter):
    """Splits a line into tokens, dropping empty ones.

    The line is stripped first; an empty delimiter gives its characters
    (spaces inside the line included), otherwise every character of the
    delimiter separates tokens.
    """
    line = line.strip()
    if delimiter == "":
        return list(line)
    for char in delimiter[1:]:
        line = line.replace(char, delimiter[0])
    return [token for token in line.split(delimiter[0]) if token]


def count_tokens(lines, delimiter=" ", downcase=False):
    """Counts the tokens of an iterable of lines."""
    counter = collections.Counter()
    for line in lines:
        if downcase:
            line = line.lower()
        counter.update(tokenize(line, delimiter))
    return counter


def select_vocab(counter, min_frequency=0, max_vocab_size=None):
    """Filters and orders counted tokens.

    Returns:
      A list of `(token, count)`: counts above `min_frequency`, by count
      descending and then by token descending, at most `max_vocab_size` long,
      without the reserved special tokens.
    """
    items = [
        (token, count)
        for token, count in counter.items()
        if count > min_frequency and token not in RESERVED_TOKENS
    ]
    items.sort(key=lambda item: (item[1], item[0]), reverse=True)
    if max_vocab_size is not None:
        items = items[:max_vocab_size]
    return items


def _open_input(path):
    if path is None or path == "-":
        return io.TextIOWrapper(
            sys.stdin.buffer, encoding="utf-8", errors="replace", newline="\n"
        )
    if not os.path.isfile(path):
        raise UsageError(f"input file not found: {path}")
    return open(path, encoding="utf-8", errors="replace", newline="\n")


@reports_usage_errors("generate_vocab")
def main(argv=None):
    """Runs the tool; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.min_frequency < 0:
        raise UsageError(f"--min_frequency must be >= 0, got {args.min_frequency}")
    if args.max_vocab_size is not None and args.max_vocab_size < 1:
        raise UsageError(f"--max_vocab_size must be >= 1, got {args.max_vocab_size}")
    with _open_input(args.infile) as infile:
        counter = count_tokens(infile, args.delimiter, args.downcase)
    reserved = sorted(token for token in RESERVED_TOKENS if token in counter)
    if reserved:
        print(
            f"generate_vocab: warning: left out reserved token(s) {', '.join(reserved)}; "
            "the model adds them itself.",
            file=sys.stderr,
        )
    vocab = select_vocab(counter, args.min_frequency, args.max_vocab_size)
    print(
        f"generate_vocab: {len(counter)} distinct tokens, {len(vocab)} written.",
        file=sys.stderr,
    )
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n")
    for token, count in vocab:
        out.write(f"{token}\t{count}\n")
    out.flush()
    out.detach()
    return 0


if __name__ == "__main__":
    sys.exit(main())
