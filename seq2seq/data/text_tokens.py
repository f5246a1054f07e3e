"""Lines of text into tokens, inside `tf.data`: the rules every text input
pipeline and the exported serving signature share.

A line is cleaned (invalid UTF-8 replaced with U+FFFD, a trailing carriage
return removed), split on the delimiter (every character of a
multi-character delimiter separates; an empty delimiter splits into Unicode
characters), empty tokens are dropped and optional special tokens are added.
With a token limit only a bounded prefix of each line is split, so a line of
a million tokens costs about what a short one does.
"""

import tensorflow as tf

from seq2seq.configurable import INT32_MAX

__all__ = ["PREFIX_BYTES_PER_TOKEN", "split_tokens", "split_tokens_batch"]


def split_tokens(
    text, delimiter, prepend_token=None, append_token=None, max_tokens=None
):
    """Splits one line into tokens inside a `tf.data` map.

    Invalid UTF-8 is replaced with U+FFFD, a trailing carriage return is
    removed, empty tokens are dropped and the special tokens are added.

    Args:
      text: A scalar tf.string, one line.
      delimiter: A Python string; each of its characters separates tokens.
        An empty string splits into Unicode characters. A subword tokenizer
        instead splits the line into pieces (see `split_tokens_batch`).
      prepend_token: A token put before the others, or `None`.
      append_token: A token put after the others, or `None`.
      max_tokens: Keep only the first `max_tokens` tokens (special tokens
        included), reading only a bounded prefix of long lines; `None` or
        less than 1 keeps them all. See `split_tokens_batch`.

    Returns:
      A tuple `(tokens [N] tf.string, length [] tf.int32)`.
    """
    tokens, _ = split_tokens_batch(
        tf.reshape(text, [1]), delimiter, prepend_token, append_token, max_tokens
    )
    tokens = tf.ensure_shape(tokens.values, [None])
    return tokens, tf.size(tokens, out_type=tf.int32)


# With `max_tokens`, a line is first cut to this many bytes per token kept
# (plus one token). A line whose first tokens do not fit in that prefix
# (very long tokens, long runs of delimiters) is split again whole, so the
# result never depends on the bound; only the cost of such lines does.
PREFIX_BYTES_PER_TOKEN = 64


def split_tokens_batch(
    texts, delimiter, prepend_token=None, append_token=None, max_tokens=None
):
    """Splits a batch of lines into tokens, exactly as `split_tokens` does.

    The vectorized form of `split_tokens`: one call handles a whole batch of
    lines, which in `tf.data` is much cheaper than one call per line.

    With `max_tokens`, the result is the first `max_tokens` tokens of each
    row of the unlimited result (`tokens[:, :max_tokens]`), but a line is
    only split as far as needed: the work and memory per line are bounded by
    `max_tokens` rather than by the line's length (a line of a million
    tokens does not make a million strings), unless the tokens kept are
    longer than `PREFIX_BYTES_PER_TOKEN` bytes on average.

    Args:
      texts: A [N] tf.string tensor of lines.
      delimiter: As for `split_tokens`, or a subword tokenizer (an object
        with a `tokenize([N] tf.string) -> [N, None]` method, such as
        `seq2seq.data.tokenizers.SubwordTokenizer`) that splits the cleaned
        lines instead; with `max_tokens` a line is then tokenized whole and
        cut.
      prepend_token: A token put before the others of every line, or `None`.
      append_token: A token put after the others of every line, or `None`.
      max_tokens: The most tokens kept per line, special tokens included
        (a Python int); `None` or less than 1: no limit.

    Returns:
      A tuple `(tokens, lengths)`: a `tf.RaggedTensor` [N, None] of tf.string
      and the [N] tf.int32 row lengths.
    """
    limit = max_tokens if max_tokens is not None and max_tokens > 0 else None
    if not isinstance(delimiter, str):
        tokens = delimiter.tokenize(_clean_lines(texts, ""))
    elif limit is None:
        tokens = _split_lines(texts, delimiter)
    else:
        # The line tokens that can survive the cut to `limit`.
        wanted = max(limit - (prepend_token is not None), 0)
        tokens = _first_tokens(texts, delimiter, wanted)
    count = tf.shape(texts)[0]
    pieces = []
    if prepend_token is not None:
        pieces.append(tf.RaggedTensor.from_tensor(tf.fill([count, 1], prepend_token)))
    pieces.append(tokens)
    if append_token is not None:
        pieces.append(tf.RaggedTensor.from_tensor(tf.fill([count, 1], append_token)))
    if len(pieces) > 1:
        tokens = tf.concat(pieces, axis=1)
    if limit is not None:
        tokens = tokens[:, :limit]
    return tokens, tf.cast(tokens.row_lengths(), tf.int32)


