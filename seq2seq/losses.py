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
        losses, probs = _losses_and_probs(logits, labels, smoothing)

        def grad(upstream):
            """[N] upstream gradient -> [N, V] gradient of the logits."""
            return _logit_gradient(probs, labels, smoothing, upstream)

        return losses, grad

    return cross_entropy(logits)


def _losses_and_probs(logits, labels, smoothing):
    """`([N] losses, [N, V] softmax)` of [N, V] float32 logits (see
    `softmax_cross_entropy`)."""
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
    return losses, probs


def _logit_gradient(probs, labels, smoothing, upstream=None):
    """[N, V] gradient of the logits of `_losses_and_probs`, for [N] upstream
    gradients of the losses (all ones when None: `probs` itself is then
    overwritten, so nothing else may read it afterwards)."""
    if upstream is None:
        grads = probs
        upstream = tf.ones_like(labels, dtype=probs.dtype)
    else:
        grads = probs * upstream[:, None]
    if smoothing:
        vocab_size = tf.cast(tf.shape(probs)[-1], probs.dtype)
        grads -= (smoothing / vocab_size) * upstream[:, None]
    return _subtract_at_labels(grads, labels, (1.0 - smoothing) * upstream)


# `linear_cross_entropy_sum` takes the output layer's product this many rows
# at a time: a [512, V] block of logits, 27 MB at V = 13.2k, where the
# longest batches of a real corpus hold 1,600 rows (86 MB per [N, V]).
LINEAR_CHUNK_ROWS = 512


def linear_cross_entropy_sum(
    rows,
    kernel,
    bias,
    labels,
    label_smoothing=0.0,
    chunk_rows=LINEAR_CHUNK_ROWS,
    product_dtype=None,
    row_multiple=1,
):
    """The summed (smoothed) cross-entropy of `rows @ kernel + bias`, whose
    gradients are computed on the way forward, `chunk_rows` rows at a time.

    The loss is a plain sum of per-row losses, so the gradient of each
    row's logits does not depend on what comes after it:
    `p - (1 - e) * one_hot(label) - e / V` times the one upstream scalar.
    Each chunk of rows therefore computes its logits, losses and logit
    gradients and turns them into its share of the gradients of `rows`,
    `kernel` and `bias` at once, and only these ([N, F], [F, V], [V]) are
    kept for the backward pass. No more than [chunk_rows, V] logits exist at
    a time, where the unfused loss keeps the [N, V] softmax from the forward
    pass to the backward pass and makes an [N, V] gradient from it; the
    products are the same three. The first chunk is taken as two halves
    that do not wait for each other, so that with one intra-op thread per
    op (training on a 2-core CPU, `seq2seq.training.cpu_threads`) the
    executor runs their products and softmaxes on two cores at once. For a
    loss whose gradient nobody asks for (evaluation), the two gradient
    products are wasted: use `projected_sequence_loss` without
    `output_layer` there.

    With `product_dtype` "bfloat16" the three products take bfloat16
    operands (the rows, the kernel and the logit gradients rounded) and
    round their results to bfloat16, as `OutputProjection`'s lower-precision
    training product and its autodiff gradients do; the bias, the softmax,
    the loss and the sums over chunks stay float32.

    Args:
      rows: [N, F] float32 features.
      kernel: [F, V] float32 weights.
      bias: [V] float32 biases, or None.
      labels: [N] int32 class ids, all in `[0, V)`.
      label_smoothing: A Python float in `[0, 1)`.
      chunk_rows: Rows per chunk (a Python int).
      product_dtype: None (float32) or "bfloat16": the products' dtype.
      row_multiple: The products see N rounded up to a multiple of this
        (a Python int dividing `chunk_rows`): zero rows, whose losses and
        gradients are left out, so that they meet fewer shapes (a bfloat16
        product keeps memory for every row count it meets).

    Returns:
      A float32 scalar; gradients flow to `rows`, `kernel` and `bias`.
    """
    smoothing = _check_smoothing(label_smoothing)
    if chunk_rows % row_multiple:
        raise ValueError(
            f"row_multiple {row_multiple} does not divide chunk_rows {chunk_rows}"
        )
    labels = tf.cast(labels, tf.int32)
    num_valid = tf.shape(rows)[0]  # before any padding
    with_bias = bias is not None
    if not with_bias:
        bias = tf.zeros([tf.shape(kernel)[1]], kernel.dtype)
    low = None if product_dtype is None else tf.as_dtype(product_dtype)

    def product(a, b, **kwargs):
        """`a @ b` as float32. With `low` set, `a` and `b` are already in
        `low` and the product is TensorFlow's `low` matmul, cast up (on
        CPUs with bfloat16 dot products, the float32 product rounded
        once)."""
        if low is None:
            return tf.matmul(a, b, **kwargs)
        return tf.cast(tf.matmul(a, b, **kwargs), tf.float32)

    def chunk(rows, start, size, kernel, bias):
        """Loss sum and gradient shares of rows [start, start + size).
        Rows at or past `num_valid` are padding (zero rows, so their share
        of the kernel's gradient is zero): their losses and their share of
        the bias' gradient are left out."""
        features = rows[start : start + size]
        part_labels = labels[start : start + size]
        logits = tf.nn.bias_add(product(features, kernel), bias)
        losses, probs = _losses_and_probs(logits, part_labels, smoothing)
        if row_multiple > 1:
            valid = tf.cast(tf.range(start, start + size) < num_valid, tf.float32)
            losses = losses * valid
        with tf.control_dependencies([losses]):
            grads = _logit_gradient(probs, part_labels, smoothing)
        low_grads = grads if low is None else tf.cast(grads, low)
        if row_multiple > 1:
            d_bias = tf.linalg.matvec(grads, valid, transpose_a=True)
        else:
            d_bias = tf.reduce_sum(grads, axis=0)
        return (
            tf.reduce_sum(losses),
            product(low_grads, kernel, transpose_b=True),
            product(features, low_grads, transpose_a=True),
            d_bias,
        )

    def forward(rows, kernel, bias):
        """The loss sum and the gradients of rows, kernel and bias."""
        if low is not None:
            # Rounded once here rather than in every chunk's products.
            rows, kernel = tf.cast(rows, low), tf.cast(kernel, low)
        num_rows = tf.shape(rows)[0]
        # Two independent halves (see the docstring); a half is a whole
        # number of `row_multiple` rows.
        first = tf.minimum(chunk_rows, num_rows)
        half = first // (2 * row_multiple) * row_multiple
        head = chunk(rows, 0, half, kernel, bias)
        tail = chunk(rows, half, first - half, kernel, bias)
        loss_sum = head[0] + tail[0]
        d_rows = tf.concat([head[1], tail[1]], 0)
        d_kernel = head[2] + tail[2]
        d_bias = head[3] + tail[3]
        num_chunks = (num_rows + chunk_rows - 1) // chunk_rows
        later_rows = tf.TensorArray(
            tf.float32,
            size=tf.maximum(num_chunks - 1, 0),
            infer_shape=False,
            element_shape=tf.TensorShape([None, rows.shape[1]]),
        )

        def body(index, loss_sum, later_rows, d_kernel, d_bias):
            start = index * chunk_rows
            part = chunk(
                rows, start, tf.minimum(chunk_rows, num_rows - start), kernel, bias
            )
            return (
                index + 1,
                loss_sum + part[0],
                later_rows.write(index - 1, part[1]),
                d_kernel + part[2],
                d_bias + part[3],
            )

        _, loss_sum, later_rows, d_kernel, d_bias = tf.while_loop(
            lambda index, *_: index < num_chunks,
            body,
            (tf.constant(1), loss_sum, later_rows, d_kernel, d_bias),
        )
        d_rows = tf.cond(
            num_chunks > 1,
            lambda: tf.concat([d_rows, later_rows.concat()], 0),
            lambda: d_rows,
        )
        return loss_sum, (d_rows, d_kernel, d_bias)

    inputs = (rows, kernel, bias) if with_bias else (rows, kernel)
    padded, labels = _pad_rows(tf.stop_gradient(rows), labels, row_multiple)
    # Nothing of the forward pass is taped: its gradients are computed.
    loss_sum, grads = forward(padded, tf.stop_gradient(kernel), tf.stop_gradient(bias))
    if row_multiple > 1:
        grads = (grads[0][:num_valid],) + grads[1:]
    # `linear - stop_gradient(linear)` is exactly 0 and has the gradients
    # `grads` (times the upstream scalar) with respect to `inputs`.
    linear = tf.add_n(
        [tf.reduce_sum(x * tf.stop_gradient(g)) for x, g in zip(inputs, grads)]
    )
    return tf.stop_gradient(loss_sum) + (linear - tf.stop_gradient(linear))


