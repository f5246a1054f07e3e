"""The extended vocabulary of copy attention (pointer-generator).

A decoder with copy attention (See et al., 2017) predicts over the target
vocabulary (`V` ids, specials included) plus one slot per distinct source
word that the target vocabulary lacks: in each sentence, those words get
the ids `V, V + 1, ...` in the order of their first appearance. This module
builds that numbering inside the `tf.data` pipeline (`copy_features`) and
maps decoded ids back to tokens (`extended_tokens`).

Features that `copy_features` adds to a preprocessed batch:
  source_copy_ids [B, S] int32: each source token's id in the extended
    space (its target-vocabulary id, or its slot), in the order the encoder
    reads the source (reversed within the length when `source.reverse`).
  source_oov_mask [B, M] bool: which of the batch's `M` slots a sentence
    uses (`M` is the largest number of source OOV words in the batch).
  source_oov_tokens [B, M] string: the word of each slot ("" when unused).
  target_copy_ids [B, T] int32 (with targets): the target ids, except that
    a target word outside the vocabulary that occurs in the source gets its
    slot instead of UNK, so that training learns to copy it.
"""

import numpy as np
import tensorflow as tf

# The numeric copy features; the compiled train, eval and decode functions
# take them beside the source and target ids.
COPY_ID_KEYS = ("source_copy_ids", "source_oov_mask", "target_copy_ids")

UNK = "UNK"


def _first_match(matches):
    """[B, N, K] bool -> [B, N] int32: the first k where true, K if none."""
    size = tf.shape(matches)[-1]
    positions = tf.range(size)
    return tf.reduce_min(tf.where(matches, positions, size), axis=-1)


def copy_features(
    source_tokens,
    source_len,
    vocab_table,
    vocab_size,
    unk_id,
    target_tokens=None,
    reverse_source=False,
):
    """The copy-attention features of a batch (see the module docstring).

    Args:
      source_tokens: [B, S] string source tokens (padded with "", cut to the
        model's `source.max_seq_len`).
      source_len: [B] int32 source lengths.
      vocab_table: The target vocabulary's token -> id table (UNK default).
      vocab_size: V, the target vocabulary size with the specials.
      unk_id: The target UNK id.
      target_tokens: Optional [B, T] string target tokens (as cut for ids).
      reverse_source: Whether the encoder reads each source reversed
        within its length (`source.reverse`).

    Returns:
      A dict with `source_copy_ids`, `source_oov_mask`, `source_oov_tokens`
      and, with targets, `target_copy_ids`.
    """
    source_len = tf.cast(source_len, tf.int32)
    num_positions = tf.shape(source_tokens)[1]
    ids = tf.cast(vocab_table.lookup(source_tokens), tf.int32)
    inside = tf.sequence_mask(source_len, num_positions)
    is_oov = inside & tf.equal(ids, unk_id) & tf.not_equal(source_tokens, UNK)
    # The first position holding each position's word: [B, S].
    same = tf.equal(source_tokens[:, :, None], source_tokens[:, None, :])
    first = _first_match(same)
    is_first = is_oov & tf.equal(first, tf.range(num_positions)[None, :])
    slot_at_first = tf.cumsum(tf.cast(is_first, tf.int32), axis=1) - 1
    slots = tf.gather(slot_at_first, first, batch_dims=1)
    source_copy_ids = tf.where(is_oov, vocab_size + slots, ids)
    if reverse_source:
        source_copy_ids = tf.reverse_sequence(
            source_copy_ids, source_len, seq_axis=1, batch_axis=0
        )
    oov_tokens = tf.ragged.boolean_mask(source_tokens, is_first).to_tensor(
        default_value=""
    )
    features = {
        "source_copy_ids": source_copy_ids,
        "source_oov_mask": tf.not_equal(oov_tokens, ""),
        "source_oov_tokens": oov_tokens,
    }
    if target_tokens is not None:
        target_ids = tf.cast(vocab_table.lookup(target_tokens), tf.int32)
        matches = tf.equal(target_tokens[:, :, None], oov_tokens[:, None, :])
        matches &= tf.not_equal(oov_tokens, "")[:, None, :]
        slot = _first_match(matches)
        copied = tf.reduce_any(matches, axis=-1) & tf.equal(target_ids, unk_id)
        features["target_copy_ids"] = tf.where(copied, vocab_size + slot, target_ids)
    return features


def in_vocabulary_copy_source(source_ids, source_id_to_token, id_to_token, unk_id):
    """The copy source of a batch known only by its source ids.

    Each source id maps to the target id of the same token (UNK if none);
    there are no slots, so only in-vocabulary words can be copied.

    Args:
      source_ids: [B, S] int source-vocabulary ids.
      source_id_to_token: The source vocabulary's tokens by id.
      id_to_token: The target vocabulary's tokens by id.
      unk_id: The target UNK id.

    Returns:
      `(source_copy_ids [B, S] int32, source_oov_mask [B, 0] bool)`.
    """
    target_ids = {str(token): index for index, token in enumerate(id_to_token)}
    mapping = [target_ids.get(str(token), unk_id) for token in source_id_to_token]
    copy_ids = tf.gather(tf.constant(mapping, tf.int32), source_ids)
    return copy_ids, tf.zeros([tf.shape(source_ids)[0], 0], tf.bool)


def embedding_ids(ids, vocab_size, unk_id):
    """Ids to embed: a copied slot (`id >= V`) is fed back as UNK."""
    ids = tf.convert_to_tensor(ids)
    return tf.where(ids >= vocab_size, tf.cast(unk_id, ids.dtype), ids)


def extended_tokens(id_to_token, ids, oov_tokens):
    """Maps extended ids to tokens, slots to their source words.

    Args:
      id_to_token: [V] array of the target vocabulary's tokens.
      ids: [B, T] int ids in the extended space.
      oov_tokens: [B, M] str (or UTF-8 bytes) words of each sentence's
        slots.

    Returns:
      A [B, T] object array of str; a slot a sentence does not use maps to
      UNK.
    """
    ids = np.asarray(ids)
    vocab_size = len(id_to_token)
    tokens = np.asarray(id_to_token, dtype=object)[np.minimum(ids, vocab_size - 1)]
    tokens = tokens.astype(object)
    rows, cols = np.nonzero(ids >= vocab_size)
    for row, col in zip(rows, cols):
        slot = int(ids[row, col]) - vocab_size
        word = oov_tokens[row][slot] if slot < len(oov_tokens[row]) else ""
        if isinstance(word, bytes):
            word = word.decode("utf-8", errors="replace")
        tokens[row, col] = word or UNK
    return tokens