def _clean_lines(texts, delimiter):
    """Replaces invalid UTF-8, drops a final carriage return and, for a
    multi-character delimiter, turns each of its characters into the first."""
    texts = tf.strings.unicode_transcode(
        texts,
        input_encoding="UTF-8",
        output_encoding="UTF-8",
        errors="replace",
        replacement_char=0xFFFD,
    )
    texts = tf.strings.regex_replace(texts, "\r$", "")
    if len(delimiter) > 1:
        separator = delimiter[0]
        rewrite = separator.replace("\\", "\\\\")
        for other in sorted(set(delimiter[1:]) - {separator}):
            texts = tf.strings.regex_replace(texts, _re2_literal(other), rewrite)
    return texts


def _split_lines(texts, delimiter):
    """All tokens of each line: a [N, None] ragged tf.string."""
    texts = _clean_lines(texts, delimiter)
    if delimiter == "":
        return tf.strings.unicode_split(texts, "UTF-8", errors="replace")
    tokens = tf.strings.split(texts, sep=delimiter[0])
    return tf.ragged.boolean_mask(tokens, tf.strings.length(tokens) > 0)


def _leading_tokens(texts, delimiter, count):
    """The first `count` (at least 1) non-empty tokens of each line, with a
    delimiter; the split stops after `count` separators, so a long line
    makes at most `count + 1` strings."""
    texts = _clean_lines(texts, delimiter)
    separator = delimiter[0]
    pattern = _re2_literal(separator)
    # One separator between tokens and none in front, so that the first
    # `count` pieces of the split are the first `count` tokens.
    texts = tf.strings.regex_replace(
        texts, f"{pattern}+", separator.replace("\\", "\\\\")
    )
    texts = tf.strings.regex_replace(texts, f"^{pattern}", "")
    pieces = tf.strings.split(texts, sep=separator, maxsplit=count)[:, :count]
    return tf.ragged.boolean_mask(pieces, tf.strings.length(pieces) > 0)


def _first_tokens(texts, delimiter, count):
    """`_split_lines(texts, delimiter)[:, :count]`, reading a bounded prefix
    of each line where that is enough (see `split_tokens_batch`)."""
    if count == 0:
        return tf.RaggedTensor.from_row_lengths(
            tf.zeros([0], tf.string), tf.zeros([tf.shape(texts)[0]], tf.int64)
        )
    # A character takes at most 4 bytes of UTF-8 (an invalid byte becomes
    # one U+FFFD), so a prefix of this many bytes holds the first
    # `count + 1` characters whole; a character cut at its end lies past them.
    bound = (4 if delimiter == "" else PREFIX_BYTES_PER_TOKEN) * (count + 1)
    if bound > INT32_MAX:
        # Past what string ops take as a length (tens of millions of tokens
        # kept): no prefix helps, split the lines whole.
        return _split_lines(texts, delimiter)[:, :count]
    if delimiter == "":
        return _split_lines(tf.strings.substr(texts, 0, bound), delimiter)[:, :count]
    # `count + 1` tokens of the prefix: the first `count` are then followed
    # by a separator inside it, so none of them was cut.
    leading = _leading_tokens(tf.strings.substr(texts, 0, bound), delimiter, count + 1)
    whole = (tf.strings.length(texts) <= bound) | (leading.row_lengths() > count)
    leading = tf.ragged.boolean_mask(
        leading, leading.with_flat_values(tf.repeat(whole, leading.row_lengths()))
    )[:, :count]
    # The other lines are split whole (only up to their first `count`
    # tokens); a row is empty in one of the two parts, so concatenating the
    # rows puts each line's tokens together.
    rest = _leading_tokens(tf.where(whole, "", texts), delimiter, count)
    return tf.concat([leading, rest], axis=1)


def _re2_literal(char):
    """An RE2 pattern matching exactly `char`."""
    if char.isalnum() or ord(char) > 127:
        return char
    return f"\\x{{{ord(char):x}}}"
