#!/usr/bin/env python3
"""Corpus preparation steps of the data recipes (`bin/data/*.sh`), in Python.

The original's recipes called Moses' Perl scripts for these; here they are
subcommands of one tool:

* `sgm_to_text FILE.sgm`: prints the text of each `<seg>` of a WMT SGML
  file, one line per segment, in file order (as Moses'
  `input-from-sgm.perl`).
* `tokenize --lang en [--threads N] [FILE]`: Moses tokenization with the
  `sacremoses` package (`pip install 'seq2seq[data]'`), special characters
  escaped as `tokenizer.perl` does by default (`&amp;`, `&apos;`, ...).
* `clean IN_PREFIX L1 L2 OUT_PREFIX MIN MAX [--ratio 9] [--also IN OUT]`:
  keeps the sentence pairs `IN_PREFIX.L1` / `IN_PREFIX.L2` whose sides both
  have MIN..MAX space-separated tokens and whose length ratio is at most
  `--ratio` (as Moses' `clean-corpus-n.perl`). `--also` filters another
  pair of files (e.g. the untokenized text) with the same line choice, so
  the two stay aligned.

    python3 bin/tools/prepare_corpus.py sgm_to_text newstest2014-deen-src.de.sgm
    python3 bin/tools/prepare_corpus.py tokenize --lang de train.de > train.tok.de
    python3 bin/tools/prepare_corpus.py clean train.tok de en train.tok.clean 1 80

Standard library only, except `tokenize` (sacremoses).
"""

import io
import itertools
import os
import re
import sys

if __package__:
    from ._usage import ArgumentParser, UsageError, reports_usage_errors
else:  # run as a script: this directory is sys.path[0]
    from _usage import ArgumentParser, UsageError, reports_usage_errors

_SEGMENT = re.compile(r"<seg[^>]*>(.*?)</seg>", re.IGNORECASE)


def sgm_segments(lines):
    """The stripped text of every `<seg ...>...</seg>` in `lines`, in order.

    Args:
      lines: An iterable of lines of a WMT SGML file (one segment per line,
        as WMT writes them).
    """
    for line in lines:
        for match in _SEGMENT.finditer(line):
            yield match.group(1).strip()


def tokenizer(lang):
    """A function `line -> tokenized line` for language `lang`.

    Raises:
      UsageError: sacremoses is not installed.
    """
    try:
        import sacremoses
    except ImportError:
        raise UsageError(
            "tokenize needs the sacremoses package: pip install 'seq2seq[data]' "
            "(or pip install sacremoses)."
        ) from None
    moses = sacremoses.MosesTokenizer(lang=lang)

    def tokenize(line):
        return moses.tokenize(line.strip(), escape=True, return_str=True)

    return tokenize


_WORKER_TOKENIZE = None


def _init_worker(lang):
    global _WORKER_TOKENIZE
    _WORKER_TOKENIZE = tokenizer(lang)


def _tokenize_chunk(lines):
    return [_WORKER_TOKENIZE(line) for line in lines]


def tokenize_lines(lines, lang, threads=1, chunk_size=2000):
    """Yields the tokenized `lines`, in order, using `threads` processes."""
    if threads <= 1:
        tokenize = tokenizer(lang)
        for line in lines:
            yield tokenize(line)
        return
    tokenizer(lang)  # Fails here, once, when sacremoses is missing.
    import multiprocessing

    def chunks():
        iterator = iter(lines)
        while True:
            chunk = list(itertools.islice(iterator, chunk_size))
            if not chunk:
                return
            yield chunk

    with multiprocessing.Pool(threads, _init_worker, (lang,)) as pool:
        for chunk in pool.imap(_tokenize_chunk, chunks()):
            yield from chunk


def keep_pair(first, second, min_len=1, max_len=80, ratio=9.0):
    """Whether a sentence pair passes `clean`: both sides have `min_len` to
    `max_len` tokens and neither is more than `ratio` times longer."""
    a, b = len(first.split()), len(second.split())
    if not (min_len <= a <= max_len and min_len <= b <= max_len):
        return False
    return not ratio or (a <= ratio * b and b <= ratio * a)


def _open_text(path, mode="r"):
    if mode == "r" and not os.path.isfile(path):
        raise UsageError(f"input file not found: {path}")
    return open(path, mode, encoding="utf-8", errors="replace", newline="\n")


