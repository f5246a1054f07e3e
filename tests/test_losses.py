"""Tests for seq2seq.losses."""

import math

import numpy as np
import pytest
import tensorflow as tf

from seq2seq import losses
from seq2seq.tracing import xla_tracing


def _ce(logits_row, target):
    """-log softmax(logits_row)[target], computed by hand in float64."""
    row = np.asarray(logits_row, np.float64)
    return math.log(np.exp(row).sum()) - row[target]


# T=3, B=3, V=4; lengths 2, 0 (empty) and 5 (> T, counts as 3).
LOGITS = np.array(
    [
        [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0], [2.0, -1.0, 0.5, 0.0]],
        [[0.5, 0.5, 0.5, 0.5], [1.0, 1.0, 1.0, 1.0], [0.0, 3.0, 0.0, 1.0]],
        [[9.0, 1.0, 2.0, 3.0], [4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 1.0, 2.0]],
    ],
    np.float32,
)
TARGETS = np.array([[3, 1, 0], [2, 0, 1], [-1, 7, 3]], np.int32)  # padding: -1, 7
LENGTHS = np.array([2, 0, 5], np.int32)


def test_time_major_hand_computed_values():
    result = losses.cross_entropy_sequence_loss(LOGITS, TARGETS, LENGTHS).numpy()
    assert result.shape == (3, 3)
    assert result.dtype == np.float32
    # ln(e + e^2 + e^3 + e^4) - 4 = 0.4401897
    assert result[0, 0] == pytest.approx(0.4401897, abs=1e-6)
    # uniform over 4 classes: ln 4
    assert result[1, 0] == pytest.approx(math.log(4.0), abs=1e-6)
    assert result[0, 2] == pytest.approx(_ce(LOGITS[0, 2], 0), abs=1e-6)
    assert result[1, 2] == pytest.approx(_ce(LOGITS[1, 2], 1), abs=1e-6)
    assert result[2, 2] == pytest.approx(_ce(LOGITS[2, 2], 3), abs=1e-6)
    # Past the length, and the whole length-0 column: exactly zero even
    # though the padding ids (-1, 7) are out of range.
    assert result[2, 0] == 0.0
    np.testing.assert_array_equal(result[:, 1], [0.0, 0.0, 0.0])


def test_time_major_gradient_is_exactly_zero_at_padding():
    logits = tf.Variable(LOGITS)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(
            losses.cross_entropy_sequence_loss(logits, TARGETS, LENGTHS)
        )
    grad = tape.gradient(loss, logits).numpy()
    np.testing.assert_array_equal(grad[2, 0], np.zeros(4))
    np.testing.assert_array_equal(grad[:, 1], np.zeros((3, 4)))
    # Inside: softmax - one_hot.
    probs = np.exp(LOGITS[0, 0]) / np.exp(LOGITS[0, 0]).sum()
    np.testing.assert_allclose(grad[0, 0], probs - np.eye(4)[3], atol=1e-6)


def test_time_major_half_precision_logits_give_float32():
    result = losses.cross_entropy_sequence_loss(
        tf.constant(LOGITS, tf.float16), tf.constant(TARGETS, tf.int64), LENGTHS
    )
    assert result.dtype == tf.float32
    assert result.numpy()[1, 0] == pytest.approx(math.log(4.0), abs=1e-3)


def test_time_major_in_tf_function_with_unknown_shapes():
    spec = [
        tf.TensorSpec([None, None, None], tf.float32),
        tf.TensorSpec([None, None], tf.int32),
        tf.TensorSpec([None], tf.int32),
    ]
    fn = tf.function(losses.cross_entropy_sequence_loss, input_signature=spec)
    eager = losses.cross_entropy_sequence_loss(LOGITS, TARGETS, LENGTHS)
    np.testing.assert_array_equal(fn(LOGITS, TARGETS, LENGTHS), eager)


def _batch_major():
    return np.transpose(LOGITS, [1, 0, 2]), np.transpose(TARGETS)


