"""Post-processing of decoded text: special tokens and subword joins.

These plain string functions are applied to the text a model produces,
before it is written out or scored (see `seq2seq.metrics`).
"""

SENTENCEPIECE_SPACE = "\u2581"


def strip_bpe(text):
    """Joins subword-nmt BPE pieces: `"lo@@ w@@ er"` -> `"lower"`.

    Removes every `"@@ "` continuation marker and a dangling `"@@"` at the
    end of the text, then strips surrounding whitespace.
    """
    text = text.replace("@@ ", "").strip()
    if text.endswith("@@"):
        text = text[: -len("@@")].rstrip()
    return text


def decode_sentencepiece(text):
    """Decodes space-separated SentencePiece pieces into plain text.

    The spaces between pieces are removed, each U+2581 (`▁`, SentencePiece's
    word-boundary mark) becomes a space, and the result is stripped:
    `"▁Hel lo ▁world"` -> `"Hello world"`.
    """
    return text.replace(" ", "").replace(SENTENCEPIECE_SPACE, " ").strip()


def slice_text(text, eos_token="SEQUENCE_END", sos_token="SEQUENCE_START"):
    """Keeps the text between the start and end tokens, without them.

    Everything from the first `eos_token` on is dropped; then everything up
    to and including the first `sos_token` in what remains is dropped. Either
    token may be missing from the text (an empty token is ignored). The result is stripped of surrounding whitespace.

    Args:
      text: A decoded string, tokens separated by spaces.
      eos_token: The end-of-sequence token.
      sos_token: The start-of-sequence token.

    Returns:
      The sliced string.
    """
    if eos_token:
        text = text.partition(eos_token)[0]
    if sos_token:
        before, found, after = text.partition(sos_token)
        text = after if found else before
    return text.strip()