def _open_input(path):
    if path is None or path == "-":
        return io.TextIOWrapper(
            sys.stdin.buffer, encoding="utf-8", errors="replace", newline="\n"
        )
    return _open_text(path)


def _stdout():
    return io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n")


def _normalize(line):
    return " ".join(line.split())


def clean(in_prefix, l1, l2, out_prefix, min_len, max_len, ratio, also=None):
    """Writes the kept pairs of `in_prefix.{l1,l2}` to `out_prefix.{l1,l2}`
    (whitespace collapsed), and the same lines of `also[0].{l1,l2}` to
    `also[1].{l1,l2}`; returns `(kept, total)`."""
    inputs = [_open_text(f"{in_prefix}.{lang}") for lang in (l1, l2)]
    outputs = [_open_text(f"{out_prefix}.{lang}", "w") for lang in (l1, l2)]
    if also:
        inputs += [_open_text(f"{also[0]}.{lang}") for lang in (l1, l2)]
        outputs += [_open_text(f"{also[1]}.{lang}", "w") for lang in (l1, l2)]
    kept = total = 0
    try:
        for lines in itertools.zip_longest(*inputs):
            if any(line is None for line in lines):
                names = [handle.name for handle in inputs]
                raise UsageError(
                    f"{' and '.join(names)} do not have the same number of lines "
                    f"(one ends at line {total + 1}); they must be parallel."
                )
            total += 1
            first, second = _normalize(lines[0]), _normalize(lines[1])
            if not keep_pair(first, second, min_len, max_len, ratio):
                continue
            kept += 1
            outputs[0].write(first + "\n")
            outputs[1].write(second + "\n")
            for line, out in zip(lines[2:], outputs[2:]):
                out.write(line.rstrip("\r\n") + "\n")
    finally:
        for handle in inputs + outputs:
            handle.close()
    return kept, total


def build_parser():
    parser = ArgumentParser(
        prog="prepare_corpus.py",
        description="Corpus preparation steps of the data recipes.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    sgm = commands.add_parser(
        "sgm_to_text", help="Text of the <seg>s of a WMT SGML file."
    )
    sgm.add_argument("infile", nargs="?", default=None)
    tok = commands.add_parser("tokenize", help="Moses tokenization (sacremoses).")
    tok.add_argument("infile", nargs="?", default=None)
    tok.add_argument("--lang", required=True, help="Language code, e.g. en, de.")
    tok.add_argument("--threads", type=int, default=1, help="Processes (default 1).")
    cln = commands.add_parser("clean", help="Filter sentence pairs by length.")
    cln.add_argument("in_prefix")
    cln.add_argument("l1")
    cln.add_argument("l2")
    cln.add_argument("out_prefix")
    cln.add_argument("min_len", type=int)
    cln.add_argument("max_len", type=int)
    cln.add_argument("--ratio", type=float, default=9.0, help="0: no ratio limit.")
    cln.add_argument(
        "--also",
        nargs=2,
        metavar=("IN_PREFIX", "OUT_PREFIX"),
        help="Filter these files with the same line choice.",
    )
    return parser


@reports_usage_errors("prepare_corpus")
def main(argv=None):
    """Runs the tool; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "clean":
        if not 0 <= args.min_len <= args.max_len:
            raise UsageError(
                f"need 0 <= MIN <= MAX, got MIN={args.min_len} MAX={args.max_len}"
            )
        kept, total = clean(
            args.in_prefix,
            args.l1,
            args.l2,
            args.out_prefix,
            args.min_len,
            args.max_len,
            args.ratio,
            args.also,
        )
        print(
            f"prepare_corpus: clean kept {kept} of {total} pairs of "
            f"{args.in_prefix}.{{{args.l1},{args.l2}}}",
            file=sys.stderr,
        )
        return 0
    if args.command == "tokenize" and args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    with _open_input(args.infile) as infile:
        if args.command == "sgm_to_text":
            lines = sgm_segments(infile)
        else:
            lines = tokenize_lines(infile, args.lang, args.threads)
        out = _stdout()
        for line in lines:
            out.write(line + "\n")
        out.flush()
        out.detach()
    return 0


if __name__ == "__main__":
    sys.exit(main())
