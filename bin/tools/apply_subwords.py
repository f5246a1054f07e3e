#!/usr/bin/env python3
"""Splits raw text into SentencePiece pieces, or joins pieces back into text.

For users who want pre-tokenized files (the input pipelines can instead
tokenize raw text themselves with `source_tokenizer` / `target_tokenizer`):

    python3 bin/tools/apply_subwords.py --model subwords.model train.en > train.sp.en
    python3 bin/tools/apply_subwords.py --model subwords.model --decode < out.sp > out.txt

Each input line gives one output line: its pieces separated by spaces, or
with `--decode` the text of the space-separated pieces on it. Needs the
`sentencepiece` package (`pip install 'seq2seq[subwords]'`).
"""

import io
import os
import sys

if __package__:
    from ._usage import ArgumentParser, UsageError, reports_usage_errors
else:  # run as a script: this directory is sys.path[0]
    from _usage import ArgumentParser, UsageError, reports_usage_errors

    # The package lives two levels up.
    sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from seq2seq.data import sentencepiece_model  # noqa: E402
from seq2seq.errors import UserError as LibraryError  # noqa: E402


def build_parser():
    parser = ArgumentParser(
        prog="apply_subwords.py",
        description="Apply a SentencePiece model to text (or --decode pieces).",
    )
    parser.add_argument(
        "infile", nargs="?", default=None, help="Input file; standard input if omitted."
    )
    parser.add_argument(
        "--model", required=True, help="The .model file of learn_subwords.py."
    )
    parser.add_argument(
        "--decode",
        action="store_true",
        help="Join space-separated pieces into text instead.",
    )
    return parser


def _open_input(path):
    if path is None or path == "-":
        return io.TextIOWrapper(
            sys.stdin.buffer, encoding="utf-8", errors="replace", newline="\n"
        )
    if not os.path.isfile(path):
        raise UsageError(f"input file not found: {path}")
    return open(path, encoding="utf-8", errors="replace", newline="\n")


@reports_usage_errors("apply_subwords")
def main(argv=None):
    """Runs the tool; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        processor = sentencepiece_model.load_processor(args.model, "--model")
    except LibraryError as err:
        raise UsageError(str(err)) from None
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n")
    with _open_input(args.infile) as infile:
        for line in infile:
            line = line.rstrip("\r\n")
            if args.decode:
                text = sentencepiece_model.detokenize(processor, line.split())
            else:
                text = " ".join(sentencepiece_model.tokenize(processor, line))
            out.write(text + "\n")
    out.flush()
    out.detach()
    return 0


if __name__ == "__main__":
    sys.exit(main())
