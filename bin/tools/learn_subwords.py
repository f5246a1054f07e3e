#!/usr/bin/env python3
"""Learns a SentencePiece subword model and its vocabulary file.

Trains a SentencePiece model (BPE or unigram) on raw text and writes

* `PREFIX.model`: the model, for the input pipelines' `source_tokenizer` /
  `target_tokenizer` params (tokenization happens inside `tf.data`) or for
  `bin/tools/apply_subwords.py`;
* `PREFIX.vocab`: its pieces in this package's vocabulary format (one token
  per line), for `vocab_source` / `vocab_target`. SentencePiece's reserved
  pieces `<unk>`, `<s>` and `</s>` are not listed: the model's own `UNK`,
  `SEQUENCE_START` and `SEQUENCE_END` take their places.

    python3 bin/tools/learn_subwords.py --input train.en train.de \\
      --model_prefix subwords --vocab_size 32000 --model_type bpe

One model for both languages (several `--input` files) lets the source and
the target share a vocabulary. Needs the `sentencepiece` package
(`pip install 'seq2seq[subwords]'`), not TensorFlow.
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


def _bool(text):
    value = str(text).strip().lower()
    if value in ("true", "yes", "on", "1"):
        return True
    if value in ("false", "no", "off", "0"):
        return False
    raise UsageError(f"expected true or false, got {text!r}")


def build_parser():
    parser = ArgumentParser(
        prog="learn_subwords.py",
        description="Train a SentencePiece model and write PREFIX.model and "
        "PREFIX.vocab (this package's vocabulary format).",
    )
    parser.add_argument(
        "--input", nargs="+", required=True, help="Raw text files, one sentence a line."
    )
    parser.add_argument(
        "--model_prefix",
        required=True,
        help="Output prefix: writes PREFIX.model and PREFIX.vocab.",
    )
    parser.add_argument(
        "--vocab_size",
        type=int,
        required=True,
        help="Number of pieces of the model (SentencePiece's <unk>, <s>, </s> "
        "included; the vocabulary file lists the others).",
    )
    parser.add_argument(
        "--model_type",
        choices=("bpe", "unigram"),
        default="unigram",
        help="Subword algorithm (default: unigram, as SentencePiece).",
    )
    parser.add_argument(
        "--character_coverage",
        type=float,
        default=1.0,
        help="Share of the characters the model covers; the rarest others "
        "become UNK. 1.0 (default) for alphabets, 0.9995 for CJK text.",
    )
    parser.add_argument(
        "--hard_vocab_limit",
        type=_bool,
        default=True,
        help="false: allow fewer pieces than --vocab_size when the text is too "
        "small for that many (default true: that is an error).",
    )
    parser.add_argument(
        "--input_sentence_size",
        type=int,
        default=0,
        help="Train on a random sample of this many lines (0: all lines).",
    )
    parser.add_argument(
        "--num_threads", type=int, default=1, help="Training threads (default 1)."
    )
    return parser


def _check_args(args):
    missing = [path for path in args.input if not os.path.isfile(path)]
    if missing:
        raise UsageError(f"input file not found: {missing[0]}")
    if args.vocab_size < 4:
        raise UsageError(f"--vocab_size must be at least 4, got {args.vocab_size}")
    if not 0.0 < args.character_coverage <= 1.0:
        raise UsageError(
            f"--character_coverage must be in (0, 1], got {args.character_coverage}"
        )
    if args.input_sentence_size < 0:
        raise UsageError(
            f"--input_sentence_size must be >= 0, got {args.input_sentence_size}"
        )
    directory = os.path.dirname(os.path.abspath(args.model_prefix))
    if not os.path.isdir(directory):
        raise UsageError(
            f"--model_prefix {args.model_prefix}: directory {directory} does not exist"
        )


def train_model(args):
    """Trains the model in memory; returns its serialized bytes."""
    spm = sentencepiece_model.import_sentencepiece()
    model = io.BytesIO()
    options = dict(
        input=args.input,
        model_writer=model,
        vocab_size=args.vocab_size,
        model_type=args.model_type,
        character_coverage=args.character_coverage,
        hard_vocab_limit=args.hard_vocab_limit,
        num_threads=args.num_threads,
        # The ids of the reserved pieces; no padding piece (padding is "").
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=1,
    )
    if args.input_sentence_size:
        options.update(
            input_sentence_size=args.input_sentence_size,
            shuffle_input_sentence=True,
        )
    try:
        spm.SentencePieceTrainer.train(**options)
    except (RuntimeError, OSError, ValueError) as err:
        message = " ".join(str(err).split()) or type(err).__name__
        raise UsageError(f"SentencePiece could not train: {message}") from None
    return model.getvalue()


@reports_usage_errors("learn_subwords")
def main(argv=None):
    """Runs the tool; returns the exit status."""
    args = build_parser().parse_args(argv)
    _check_args(args)
    try:
        proto = train_model(args)
        model_path = args.model_prefix + ".model"
        vocab_path = args.model_prefix + ".vocab"
        with open(model_path, "wb") as handle:
            handle.write(proto)
        processor = sentencepiece_model.load_processor(model_path)
    except LibraryError as err:
        raise UsageError(str(err)) from None
    pieces = sentencepiece_model.vocabulary_pieces(processor)
    with open(vocab_path, "w", encoding="utf-8", newline="\n") as handle:
        for piece in pieces:
            handle.write(piece + "\n")
    print(
        f"learn_subwords: wrote {model_path} ({processor.GetPieceSize()} pieces) "
        f"and {vocab_path} ({len(pieces)} tokens; UNK, SEQUENCE_START and "
        "SEQUENCE_END are added by the model).",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