def test_batch_major_equals_time_major():
    logits, targets = _batch_major()
    loss_sum, num_tokens = losses.sequence_loss_batch_major(logits, targets, LENGTHS)
    time_major = losses.cross_entropy_sequence_loss(LOGITS, TARGETS, LENGTHS)
    assert loss_sum.dtype == tf.float32 and num_tokens.dtype == tf.float32
    assert loss_sum.shape == () and num_tokens.shape == ()
    assert float(loss_sum) == pytest.approx(float(tf.reduce_sum(time_major)), 1e-6)
    assert float(num_tokens) == 2 + 0 + 3


def test_label_smoothing_zero_is_plain_cross_entropy():
    logits, targets = _batch_major()
    plain = losses.sequence_loss_batch_major(logits, targets, LENGTHS)
    smoothed = losses.sequence_loss_batch_major(
        logits, targets, LENGTHS, label_smoothing=0.0
    )
    assert float(plain[0]) == float(smoothed[0])
    time_major = losses.cross_entropy_sequence_loss(LOGITS, TARGETS, LENGTHS)
    assert float(plain[0]) == pytest.approx(float(tf.reduce_sum(time_major)), 1e-6)


def test_label_smoothing_hand_computed():
    # One sequence, V=2, logits [0, ln 3] -> p = [1/4, 3/4], target 1.
    # Second step is padding and must not count.
    logits = np.array([[[0.0, math.log(3.0)], [5.0, -5.0]]], np.float32)
    targets = np.array([[1, 1]], np.int32)
    eps = 0.1
    # (1 - eps) * -ln(3/4) + eps * mean(-ln(1/4), -ln(3/4))
    expected = 0.9 * -math.log(0.75) + 0.1 * 0.5 * (-math.log(0.25) - math.log(0.75))
    loss_sum, num_tokens = losses.sequence_loss_batch_major(
        logits, targets, [1], label_smoothing=eps
    )
    assert float(loss_sum) == pytest.approx(expected, abs=1e-6)
    assert float(num_tokens) == 1.0


def test_label_smoothing_gradient_zero_at_padding():
    logits = tf.Variable(np.transpose(LOGITS, [1, 0, 2]))
    with tf.GradientTape() as tape:
        loss_sum, _ = losses.sequence_loss_batch_major(
            logits, np.transpose(TARGETS), LENGTHS, label_smoothing=0.2
        )
    grad = tape.gradient(loss_sum, logits).numpy()
    np.testing.assert_array_equal(grad[0, 2], np.zeros(4))
    np.testing.assert_array_equal(grad[1], np.zeros((3, 4)))
    assert np.abs(grad[2]).sum() > 0


def test_label_smoothing_out_of_range_rejected():
    logits, targets = _batch_major()
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.sequence_loss_batch_major(logits, targets, LENGTHS, 1.0)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("row_multiple", [1, 4])
def test_projected_loss_equals_the_loss_over_all_positions(smoothing, row_multiple):
    """Projecting only the unpadded positions gives the loss, token count
    and gradients of projecting the whole [B, T] grid and masking after;
    rows added to reach a multiple of `row_multiple` change nothing."""
    rng = np.random.default_rng(3)
    batch, time, depth, vocab = 4, 6, 5, 9
    features = tf.constant(rng.normal(size=(batch, time, depth)), tf.float32)
    kernel = tf.Variable(rng.normal(size=(depth, vocab)), dtype=tf.float32)
    # Padding ids out of range must not matter.
    targets = tf.constant(rng.integers(0, vocab + 3, size=(batch, time)), tf.int32)
    lengths = tf.constant([6, 0, 3, 1])
    targets = tf.where(tf.sequence_mask(lengths, time), targets % vocab, targets)

    rows_seen = []

    def project(x):
        if x.shape.rank == 2:
            rows_seen.append(x.shape[0])
            return tf.linalg.matmul(x, kernel)
        return x @ kernel

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(features)
        full = losses.sequence_loss_batch_major(
            project(features), targets, lengths, label_smoothing=smoothing
        )
        projected = losses.projected_sequence_loss(
            features,
            project,
            targets,
            lengths,
            label_smoothing=smoothing,
            row_multiple=row_multiple,
        )
    # 10 unpadded positions, rounded up to a multiple.
    assert rows_seen == [10 if row_multiple == 1 else 12]
    np.testing.assert_allclose(projected[0], full[0], rtol=1e-6)
    assert projected[1].numpy() == full[1].numpy() == 10.0
    assert projected[0].dtype == projected[1].dtype == tf.float32
    for source in (features, kernel):
        np.testing.assert_allclose(
            tape.gradient(projected[0], source),
            tape.gradient(full[0], source),
            rtol=1e-5,
            atol=1e-6,
        )
    # Padded positions get exactly zero gradient.
    grad = tape.gradient(projected[0], features).numpy()
    assert np.all(grad[1] == 0.0) and np.all(grad[2, 3:] == 0.0)