def _pad_rows(rows, labels, multiple):
    """[N, F] rows and [N] labels with zero rows (label 0) appended up to
    the next multiple of `multiple` (a Python int; 1: unchanged)."""
    if multiple <= 1:
        return rows, labels
    extra = -tf.shape(rows)[0] % multiple
    return tf.pad(rows, [[0, extra], [0, 0]]), tf.pad(labels, [[0, extra]])


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
    features,
    project_fn,
    targets,
    sequence_length,
    label_smoothing=0.0,
    row_multiple=1,
    output_layer=None,
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
      output_layer: None, or the last output layer, an affine
        `OutputProjection` (see `Decoder.fused_output`): then `project_fn`
        gives its [N, H] inputs, and its product (in the layer's training
        `product_dtype`) is taken with the cross-entropy, in chunks,
        gradients included (`linear_cross_entropy_sum`; for training only).

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
        if output_layer is not None and tracing_for_xla():
            # XLA wants static slices; its product and loss are unchunked.
            hidden_fn, layer = project_fn, output_layer

            def project_fn(x):
                return layer(hidden_fn(x), training=True)

            output_layer = None
        if output_layer is not None:
            hidden = tf.cast(project_fn(rows), tf.float32)
            if not output_layer.built:
                output_layer(hidden[:0])
            loss_sum = linear_cross_entropy_sum(
                hidden,
                tf.convert_to_tensor(output_layer.kernel),
                (
                    tf.convert_to_tensor(output_layer.bias)
                    if output_layer.use_bias
                    else None
                ),
                labels,
                label_smoothing,
                product_dtype=output_layer.product_dtype(training=True),
                row_multiple=row_multiple,
            )
            return loss_sum, tf.cast(num_rows, tf.float32)
        rows, labels = _pad_rows(rows, labels, row_multiple)
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
