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

from seq2seq.tracing import tracing_for_xla


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


def _check_smoothing(label_smoothing):
    label_smoothing = float(label_smoothing)
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    return label_smoothing


# Below this target probability the loss is taken from an exact
# log-sum-exp instead of -log(p), whose float32 p would underflow.
_MIN_TARGET_PROB = 1e-30


def softmax_cross_entropy(logits, labels, label_smoothing=0.0):
    """Per-row (smoothed) cross-entropy computed from one softmax.

    The same values and gradients as
    `tf.nn.sparse_softmax_cross_entropy_with_logits` (and, with smoothing,
    as the log-softmax formula of `sequence_loss_batch_major`), computed
    another way: one softmax over the rows gives both the loss,
    `-log p[label]` (or, with smoothing `e`,
    `log Z - (1 - e) * logits[label] - e * mean(logits)`, `log Z` being
    recovered as `logits[label] - log p[label]`), and the gradient,
    `p - (1 - e) * one_hot(label) - e / V`, kept from the forward pass. On
    the CPU TensorFlow's fused sparse cross-entropy makes several passes
    over the `[N, V]` logits with unvectorised kernels and takes about four
    times as long as this over a 17k-word vocabulary (forward and
    backward); it is the largest cost of a short-sentence training step
    after the output matmul. When some target probability underflows (a
    loss above about 69 nats), the batch's `log Z` is computed exactly
    with a log-sum-exp instead.

    Args:
      logits: [N, V] float32 unnormalised scores.
      labels: [N] int32 class ids, all in `[0, V)`.
      label_smoothing: A Python float in `[0, 1)`.

    Returns:
      [N] float32 losses; gradients flow to `logits` only.
    """
    smoothing = float(label_smoothing)

    @tf.custom_gradient
    def cross_entropy(logits):
        probs = tf.nn.softmax(logits)
        target_logits = tf.gather(logits, labels, batch_dims=1)
        target_probs = tf.gather(probs, labels, batch_dims=1)
        log_norm = tf.cond(
            tf.reduce_all(target_probs >= _MIN_TARGET_PROB),
            lambda: target_logits - tf.math.log(target_probs),
            lambda: tf.reduce_logsumexp(logits, axis=-1),
        )
        if smoothing:
            losses = (
                log_norm
                - (1.0 - smoothing) * target_logits
                - smoothing * tf.reduce_mean(logits, axis=-1)
            )
        else:
            losses = log_norm - target_logits

        def grad(upstream):
            """[N] upstream gradient -> [N, V] gradient of the logits."""
            grads = probs * upstream[:, None]
            if smoothing:
                vocab_size = tf.cast(tf.shape(probs)[-1], probs.dtype)
                grads -= (smoothing / vocab_size) * upstream[:, None]
            return _subtract_at_labels(grads, labels, (1.0 - smoothing) * upstream)

        return losses, grad

    return cross_entropy(logits)


def _subtract_at_labels(values, labels, amounts):
    """`values - amounts[:, None] * one_hot(labels)`, in `values`' buffer.

    `tensor_scatter_nd_sub` copies its input, and that copy was the peak
    of a training step's memory (one more [N, V] tensor: about 80 MB at
    N = 1600, V = 13.2k). `InplaceSub` on the flattened tensor subtracts at
    the N label positions in place, which is safe only because `values`
    is a fresh tensor that nothing else reads. XLA has no `InplaceSub`, so
    a function traced for XLA scatters instead.

    Args:
      values: [N, V] float tensor, just computed and read by nothing else.
      labels: [N] int32 ids.
      amounts: [N] float amounts to subtract.

    Returns:
      [N, V] float tensor.
    """
    rows = tf.range(tf.shape(labels)[0])
    if tracing_for_xla():
        return tf.tensor_scatter_nd_sub(
            values, tf.stack([rows, labels], axis=1), amounts
        )
    flat_positions = rows * tf.shape(values)[1] + labels
    flat = tf.raw_ops.InplaceSub(
        x=tf.reshape(values, [-1]), i=flat_positions, v=amounts
    )
    return tf.reshape(flat, tf.shape(values))


def _token_losses(logits, targets, label_smoothing):
    """Per-token (smoothed) cross-entropy.

    Args:
      logits: [..., V] float32 scores.
      targets: [...] int32 ids, all in range.
      label_smoothing: A Python float in [0, 1).

    Returns:
      [...] float32 losses.
    """
    vocab_size = tf.shape(logits)[-1]
    losses = softmax_cross_entropy(
        tf.reshape(logits, [-1, vocab_size]),
        tf.reshape(targets, [-1]),
        label_smoothing,
    )
    return tf.reshape(losses, tf.shape(targets))


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
        losses = _token_losses(logits, _safe_targets(targets, mask), 0.0)
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
    label_smoothing = _check_smoothing(label_smoothing)
    with tf.name_scope("sequence_loss_batch_major"):
        logits = tf.cast(logits, tf.float32)
        max_time = tf.shape(targets)[1]
        mask = tf.sequence_mask(tf.cast(sequence_length, tf.int32), max_time)
        losses = _token_losses(logits, _safe_targets(targets, mask), label_smoothing)
        losses = tf.where(mask, losses, tf.zeros_like(losses))
        loss_sum = tf.reduce_sum(losses)
        num_tokens = tf.reduce_sum(tf.cast(mask, tf.float32))
        return loss_sum, num_tokens