@pytest.mark.parametrize("row_multiple", [1, 16])
def test_projected_loss_of_an_empty_batch_is_zero(row_multiple):
    features = tf.zeros([2, 3, 4])
    loss_sum, num_tokens = losses.projected_sequence_loss(
        features,
        lambda x: tf.linalg.matmul(x, tf.ones([4, 5])),
        tf.zeros([2, 3], tf.int32),
        tf.constant([0, 0]),
        row_multiple=row_multiple,
    )
    assert loss_sum.numpy() == 0.0 and num_tokens.numpy() == 0.0


def _reference_token_losses(logits, labels, smoothing):
    """Smoothed cross-entropy through `log_softmax` and autodiff."""
    log_probs = tf.nn.log_softmax(logits)
    nll = -tf.gather(log_probs, labels, batch_dims=1)
    return (1.0 - smoothing) * nll - smoothing * tf.reduce_mean(log_probs, -1)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_softmax_cross_entropy_matches_log_softmax_values_and_gradients(smoothing):
    """Values and weighted gradients equal those of the log-softmax formula
    (and of TensorFlow's sparse cross-entropy without smoothing), inside a
    `tf.function` whose row count is dynamic."""
    rng = np.random.default_rng(5)
    logits = tf.constant(rng.normal(scale=3.0, size=(7, 11)), tf.float32)
    labels = tf.constant(rng.integers(0, 11, size=7), tf.int32)
    weights = tf.constant(rng.uniform(0.0, 2.0, size=7), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, 11], tf.float32)])
    def fast(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            values = losses.softmax_cross_entropy(x, labels, smoothing)
            total = tf.reduce_sum(values * weights)
        return values, tape.gradient(total, x)

    with tf.GradientTape() as tape:
        tape.watch(logits)
        expected = _reference_token_losses(logits, labels, smoothing)
        expected_grad = tape.gradient(tf.reduce_sum(expected * weights), logits)
    values, grad = fast(logits)
    assert values.shape == (7,) and grad.shape == (7, 11)
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, atol=1e-6)
    if not smoothing:
        sparse = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        np.testing.assert_allclose(values, sparse, rtol=1e-6, atol=1e-6)
    # Each gradient row sums to zero: p sums to 1, and so does the target.
    np.testing.assert_allclose(tf.reduce_sum(grad, -1), 0.0, atol=1e-6)


def test_softmax_cross_entropy_of_an_underflowing_target_is_exact():
    """A target probability below float32's range (here e^-200) does not
    give an infinite loss: the row's log-normaliser is then computed with
    a log-sum-exp; the gradient is p - one_hot as usual."""
    logits = tf.constant([[200.0, 0.0, 1.0], [0.0, 1.0, 2.0]])
    labels = tf.constant([1, 2])
    with tf.GradientTape() as tape:
        tape.watch(logits)
        values = losses.softmax_cross_entropy(logits, labels)
        total = tf.reduce_sum(values)
    grad = tape.gradient(total, logits).numpy()
    assert values.numpy()[0] == pytest.approx(_ce([200.0, 0.0, 1.0], 1), rel=1e-6)
    assert values.numpy()[0] == pytest.approx(200.0, abs=1e-3)
    assert values.numpy()[1] == pytest.approx(_ce([0.0, 1.0, 2.0], 2), abs=1e-6)
    np.testing.assert_allclose(grad[0], [1.0, -1.0, 0.0], atol=1e-6)
    assert np.all(np.isfinite(grad))


