"""Sequence cross-entropy losses with padding masked out.

Two layouts are offered:

* `cross_entropy_sequence_loss` keeps the original toolkit's time-major
  contract (`[T, B, V]` logits in, `[T, B]` per-step losses out).
* `sequence_loss_batch_major` is what the models use: batch-major logits,
  optional label smoothing, and the two sums needed for the model's scalar
  loss (`loss_sum / num_tokens`).

In both, every position at or past a sequence's length contributes a loss of
exactly zero and receives a gradient of exactly zero (for finite logits),
whatever target id the padding holds. Logits are cast to float32 first, so
half-precision logits from a mixed-precision model are safe.
"""

import tensorflow as tf


def _safe_targets(targets, mask):
    """Replaces padded target ids by 0 so that any padding id is in range.

    Args:
      targets: Integer target ids, any shape.
      mask: Boolean tensor of the same shape, True where the target counts.

    Returns:
      Int32 ids with the same shape, 0 wherever `mask` is False.
    """
    targets = tf.cast(targets, tf.int32)
    return tf.where(mask, targets, tf.zeros_like(targets))


def cross_entropy_sequence_loss(logits, targets, sequence_length):
    """Per-step cross-entropy of a time-major batch, zero past each length.

    Args:
      logits: Unnormalised scores, `[T, B, V]` (any float dtype).
      targets: Target ids, `[T, B]` (int32 or int64).
      sequence_length: Number of valid steps of each sequence, `[B]`. A
        length of 0 masks the whole column; lengths above `T` count as `T`.

    Returns:
      A float32 tensor `[T, B]` of per-step losses; entry `[t, b]` is 0.0
      whenever `t >= sequence_length[b]`.
    """
    with tf.name_scope("cross_entropy_sequence_loss"):
        logits = tf.cast(logits, tf.float32)
        max_time = tf.shape(targets)[0]
        # sequence_mask gives [B, T]; the losses are time-major.
        mask = tf.transpose(
            tf.sequence_mask(tf.cast(sequence_length, tf.int32), max_time)
        )
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=_safe_targets(targets, mask), logits=logits
        )
        return tf.where(mask, losses, tf.zeros_like(losses))


def sequence_loss_batch_major(logits, targets, sequence_length, label_smoothing=0.0):
    """Summed cross-entropy of a batch-major batch and the number of tokens.

    With label smoothing `e`, the target distribution is
    `(1 - e) * one_hot(target) + e / V` (the uniform share also goes to the
    true class, as in Keras), so the per-token loss is
    `(1 - e) * (-log p[target]) + e * mean_v(-log p[v])`. Smoothing only
    touches positions inside the sequence lengths; `e = 0` computes exactly
    the plain cross-entropy.

    Args:
      logits: Unnormalised scores, `[B, T, V]` (any float dtype).
      targets: Target ids, `[B, T]` (int32 or int64).
      sequence_length: Number of valid steps of each sequence, `[B]`.
      label_smoothing: A Python float in `[0, 1)`.

    Returns:
      A tuple `(loss_sum, num_tokens)` of float32 scalars: the sum of the
      masked per-token losses and the number of unmasked positions. The
      model's loss is `loss_sum / num_tokens`.

    Raises:
      ValueError: `label_smoothing` is outside `[0, 1)`.
    """
    label_smoothing = float(label_smoothing)
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    with tf.name_scope("sequence_loss_batch_major"):
        logits = tf.cast(logits, tf.float32)
        max_time = tf.shape(targets)[1]
        mask = tf.sequence_mask(tf.cast(sequence_length, tf.int32), max_time)
        safe_targets = _safe_targets(targets, mask)
        if label_smoothing == 0.0:
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=safe_targets, logits=logits
            )
        else:
            log_probs = tf.nn.log_softmax(logits, axis=-1)
            nll = -tf.gather(log_probs, safe_targets, axis=-1, batch_dims=2)
            uniform = -tf.reduce_mean(log_probs, axis=-1)
            losses = (1.0 - label_smoothing) * nll + label_smoothing * uniform
        losses = tf.where(mask, losses, tf.zeros_like(losses))
        loss_sum = tf.reduce_sum(losses)
        num_tokens = tf.reduce_sum(tf.cast(mask, tf.float32))
        return loss_sum, num_tokens