def projected_sequence_loss(
    features, project_fn, targets, sequence_length, label_smoothing=0.0, row_multiple=1
):
    """`sequence_loss_batch_major` of `project_fn(features)`, projecting only
    the positions inside the sequence lengths.

    The output layer and the softmax are the largest per-position cost of a
    decoder; on padded batches many positions are padding, which the loss
    ignores anyway. Here the [N, F] features of the N valid positions are
    gathered first, so the projection to the vocabulary, the cross-entropy
    and their gradients run on [N, V] instead of [B, T, V]. The result is the
    same sum (up to float summation order). N is dynamic, so this suits
    graph mode and eager execution, not XLA with static shapes.

    Args:
      features: [B, T, F] decoder features (any float dtype).
      project_fn: Maps [N, F] features to [N, V] logits (any float dtype;
        the loss is taken in float32).
      targets: [B, T] int target ids.
      sequence_length: [B] number of valid steps of each sequence.
      label_smoothing: A Python float in [0, 1), as in
        `sequence_loss_batch_major`.
      row_multiple: `project_fn` sees N rounded up to a multiple of this
        (zero rows, left out of the loss), so that it meets fewer shapes
        (see `Decoder.projection_row_multiple`).

    Returns:
      `(loss_sum, num_tokens)`, float32 scalars.
    """
    label_smoothing = _check_smoothing(label_smoothing)
    with tf.name_scope("projected_sequence_loss"):
        max_time = tf.shape(targets)[1]
        mask = tf.sequence_mask(tf.cast(sequence_length, tf.int32), max_time)
        positions = tf.where(mask)
        rows = tf.gather_nd(features, positions)
        labels = tf.cast(tf.gather_nd(targets, positions), tf.int32)
        num_rows = tf.shape(rows)[0]
        if row_multiple > 1:
            extra = -num_rows % row_multiple
            rows = tf.pad(rows, [[0, extra], [0, 0]])
            labels = tf.pad(labels, [[0, extra]])
        logits = tf.cast(project_fn(rows), tf.float32)
        losses = _token_losses(logits, labels, label_smoothing)
        if row_multiple > 1:
            losses = losses[:num_rows]
        loss_sum = tf.reduce_sum(losses)
        num_tokens = tf.cast(num_rows, tf.float32)
        return loss_sum, num_tokens


def log_prob_sequence_loss(
    log_probs, targets, sequence_length, label_smoothing=0.0, smoothing_classes=None
):
    """Summed negative log-likelihood of given log-probabilities.

    For decoders whose outputs are already log-probabilities (copy
    attention mixes two distributions, so its outputs are no logits). With
    label smoothing `e` the per-token loss is `(1 - e) * (-log p[target]) +
    e * mean_v(-log p[v])` over the first `smoothing_classes` classes (the
    target vocabulary; per-sentence classes such as unused copy slots may be
    `-inf`).

    Args:
      log_probs: [B, T, C] float log-probabilities.
      targets: [B, T] int ids in `[0, C)`.
      sequence_length: [B] number of valid steps of each sequence.
      label_smoothing: A Python float in `[0, 1)`.
      smoothing_classes: The number of leading classes the smoothing spreads
        over; all `C` when None.

    Returns:
      `(loss_sum, num_tokens)`, float32 scalars.
    """
    label_smoothing = _check_smoothing(label_smoothing)
    with tf.name_scope("log_prob_sequence_loss"):
        log_probs = tf.cast(log_probs, tf.float32)
        max_time = tf.shape(targets)[1]
        mask = tf.sequence_mask(tf.cast(sequence_length, tf.int32), max_time)
        targets = _safe_targets(targets, mask)
        losses = -tf.gather(log_probs, targets[..., None], axis=-1, batch_dims=2)
        losses = losses[..., 0]
        if label_smoothing:
            classes = log_probs
            if smoothing_classes is not None:
                classes = log_probs[..., :smoothing_classes]
            uniform = -tf.reduce_mean(classes, axis=-1)
            losses = (1.0 - label_smoothing) * losses + label_smoothing * uniform
        losses = tf.where(mask, losses, tf.zeros_like(losses))
        loss_sum = tf.reduce_sum(losses)
        num_tokens = tf.reduce_sum(tf.cast(mask, tf.float32))
        return loss_sum, num_tokens