def test_softmax_cross_entropy_of_no_rows_is_empty():
    values = losses.softmax_cross_entropy(tf.zeros([0, 4]), tf.zeros([0], tf.int32))
    assert values.shape == (0,)


@pytest.mark.parametrize("compiled", [False, True])
def test_softmax_cross_entropy_gradient_can_be_taken_twice(compiled):
    """The gradient writes into a tensor of its own, never into the saved
    softmax: a persistent tape gives the same gradient twice."""
    logits = tf.constant(np.random.default_rng(2).normal(size=(4, 6)), tf.float32)
    labels = tf.constant([1, 2, 3, 0])

    def twice(x):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            total = tf.reduce_sum(losses.softmax_cross_entropy(x, labels))
        return tape.gradient(total, x), tape.gradient(total, x)

    first, second = (tf.function(twice) if compiled else twice)(logits)
    np.testing.assert_array_equal(first, second)
    expected = tf.nn.softmax(logits) - tf.one_hot(labels, 6)
    np.testing.assert_allclose(first, expected, atol=1e-6)


def _linear_case(rows, smoothing, with_bias, seed=11, depth=6, vocab=13):
    rng = np.random.default_rng(seed)
    features = tf.constant(rng.normal(size=(rows, depth)), tf.float32)
    kernel = tf.Variable(rng.normal(size=(depth, vocab)) * 0.5, dtype=tf.float32)
    bias = tf.Variable(rng.normal(size=(vocab,)), dtype=tf.float32)
    labels = tf.constant(rng.integers(0, vocab, size=rows), tf.int32)
    return features, kernel, bias if with_bias else None, labels


@pytest.mark.parametrize(
    "rows, chunk_rows", [(7, 512), (12, 4), (13, 4), (3, 4), (0, 4), (1, 1)]
)
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("compiled", [False, True])
def test_linear_cross_entropy_sum_matches_the_unfused_loss(
    rows, chunk_rows, smoothing, with_bias, compiled
):
    """One chunk, whole chunks, a partial last chunk, fewer rows than a
    chunk and no rows: the same sum and the same gradients of the rows,
    the kernel and the bias as the product followed by the loss, scaled by
    whatever comes after the sum."""
    features, kernel, bias, labels = _linear_case(rows, smoothing, with_bias)

    def unfused():
        logits = features @ kernel + (0.0 if bias is None else bias)
        return tf.reduce_sum(losses.softmax_cross_entropy(logits, labels, smoothing))

    def fused():
        return losses.linear_cross_entropy_sum(
            features,
            tf.convert_to_tensor(kernel),
            None if bias is None else tf.convert_to_tensor(bias),
            labels,
            smoothing,
            chunk_rows=chunk_rows,
        )

    if compiled:
        fused = tf.function(fused)
    sources = [features, kernel] + ([] if bias is None else [bias])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(features)
        expected = 2.5 * unfused()
        got = 2.5 * fused()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    for source in sources:
        want = tape.gradient(expected, source)
        have = tape.gradient(got, source)
        np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6)
    if rows:
        # Hand check of one row's loss.
        logits = (features @ kernel).numpy()[0]
        if bias is not None:
            logits = logits + bias.numpy()
        by_hand = _ce(logits, int(labels[0]))
        single = losses.linear_cross_entropy_sum(
            features[:1],
            tf.convert_to_tensor(kernel),
            None if bias is None else tf.convert_to_tensor(bias),
            labels[:1],
        )
        np.testing.assert_allclose(single, by_hand, rtol=1e-5)


