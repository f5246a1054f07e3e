"""Subword tokenization inside the TensorFlow graph (SentencePiece).

An input pipeline with `source_tokenizer` / `target_tokenizer` (the path of
a SentencePiece `.model` file, see `bin/tools/learn_subwords.py`) reads raw
text and splits it into pieces inside `tf.data` with
`tensorflow_text.SentencepieceTokenizer`; the pieces then go through the
vocabulary like words do. Decoded pieces are joined back into text by the
same model (`SubwordTokenizer.detokenize` in the graph, as the exported
SavedModel does; `sentencepiece_model.detokenize` in Python, as
`DecodeText` and the BLEU metric do).

The model proto is held by the op's resource, so a `SubwordTokenizer`
attached to a `tf.Module` is saved inside a SavedModel: a server loading it
needs `import tensorflow_text` (which registers the op) and no file.
"""

import tensorflow as tf

from seq2seq.data import sentencepiece_model
from seq2seq.errors import DataError, UserError

__all__ = [
    "SubwordTokenizer",
    "check_vocabularies",
    "check_vocabulary",
    "import_tensorflow_text",
]


def import_tensorflow_text():
    """Returns the `tensorflow_text` module, or raises a `UserError` saying
    how to install it."""
    try:
        import tensorflow_text
    except ImportError as err:
        raise UserError(
            "subword tokenization needs the tensorflow-text package matching "
            f"TensorFlow {tf.__version__}: {sentencepiece_model.INSTALL_HINT} "
            f"({err})."
        ) from None
    return tensorflow_text


class SubwordTokenizer(tf.Module):
    """A SentencePiece model as TensorFlow ops.

    Args:
      path: The `.model` file.
      what: How the file is named in error messages (e.g. the config key).

    Raises:
      DataError: The file is missing or is not a SentencePiece model.
      UserError: `sentencepiece` or `tensorflow-text` is not installed.
    """

    def __init__(self, path, what="SentencePiece model"):
        super().__init__(name="subword_tokenizer")
        self.path = path
        proto = sentencepiece_model.read_model_proto(path, what)
        tf_text = import_tensorflow_text()
        self.op = tf_text.SentencepieceTokenizer(model=proto, out_type=tf.string)

    def tokenize(self, texts):
        """Splits lines of raw text into pieces.

        Args:
          texts: [N] tf.string, valid UTF-8.

        Returns:
          A [N, None] `tf.RaggedTensor` of tf.string pieces (a blank line
          gives no piece).
        """
        return self.op.tokenize(texts)

    def detokenize(self, pieces):
        """Joins pieces into text. `UNK` becomes SentencePiece's ` ⁇ `.

        Args:
          pieces: [N, T] tf.string, a `tf.RaggedTensor` or a dense tensor
            whose rows are padded with "" at the end; no special tokens.

        Returns:
          [N] tf.string.
        """
        if not isinstance(pieces, tf.RaggedTensor):
            pieces = tf.RaggedTensor.from_tensor(pieces, padding="")
        return self.op.detokenize(pieces)


def check_vocabulary(model_path, vocab_path, what):
    """Checks that a vocabulary file lists exactly a model's pieces.

    The model's pieces (less the reserved ones, see
    `sentencepiece_model.vocabulary_pieces`) and the file's tokens must be
    the same set; the order does not matter (tokens are looked up by name).

    Args:
      model_path: A SentencePiece `.model` file.
      vocab_path: The vocabulary file the model uses for that side.
      what: The side, for the message (e.g. "source").

    Raises:
      DataError: They differ; the message names both files and a piece.
    """
    from seq2seq.data import vocab

    processor = sentencepiece_model.load_processor(model_path)
    pieces = set(sentencepiece_model.vocabulary_pieces(processor))
    tokens, _ = vocab.read_vocab(vocab_path)
    tokens = set(tokens)
    if pieces == tokens:
        return
    missing = sorted(pieces - tokens)
    extra = sorted(tokens - pieces)
    if missing:
        detail = (
            f"{len(missing)} of the model's pieces (e.g. {missing[0]!r}) are not "
            "in the vocabulary"
        )
    else:
        detail = (
            f"{len(extra)} vocabulary tokens (e.g. {extra[0]!r}) are not pieces "
            "of the model"
        )
    raise DataError(
        f"{what} tokenizer {model_path} and vocabulary {vocab_path} do not "
        f"agree: {detail}; use the .vocab file learn_subwords.py wrote with "
        "that .model."
    )


def check_vocabularies(tokenizer_paths, model_params):
    """Checks each side's tokenizer against that side's vocabulary.

    Args:
      tokenizer_paths: `(source, target)` SentencePiece model paths, "" for
        a side without one.
      model_params: The model's params (`vocab_source`, `vocab_target`).

    Raises:
      DataError: A model's pieces and its side's vocabulary differ.
    """
    for side, path in zip(("source", "target"), tokenizer_paths):
        vocab_path = model_params.get(f"vocab_{side}")
        if path and vocab_path:
            check_vocabulary(path, vocab_path, side)
