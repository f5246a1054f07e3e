#!/usr/bin/env python3
"""Writes a toy parallel corpus for smoke tests and tutorials.

Every example is a random sequence of tokens. In a `copy` data set the target
equals the source; in a `reverse` data set it is the source backwards. The
token set is the numbers `0 .. vocab_size-2` plus one non-ASCII token, `笑`,
so that Unicode handling is exercised too.

    python3 bin/tools/generate_toy_data.py --type reverse --output_dir toy/train

writes `toy/train/sources.txt` and `toy/train/targets.txt`, one example per
line, tokens separated by spaces. Give `--seed` for reproducible output.
Uses only the Python standard library.
"""

import os
import random
import sys

if __package__:
    from ._usage import ArgumentParser, UsageError, reports_usage_errors
else:  # run as a script: this directory is sys.path[0]
    from _usage import ArgumentParser, UsageError, reports_usage_errors

NON_ASCII_TOKEN = "\u7b11"  # 笑

# Upper bounds of the numeric flags: a toy corpus is for smoke tests and
# tutorials, and a typo such as an extra zero should not fill the disk.
MAX_VOCAB_SIZE = 1_000_000
MAX_LEN = 1_000_000
MAX_EXAMPLES = 100_000_000
# num_examples * max_len: at most about 10 GB per file.
MAX_TOKENS = 2_000_000_000


def build_parser():
    parser = ArgumentParser(description="Generate a toy copy or reverse data set.")
    parser.add_argument(
        "--type",
        default="copy",
        choices=["copy", "reverse"],
        help="copy: target = source; reverse: target = reversed source.",
    )
    parser.add_argument(
        "--vocab_size", type=int, default=100, help="Number of distinct tokens."
    )
    parser.add_argument(
        "--num_examples", type=int, default=10000, help="Number of examples."
    )
    parser.add_argument(
        "--min_len", type=int, default=5, help="Shortest sequence, in tokens."
    )
    parser.add_argument(
        "--max_len", type=int, default=40, help="Longest sequence, in tokens."
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="Random seed (default: random)."
    )
    parser.add_argument(
        "--output_dir", required=True, help="Directory for sources.txt and targets.txt."
    )
    return parser


def toy_vocabulary(vocab_size):
    """The toy tokens: `"0" .. str(vocab_size - 2)` and `笑`."""
    return [str(number) for number in range(vocab_size - 1)] + [NON_ASCII_TOKEN]


def make_examples(kind, num_examples, min_len, max_len, vocab_size, rng):
    """Yields `(source_tokens, target_tokens)` lists.

    Args:
      kind: "copy" or "reverse".
      num_examples: How many examples.
      min_len: Shortest length (inclusive).
      max_len: Longest length (inclusive).
      vocab_size: Number of distinct tokens.
      rng: A `random.Random`.
    """
    vocabulary = toy_vocabulary(vocab_size)
    for _ in range(num_examples):
        length = rng.randint(min_len, max_len)
        source = [rng.choice(vocabulary) for _ in range(length)]
        target = list(reversed(source)) if kind == "reverse" else list(source)
        yield source, target


def _check(args):
    for flag, value, largest in (
        ("--vocab_size", args.vocab_size, MAX_VOCAB_SIZE),
        ("--num_examples", args.num_examples, MAX_EXAMPLES),
        ("--min_len", args.min_len, MAX_LEN),
        ("--max_len", args.max_len, MAX_LEN),
    ):
        if value < 1:
            raise UsageError(f"{flag} must be >= 1, got {value}")
        if value > largest:
            raise UsageError(f"{flag} must be <= {largest:,}, got {value:,}")
    if args.max_len < args.min_len:
        raise UsageError(
            f"--max_len ({args.max_len}) must be >= --min_len ({args.min_len})"
        )
    if args.num_examples * args.max_len > MAX_TOKENS:
        raise UsageError(
            f"--num_examples ({args.num_examples:,}) times --max_len "
            f"({args.max_len:,}) must be <= {MAX_TOKENS:,} tokens per file; "
            "lower one of them"
        )
    if os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
        raise UsageError(
            f"--output_dir exists and is not a directory: {args.output_dir}"
        )


@reports_usage_errors("generate_toy_data")
def main(argv=None):
    """Runs the tool; returns the exit status."""
    args = build_parser().parse_args(argv)
    _check(args)
    rng = random.Random(args.seed)
    examples = make_examples(
        args.type,
        args.num_examples,
        args.min_len,
        args.max_len,
        args.vocab_size,
        rng,
    )
    try:
        os.makedirs(args.output_dir, exist_ok=True)
    except OSError as err:  # a parent is a file, no permission, ...
        raise UsageError(
            f"cannot create --output_dir {args.output_dir}: {err.strerror}"
        ) from None
    output_dir = os.path.abspath(args.output_dir)
    paths = [os.path.join(output_dir, f"{side}.txt") for side in ("sources", "targets")]
    # Written as generated: memory does not grow with the corpus.
    with (
        open(paths[0], "w", encoding="utf-8", newline="\n") as sources,
        open(paths[1], "w", encoding="utf-8", newline="\n") as targets,
    ):
        for source, target in examples:
            sources.write(" ".join(source) + "\n")
            targets.write(" ".join(target) + "\n")
    for path in paths:
        print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
