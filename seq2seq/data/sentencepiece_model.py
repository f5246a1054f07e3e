"""SentencePiece models in Python: reading them, their vocabulary, decoding.

A SentencePiece model (`*.model`, a serialized protocol buffer) splits raw
text into subword pieces (`"▁low", "er"`; `▁`, U+2581, marks the start of
a word) and joins pieces back into text. This package keeps its own
vocabulary file beside the model (`bin/tools/learn_subwords.py` writes
both): the model's pieces in id order, one per line, WITHOUT the pieces
SentencePiece reserves for itself. Their roles are played by the three
special tokens every vocabulary gets after its file's tokens:

    SentencePiece          here
    <unk>  (unknown)       UNK
    <s>    (control)       SEQUENCE_START (the pipeline adds it to targets)
    </s>   (control)       SEQUENCE_END
    <pad>, unused pieces   left out (padding is the empty string)

A text piece whose name is one of the special tokens (a model learned the
piece `UNK` from text) is also left out; it reads as `UNK`.

This module needs only the `sentencepiece` package (the `subwords` extra),
imported on first use, and not TensorFlow, so the command-line tools that
use it start quickly. The in-graph tokenizer is `seq2seq.data.tokenizers`.
"""

import functools
import os

from seq2seq.errors import DataError, UserError

# The special tokens of `seq2seq.data.vocab`, repeated so that this module
# does not import TensorFlow.
SPECIAL_TOKENS = ("UNK", "SEQUENCE_START", "SEQUENCE_END")

INSTALL_HINT = "pip install 'seq2seq[subwords]'"


def import_sentencepiece():
    """Returns the `sentencepiece` module, or raises a `UserError` saying how
    to install it."""
    try:
        import sentencepiece
    except ImportError:
        raise UserError(
            f"subword tokenization needs the sentencepiece package: {INSTALL_HINT}."
        ) from None
    return sentencepiece


def read_model_proto(path, what="SentencePiece model"):
    """Reads and checks a SentencePiece model file.

    Args:
      path: The `*.model` file.
      what: How the file is named in error messages (e.g. the config key).

    Returns:
      The file's bytes (the serialized model).

    Raises:
      DataError: The file is missing or is not a SentencePiece model.
    """
    if not path or not os.path.isfile(path):
        raise DataError(
            f"{what}: file not found: {path!r}; give the .model file written by "
            "bin/tools/learn_subwords.py."
        )
    with open(path, "rb") as handle:
        proto = handle.read()
    _processor_from_proto(proto, path, what)
    return proto


def _processor_from_proto(proto, path, what):
    spm = import_sentencepiece()
    processor = spm.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(proto)
    except (RuntimeError, OSError, ValueError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else "unreadable"
        raise DataError(
            f"{what}: {path} is not a SentencePiece model ({detail}); give the "
            ".model file written by bin/tools/learn_subwords.py."
        ) from None
    if processor.GetPieceSize() == 0:
        raise DataError(f"{what}: {path} is a SentencePiece model without pieces.")
    return processor


@functools.lru_cache(maxsize=8)
def _cached_processor(path, mtime, size, what):
    del mtime, size  # Part of the cache key: a rewritten file is reloaded.
    with open(path, "rb") as handle:
        proto = handle.read()
    return _processor_from_proto(proto, path, what)


def load_processor(path, what="SentencePiece model"):
    """Returns a `sentencepiece.SentencePieceProcessor` for a model file.

    Raises:
      DataError: The file is missing or is not a SentencePiece model.
    """
    if not path or not os.path.isfile(path):
        read_model_proto(path, what)  # Raises the missing-file error.
    stat = os.stat(path)
    return _cached_processor(path, stat.st_mtime_ns, stat.st_size, what)


def vocabulary_pieces(processor):
    """The pieces of a model that belong in its vocabulary file, in id order.

    Args:
      processor: A loaded `SentencePieceProcessor`.

    Returns:
      A list of strings: every piece except the unknown, control and unused
      ones and those named like a special token (see the module docstring).
    """
    pieces = []
    for piece_id in range(processor.GetPieceSize()):
        if (
            processor.IsUnknown(piece_id)
            or processor.IsControl(piece_id)
            or processor.IsUnused(piece_id)
        ):
            continue
        piece = processor.IdToPiece(piece_id)
        if piece in SPECIAL_TOKENS or not piece:
            continue
        pieces.append(piece)
    return pieces


def detokenize(processor, pieces):
    """Joins pieces into plain text as the model would.

    Args:
      processor: A loaded `SentencePieceProcessor`.
      pieces: A list of piece strings, without special tokens; `UNK`
        becomes SentencePiece's unknown mark (` ⁇ `).

    Returns:
      A str.
    """
    unknown = processor.IdToPiece(processor.unk_id()) if processor.unk_id() >= 0 else ""
    pieces = [unknown if piece == "UNK" else piece for piece in pieces]
    return processor.DecodePieces([piece for piece in pieces if piece])


def tokenize(processor, text):
    """Splits one line of raw text into a list of pieces."""
    return processor.EncodeAsPieces(text)
