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
    # The line tokens that can survive the cut to `limit`.
    wanted = None if limit is None else max(limit - (prepend_token is not None), 0)
    if not isinstance(delimiter, str):
        pieces = delimiter.tokenize(_clean_lines(texts, ""))
    elif limit is None:
        pieces = _all_pieces(texts, delimiter)
    else:
        pieces = _first_pieces(texts, delimiter, wanted)
    return _finish_rows(
        pieces,
        drop_empty=isinstance(delimiter, str),
        wanted=wanted,
        prepend_token=prepend_token,
        append_token=append_token,
    )


# The helpers below work on the flat values and row indices of the ragged
# tokens rather than with ragged ops (boolean masks, slices, concatenations):
# the result is the same in a graph of a quarter of the ops (about 200
# instead of 750 with a token limit). Graph size is what counts here: every
# `tf.data` iterator optimizes its map functions again when it starts, which
# took longer than parsing a thousand short lines.


def _finish_rows(pieces, drop_empty, wanted, prepend_token, append_token):
    """The tokens of each row with the special tokens added.

    Args:
      pieces: [N, None] ragged tf.string, each row's pieces in order.
      drop_empty: Whether empty pieces are dropped.
      wanted: Keep at most this many pieces per row (a Python int, before
        the special tokens), or None for all.
      prepend_token, append_token: As for `split_tokens_batch`. With
        `wanted`, the appended token is kept only in rows of fewer than
        `wanted` pieces: in the others the cut to the limit removes it.

    Returns:
      `(tokens [N, None] ragged tf.string, lengths [N] tf.int32)`.
    """
    values = pieces.flat_values
    rows = pieces.value_rowids()
    count = pieces.nrows()
    kept = (
        tf.cast(tf.strings.length(values) > 0, tf.int64)
        if drop_empty
        else tf.ones_like(rows)
    )
    lengths = tf.math.unsorted_segment_sum(kept, rows, count)
    # Each piece's position among the kept pieces of its row.
    positions = tf.cumsum(kept, exclusive=True) - tf.gather(
        tf.cumsum(lengths, exclusive=True), rows
    )
    keep = kept > 0
    if wanted is not None:
        keep &= positions < wanted
        lengths = tf.minimum(lengths, wanted)
    if drop_empty or wanted is not None:
        chosen = _indices_where(keep)
        values, rows, positions = (
            tf.gather(x, chosen) for x in (values, rows, positions)
        )
    offset = int(prepend_token is not None)
    total = lengths + offset
    if append_token is not None:
        if wanted is None:
            ending = None
            total += 1
        else:
            # Rows cut to `wanted` tokens have no room left for it.
            room = lengths < wanted
            ending = _indices_where(room)
            total += tf.cast(room, tf.int64)
    starts = tf.cumsum(total, exclusive=True)
    indices = [tf.gather(starts, rows) + positions + offset]
    parts = [values]
    if prepend_token is not None:
        indices.append(starts)
        parts.append(tf.fill(tf.shape(starts), prepend_token))
    if append_token is not None:
        ends = starts + lengths + offset
        if ending is not None:
            ends = tf.gather(ends, ending)
        indices.append(ends)
        parts.append(tf.fill(tf.shape(ends), append_token))
    if len(parts) > 1:
        # (Its indices are int32: a batch holds fewer than 2**31 tokens.)
        values = tf.dynamic_stitch([tf.cast(i, tf.int32) for i in indices], parts)
    tokens = tf.RaggedTensor.from_row_lengths(values, total, validate=False)
    return tokens, tf.cast(total, tf.int32)


def _indices_where(mask):
    """The [K] int64 indices of the true items of a [N] bool mask (what
    `tf.boolean_mask` gathers, in fewer ops)."""
    return tf.reshape(tf.where(mask), [-1])


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


def _all_pieces(texts, delimiter):
    """The pieces of each whole line: [N, None] ragged tf.string, with the
    empty pieces between repeated delimiters still in."""
    texts = _clean_lines(texts, delimiter)
    if delimiter == "":
        return tf.strings.unicode_split(texts, "UTF-8", errors="replace")
    return tf.strings.split(texts, sep=delimiter[0])


def _leading_pieces(texts, delimiter, count):
    """The first `count` tokens of each line and then the rest of it, as
    [N, None] ragged pieces (an empty one only for an empty line or after
    a final delimiter); the split stops after `count` separators, so a long
    line makes at most `count + 1` strings."""
    texts = _clean_lines(texts, delimiter)
    separator = delimiter[0]
    pattern = _re2_literal(separator)
    # One separator between tokens and none in front, so that the first
    # `count` pieces of the split are the first `count` tokens.
    texts = tf.strings.regex_replace(
        texts, f"{pattern}+", separator.replace("\\", "\\\\")
    )
    texts = tf.strings.regex_replace(texts, f"^{pattern}", "")
    return tf.strings.split(texts, sep=separator, maxsplit=count)


def _first_pieces(texts, delimiter, count):
    """Pieces of each line whose first `count` non-empty ones are the first
    `count` tokens of `_all_pieces(texts, delimiter)`, reading a bounded
    prefix of each line where that is enough (see `split_tokens_batch`)."""
    if count == 0:
        return tf.RaggedTensor.from_row_lengths(
            tf.zeros([0], tf.string),
            tf.zeros([tf.shape(texts)[0]], tf.int64),
            validate=False,
        )
    # A character takes at most 4 bytes of UTF-8 (an invalid byte becomes
    # one U+FFFD), so a prefix of this many bytes holds the first
    # `count + 1` characters whole; a character cut at its end lies past them.
    bound = (4 if delimiter == "" else PREFIX_BYTES_PER_TOKEN) * (count + 1)
    if bound > INT32_MAX:
        # Past what string ops take as a length (tens of millions of tokens
        # kept): no prefix helps, split the lines whole.
        return _all_pieces(texts, delimiter)
    if delimiter == "":
        return _all_pieces(tf.strings.substr(texts, 0, bound), delimiter)
    # `count + 1` tokens of the prefix: the first `count` are then followed
    # by a separator inside it, so none of them was cut.
    leading = _leading_pieces(tf.strings.substr(texts, 0, bound), delimiter, count + 1)
    values, rows = leading.flat_values, leading.value_rowids()
    found = tf.math.unsorted_segment_sum(
        tf.cast(tf.strings.length(values) > 0, tf.int32), rows, leading.nrows()
    )
    whole = (tf.strings.length(texts) <= bound) | (found > count)
    chosen = _indices_where(tf.gather(whole, rows))
    # The other lines are split whole (only up to their first `count`
    # tokens); a row has pieces in only one of the two parts.
    rest = _leading_pieces(tf.where(whole, "", texts), delimiter, count)
    values = tf.concat([tf.gather(values, chosen), rest.flat_values], 0)
    rows = tf.concat([tf.gather(rows, chosen), rest.value_rowids()], 0)
    order = tf.argsort(rows, stable=True)
    return tf.RaggedTensor.from_value_rowids(
        tf.gather(values, order),
        tf.gather(rows, order),
        nrows=leading.nrows(),
        validate=False,
    )


def _re2_literal(char):
    """An RE2 pattern matching exactly `char`."""
    if char.isalnum() or ord(char) > 127:
        return char
    return f"\\x{{{ord(char):x}}}"