@pytest.mark.parametrize(
    "smoothing, training_dtype",
    [(0.0, None), (0.1, None), (0.0, "bfloat16"), (0.1, "bfloat16")],
)
def test_projected_loss_with_the_output_layer_fused_equals_the_unfused(
    smoothing, training_dtype
):
    """`output_layer`: `project_fn` gives the layer's inputs and the loss
    takes the layer's product itself, with the same loss, count and
    gradients (the layer's variables included) as projecting through it,
    its training product in bfloat16 too (then up to bfloat16's rounding
    of the gradient products, summed in another order)."""
    from seq2seq.layers.output_projection import OutputProjection

    rng = np.random.default_rng(5)
    batch, time, depth, hidden, vocab = 3, 5, 4, 6, 11
    features = tf.constant(rng.normal(size=(batch, time, depth)), tf.float32)
    mix = tf.Variable(rng.normal(size=(depth, hidden)), dtype=tf.float32)
    layer = OutputProjection(vocab, training_dtype=training_dtype)
    targets = tf.constant(rng.integers(0, vocab, size=(batch, time)), tf.int32)
    lengths = tf.constant([5, 2, 0])
    multiple = layer.row_multiple(training=True)
    assert multiple == (1 if training_dtype is None else 16)

    def hidden_fn(x):
        return tf.tanh(tf.linalg.matmul(x, mix))

    def fused_loss():
        return losses.projected_sequence_loss(
            features,
            hidden_fn,
            targets,
            lengths,
            smoothing,
            row_multiple=multiple,
            output_layer=layer,
        )

    assert layer.is_affine(training=True)
    assert layer.product_dtype(training=True) == training_dtype
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(features)
        fused = fused_loss()
        unfused = losses.projected_sequence_loss(
            features,
            lambda x: layer(hidden_fn(x), training=True),
            targets,
            lengths,
            smoothing,
            row_multiple=multiple,
        )
    assert fused[1].numpy() == unfused[1].numpy() == 7.0
    np.testing.assert_allclose(fused[0], unfused[0], rtol=1e-6)
    # Traced for XLA the loss is unchunked, in the layer's training dtype.
    with xla_tracing():
        compiled = fused_loss()
    np.testing.assert_allclose(compiled[0], unfused[0], rtol=1e-6)
    tolerance = 1e-5 if training_dtype is None else 1e-2
    for source in [features, mix] + layer.trainable_variables:
        np.testing.assert_allclose(
            tape.gradient(fused[0], source),
            tape.gradient(unfused[0], source),
            rtol=tolerance,
            atol=tolerance / 10,
        )


def test_a_linear_output_layer_is_fused_in_its_training_product_dtype():
    from seq2seq.layers.output_projection import OutputProjection

    plain = OutputProjection(5, training_dtype=None)
    assert plain.is_affine(training=True) and plain.product_dtype(True) is None
    low = OutputProjection(5, training_dtype="bfloat16")
    assert low.is_affine(training=True) and low.is_affine(training=False)
    assert low.product_dtype(training=True) == "bfloat16"
    assert low.product_dtype(training=False) is None
    assert not OutputProjection(5, training_dtype=None, activation="softmax").is_affine(
        training=False
    )


def _ancestors(op):
    """Every op that `op` waits for, through data and control inputs."""
    seen, stack = set(), [op]
    while stack:
        current = stack.pop()
        for parent in [t.op for t in current.inputs] + list(current.control_inputs):
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


@pytest.mark.parametrize("row_multiple", [1, 16])
def test_linear_cross_entropy_sum_takes_its_first_chunk_in_two_halves(row_multiple):
    """The first chunk's rows go through two forward products (and their
    softmaxes and gradients) of which neither waits for the other, so that
    the executor can run them on two cores at once; they cover every row."""
    depth, vocab = 6, 13

    def loss(rows, kernel, bias, labels):
        return losses.linear_cross_entropy_sum(
            rows, kernel, bias, labels, row_multiple=row_multiple
        )

    graph = (
        tf.function(loss)
        .get_concrete_function(
            tf.TensorSpec([None, depth], tf.float32),
            tf.TensorSpec([depth, vocab], tf.float32),
            tf.TensorSpec([vocab], tf.float32),
            tf.TensorSpec([None], tf.int32),
        )
        .graph
    )
    # The forward products [n, F] x [F, V]; the gradients' products
    # transpose one side. Later chunks live in the while loop's own graph.
    forward = [
        op
        for op in graph.get_operations()
        if op.type == "MatMul"
        and not op.get_attr("transpose_a")
        and not op.get_attr("transpose_b")
    ]
    assert len(forward) == 2
    first, second = forward
    assert first not in _ancestors(second) and second not in _ancestors(first)
    # Both halves together give the whole chunk's sum (hand-checked rows).
    features, kernel, bias, labels = _linear_case(9, 0.0, True)
    logits = (features @ kernel + bias).numpy()
    by_hand = sum(_ce(logits[i], int(labels[i])) for i in range(9))
    np.testing.assert_allclose(
        loss(
            features, tf.convert_to_tensor(kernel), tf.convert_to_tensor(bias), labels
        ),
        by_hand,
        rtol=1e-5,
    )


@pytest.mark.parametrize("rows", [0, 5, 12, 13])
@pytest.mark.parametrize("row_multiple", [4, 16])
def test_linear_cross_entropy_sum_pads_its_products_rows(
    rows, row_multiple, monkeypatch
):
    """`row_multiple` (a divisor of `chunk_rows`): every product sees a
    multiple of it rows (zero rows added), and the loss and the gradients
    are those without padding."""
    features, kernel, bias, labels = _linear_case(rows, 0.2, True)
    sources = [features, kernel, bias]

    def loss_and_grads(**kwargs):
        with tf.GradientTape() as tape:
            tape.watch(features)
            loss = 1.5 * losses.linear_cross_entropy_sum(
                features,
                kernel,
                bias,
                labels,
                0.2,
                chunk_rows=2 * row_multiple,
                **kwargs,
            )
        return loss, tape.gradient(loss, sources)

    want_loss, want_grads = loss_and_grads()
    seen = []
    matmul = tf.matmul

    def spy(a, b, **kwargs):
        seen.append(a.shape[0])  # the rows, whether transposed or not
        return matmul(a, b, **kwargs)

    monkeypatch.setattr(tf, "matmul", spy)
    got_loss, got_grads = loss_and_grads(row_multiple=row_multiple)
    monkeypatch.undo()
    padded = -(-rows // row_multiple) * row_multiple
    assert seen and all(n % row_multiple == 0 for n in seen)
    assert sum(seen) == 3 * padded  # each row in one chunk's three products
    np.testing.assert_allclose(got_loss, want_loss, rtol=1e-6)
    assert got_grads[0].shape == (rows, 6)
    for got, want in zip(got_grads, want_grads):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_linear_cross_entropy_sum_in_bfloat16_rounds_the_products():
    """`product_dtype="bfloat16"`: the loss is that of logits from the
    bfloat16 product of the bfloat16-rounded rows and kernel, and the
    gradients are within bfloat16's rounding of float32's."""
    features, kernel, bias, labels = _linear_case(40, 0.0, True, depth=16, vocab=50)
    sources = [features, kernel, bias]

    def loss_and_grads(dtype):
        with tf.GradientTape() as tape:
            tape.watch(features)
            loss = losses.linear_cross_entropy_sum(
                features, kernel, bias, labels, chunk_rows=16, product_dtype=dtype
            )
        return loss, tape.gradient(loss, sources)

    low_loss, low_grads = loss_and_grads("bfloat16")
    f32_loss, f32_grads = loss_and_grads(None)

    # TensorFlow's own bfloat16 product of the rounded operands: where the
    # CPU has bfloat16 dot products it is the float32 product rounded once;
    # on a CPU with AVX2 only it differs from that in about half the entries
    # here, by up to 0.75%.
    product = tf.matmul(tf.cast(features, tf.bfloat16), tf.cast(kernel, tf.bfloat16))
    logits = tf.cast(product, tf.float32) + bias
    by_hand = sum(_ce(row, int(label)) for row, label in zip(logits.numpy(), labels))
    np.testing.assert_allclose(low_loss, by_hand, rtol=1e-5)
    assert abs(float(low_loss) - float(f32_loss)) > 1e-4  # it did round
    for low, full in zip(low_grads, f32_grads):
        np.testing.assert_allclose(low, full, rtol=0.05, atol=0.02)
