"""Tests for the RNN decoders (seq2seq.decoders)."""

import collections

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import random_ops_in_loop_bodies

import seq2seq.decoders
from seq2seq.configurable import locate_class
from seq2seq.decoders import (
    AttentionDecoder,
    AttentionLayerDot,
    BasicDecoder,
    RNNDecoder,
)
from seq2seq.errors import ConfigError
from seq2seq.rnn import default_rnn_cell_params

# Same fields as seq2seq.encoders.encoder.EncoderOutput.
EncoderOutput = collections.namedtuple(
    "EncoderOutput",
    ["outputs", "final_state", "attention_values", "attention_values_length"],
)

BATCH, SRC_LEN, SRC_DEPTH, VALUE_DEPTH, EMBED, VOCAB, TGT_LEN = 3, 5, 6, 4, 5, 11, 4


def _cell_params(cell_class="GRUCell", units=8, layers=1):
    return {
        "rnn_cell": {
            "cell_class": cell_class,
            "cell_params": {"num_units": units},
            "num_layers": layers,
        }
    }


def _encoder_output(seed=0):
    rng = np.random.default_rng(seed)
    return EncoderOutput(
        outputs=tf.constant(rng.normal(size=(BATCH, SRC_LEN, SRC_DEPTH)), tf.float32),
        final_state=None,
        attention_values=tf.constant(
            rng.normal(size=(BATCH, SRC_LEN, VALUE_DEPTH)), tf.float32
        ),
        attention_values_length=tf.constant([5, 2, 3]),
    )


def _basic(cell_class="GRUCell", layers=1, mode="train", **params):
    params = {**_cell_params(cell_class, layers=layers), **params}
    return BasicDecoder(params, mode, VOCAB)


def _attention(
    cell_class="GRUCell", layers=1, mode="train", attention_params=None, **params
):
    params = {**_cell_params(cell_class, layers=layers), **params}
    attention = AttentionLayerDot({"num_units": 7, **(attention_params or {})}, mode)
    return AttentionDecoder(params, mode, VOCAB, attention_layer=attention)


DECODERS = [
    pytest.param(lambda: _basic("GRUCell"), id="basic-gru"),
    pytest.param(lambda: _basic("LSTMCell", layers=2), id="basic-lstm2"),
    pytest.param(lambda: _attention("GRUCell"), id="attention-gru"),
    pytest.param(lambda: _attention("LSTMCell", layers=2), id="attention-lstm2"),
    # A cell FusedRecurrence does not run: the cell itself is stepped.
    pytest.param(lambda: _attention("BasicRNNCell"), id="attention-simple"),
    pytest.param(
        lambda: _attention("GRUCell", input_feeding=False), id="attention-gru-no-feed"
    ),
    pytest.param(
        lambda: _attention("LSTMCell", layers=2, input_feeding=False),
        id="attention-lstm2-no-feed",
    ),
    pytest.param(
        lambda: _attention("BasicRNNCell", input_feeding=False),
        id="attention-simple-no-feed",
    ),
    pytest.param(
        lambda: _attention("GRUCell", input_feeding_vector="attentional"),
        id="attention-gru-feed-attentional",
    ),
    pytest.param(
        lambda: _attention("LSTMCell", layers=2, input_feeding_vector="attentional"),
        id="attention-lstm2-feed-attentional",
    ),
    pytest.param(
        lambda: _attention("BasicRNNCell", input_feeding_vector="attentional"),
        id="attention-simple-feed-attentional",
    ),
    # Luong's general score: the cell output (8 units) scored as it comes.
    pytest.param(
        lambda: _attention(
            "GRUCell",
            input_feeding_vector="attentional",
            attention_params={"num_units": 8, "project_query": False},
        ),
        id="attention-gru-unprojected-query",
    ),
    pytest.param(
        lambda: _attention(
            "GRUCell",
            input_feeding=False,
            attention_params={"num_units": 8, "project_query": False},
        ),
        id="attention-gru-no-feed-unprojected-query",
    ),
]


def _inputs(seed=1, length=TGT_LEN):
    return tf.random.stateless_normal([BATCH, length, EMBED], seed=[seed, 0])


def _random_cell_state(decoder, seed=2):
    return tf.nest.map_structure(
        lambda size: tf.random.stateless_normal([BATCH, size], seed=[seed, size]),
        decoder.cell_state_size,
    )


def test_default_params_match_the_original():
    params = RNNDecoder.default_params()
    assert params["max_decode_length"] == 100
    assert params["init_scale"] == 0.04
    assert params["rnn_cell"] == default_rnn_cell_params()
    assert AttentionDecoder.default_params() == dict(
        params,
        input_feeding=True,
        input_feeding_vector="context",
        attentional_keep_prob=1.0,
    )
    decoder = BasicDecoder({}, "infer", VOCAB)
    assert decoder.max_decode_length == 100
    assert decoder.name == "basic_decoder"
    assert _basic(max_decode_length=7).max_decode_length == 7


def test_unknown_param_is_an_error():
    with pytest.raises(ConfigError, match="max_decode_length"):
        BasicDecoder({"max_decode_len": 3}, "train", VOCAB)


def test_exports_and_dotted_names():
    assert seq2seq.decoders.AttentionDecoder is AttentionDecoder
    assert seq2seq.decoders.attention.AttentionLayerDot is AttentionLayerDot
    assert locate_class("seq2seq.decoders.AttentionDecoder") is AttentionDecoder
    assert locate_class("BasicDecoder", ["seq2seq.decoders"]) is BasicDecoder


@pytest.mark.parametrize("make", DECODERS)
def test_teacher_forced_call_equals_stepping(make):
    decoder = make()
    memory = decoder.prepare_memory(_encoder_output())
    state = decoder.initial_state(memory, _random_cell_state(decoder))
    inputs = _inputs()
    logits, attention = decoder(inputs, state, memory, training=False)
    assert logits.shape == (BATCH, TGT_LEN, VOCAB)
    assert logits.dtype == tf.float32

    stepped_logits, stepped_attention = [], []
    for time in range(TGT_LEN):
        step_logits, state, step_attention = decoder.step(
            inputs[:, time], state, memory, training=False
        )
        assert step_logits.shape == (BATCH, VOCAB)
        stepped_logits.append(step_logits)
        stepped_attention.append(step_attention)
    np.testing.assert_allclose(
        np.stack(stepped_logits, axis=1), logits.numpy(), rtol=1e-5, atol=1e-6
    )
    if decoder.has_attention:
        assert attention.shape == (BATCH, TGT_LEN, SRC_LEN)
        np.testing.assert_allclose(
            np.stack(stepped_attention, axis=1), attention.numpy(), atol=1e-6
        )
    else:
        assert attention is None
        assert all(a is None for a in stepped_attention)


def test_attention_rows_sum_to_one_over_valid_positions():
    decoder = _attention()
    memory = decoder.prepare_memory(_encoder_output())
    _, attention = decoder(_inputs(), decoder.initial_state(memory), memory)
    attention = attention.numpy()
    for row, valid in enumerate([5, 2, 3]):
        np.testing.assert_array_equal(attention[row, :, valid:], 0.0)
        np.testing.assert_allclose(attention[row, :, :valid].sum(-1), 1.0, rtol=1e-5)


def test_call_compiles_with_dynamic_length():
    decoder = _attention("LSTMCell")
    encoder_output = _encoder_output()

    @tf.function(
        input_signature=[tf.TensorSpec([None, None, EMBED], tf.float32)],
        reduce_retracing=True,
    )
    def run(inputs):
        memory = decoder.prepare_memory(encoder_output)
        return decoder(inputs, decoder.initial_state(memory), memory)

    run(_inputs(length=2))  # creates the variables (a trace of its own)
    tracing_count = run.experimental_get_tracing_count()
    for length in (1, 3, 6):
        logits, attention = run(_inputs(length=length))
        assert logits.shape == (BATCH, length, VOCAB)
        assert attention.shape == (BATCH, length, SRC_LEN)
    assert run.experimental_get_tracing_count() == tracing_count
    # Eager and compiled calls agree.
    memory = decoder.prepare_memory(encoder_output)
    eager_logits, _ = decoder(_inputs(length=6), decoder.initial_state(memory), memory)
    np.testing.assert_allclose(eager_logits.numpy(), logits.numpy(), atol=1e-6)


def test_keys_are_projected_once():
    decoder = _attention()
    calls = []
    original = decoder.attention.project_keys

    def counting(keys):
        calls.append(keys.shape)
        return original(keys)

    decoder.attention.project_keys = counting
    memory = decoder.prepare_memory(_encoder_output())
    assert calls == [(BATCH, SRC_LEN, SRC_DEPTH)]
    assert memory["keys"].shape == (BATCH, SRC_LEN, 7)
    assert memory["values"].shape == (BATCH, SRC_LEN, VALUE_DEPTH)
    np.testing.assert_array_equal(memory["lengths"].numpy(), [5, 2, 3])
    state = decoder.initial_state(memory)
    decoder(_inputs(), state, memory)
    for _ in range(3):
        _, state, _ = decoder.step(_inputs()[:, 0], state, memory)
    assert len(calls) == 1


def test_state_conventions():
    decoder = _attention("LSTMCell", layers=2)
    assert decoder.cell_state_size == [[8, 8], [8, 8]]
    memory = decoder.prepare_memory(_encoder_output())
    zero = decoder.initial_state(memory)
    assert sorted(zero) == ["cell", "context"]
    assert zero["context"].shape == (BATCH, VALUE_DEPTH)
    assert [[t.shape for t in layer] for layer in zero["cell"]] == [
        [(BATCH, 8), (BATCH, 8)]
    ] * 2
    assert all(not np.any(t.numpy()) for t in tf.nest.flatten(zero))
    # A bridge may hand over tuples; the state is repacked like state_size.
    given = tuple(tuple(layer) for layer in _random_cell_state(decoder))
    state = decoder.initial_state(memory, given)
    assert isinstance(state["cell"], list) and isinstance(state["cell"][0], list)
    np.testing.assert_array_equal(state["cell"][1][0].numpy(), given[1][0].numpy())
    _, new_state, _ = decoder.step(_inputs()[:, 0], state, memory)
    tf.nest.assert_same_structure(state, new_state)
    # A scalar second argument is a batch size.
    assert decoder.initial_state(memory, 2)["context"].shape == (2, VALUE_DEPTH)

    basic = _basic("GRUCell")
    basic_memory = basic.prepare_memory(_encoder_output())
    basic_state = basic.initial_state(basic_memory)
    assert list(basic_state) == ["cell"]
    assert basic.cell_state_size == [[8]]
    assert [[t.shape for t in layer] for layer in basic_state["cell"]] == [[(BATCH, 8)]]


def test_init_scale_bounds_output_layer_weights():
    decoder = _attention(init_scale=0.01)
    memory = decoder.prepare_memory(_encoder_output())
    decoder(_inputs(), decoder.initial_state(memory), memory)
    for layer in (decoder.mix_layer, decoder.logits_layer):
        kernel = layer.kernel.numpy()
        assert np.abs(kernel).max() <= 0.01
        assert np.abs(kernel).max() > 0
        np.testing.assert_array_equal(layer.bias.numpy(), 0.0)
    assert decoder.mix_layer.kernel.shape == (8 + VALUE_DEPTH, 8)
    cell_kernels = [w for w in decoder.cell.weights if "kernel" in w.path]
    assert len(cell_kernels) == 2
    for kernel in cell_kernels:
        assert np.abs(kernel.numpy()).max() <= 0.01


def test_custom_cell_and_gradients():
    cell = keras.layers.LSTMCell(6)
    decoder = AttentionDecoder(
        {},
        "train",
        VOCAB,
        attention_layer=AttentionLayerDot({"num_units": 3}, "train"),
        cell=cell,
    )
    assert decoder.cell is cell
    memory_source = _encoder_output()
    with tf.GradientTape() as tape:
        memory = decoder.prepare_memory(memory_source)
        logits, _ = decoder(_inputs(), decoder.initial_state(memory), memory)
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(
                tf.zeros([BATCH, TGT_LEN], tf.int32), logits
            )
        )
    weights = decoder.trainable_weights
    # cell (3) + attention query/key projections (4) + mix (2) + logits (2)
    assert len(weights) == 11
    grads = tape.gradient(loss, weights)
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)


def test_default_attention_layer_is_bahdanau_128():
    decoder = AttentionDecoder(_cell_params(), "infer", VOCAB)
    assert type(decoder.attention).__name__ == "AttentionLayerBahdanau"
    assert decoder.attention.num_units == 128


def test_training_flag_reaches_the_cell_dropout():
    decoder = _attention(
        rnn_cell={**_cell_params()["rnn_cell"], "dropout_input_keep_prob": 0.5}
    )
    memory = decoder.prepare_memory(_encoder_output())
    state = decoder.initial_state(memory, _random_cell_state(decoder))
    quiet = [decoder(_inputs(), state, memory, training=False)[0] for _ in range(2)]
    np.testing.assert_array_equal(quiet[0].numpy(), quiet[1].numpy())
    noisy = decoder(_inputs(), state, memory, training=True)[0]
    assert not np.allclose(noisy.numpy(), quiet[0].numpy())


_DROPOUT = {"dropout_input_keep_prob": 0.5, "dropout_output_keep_prob": 0.5}


def _stepped_cell(cell_class="GRUCell", layers=1, **extra):
    """The `rnn_cell` params of `_cell_params` with dropout 0.5 on every
    layer input and output."""
    return {
        "rnn_cell": {
            **_cell_params(cell_class, layers=layers)["rnn_cell"],
            **_DROPOUT,
            **extra,
        }
    }


@pytest.mark.parametrize("feed", ["context", "attentional"])
def test_input_feeding_draws_its_dropout_masks_before_the_loop(feed):
    """The teacher-forced input-feeding loop holds no random op: its steps'
    dropout masks (fed vector, layer inputs and outputs) are drawn before
    it, so a seed fixes them whatever order the iterations run in."""
    decoder = _attention(**_stepped_cell(layers=2), input_feeding_vector=feed)
    memory = decoder.prepare_memory(_encoder_output())
    state = decoder.initial_state(memory, _random_cell_state(decoder))
    decoder(_inputs(), state, memory, training=True)  # builds

    @tf.function
    def features():
        return decoder(_inputs(), state, memory, training=True)[0]

    inside, outside = random_ops_in_loop_bodies(features)
    assert inside == 0
    # Embeddings (whole sequence), fed vector, second layer input, two
    # layer outputs.
    assert outside == 5
    # Each call draws new masks, and dropout does apply.
    first = features().numpy()
    assert not np.allclose(features().numpy(), first)
    quiet = decoder(_inputs(), state, memory, training=False)[0].numpy()
    assert not np.allclose(first, quiet)


@pytest.mark.parametrize(
    "make, sampled",
    [
        # Cells FusedRecurrence does not run: the decoders step the cell.
        (lambda: _basic(**_stepped_cell("BasicRNNCell")), False),
        (lambda: _attention(**_stepped_cell("BasicRNNCell")), False),
        (
            lambda: _attention(
                input_feeding=False,
                **_stepped_cell("LSTMCell", 2, residual_connections=True),
            ),
            False,
        ),
        # Scheduled sampling steps even a fusable cell.
        (
            lambda: _attention(
                **_stepped_cell(), **{"scheduled_sampling.type": "constant"}
            ),
            True,
        ),
    ],
    ids=["basic-simple", "attention-simple", "attention-residual-no-feed", "sampled"],
)
def test_stepped_cells_draw_no_stateful_random_op_in_their_loops(make, sampled):
    """Where a decoder steps its cell in a loop, the cell's dropout draws
    stateless masks keyed by a seed drawn before the loop, so that a seed
    fixes them whatever order the iterations run in."""
    decoder = make()
    memory = decoder.prepare_memory(_encoder_output())
    state = decoder.initial_state(memory, _random_cell_state(decoder))
    table = tf.random.stateless_normal([VOCAB, EMBED], seed=[4, 0])
    extra = {}
    if sampled:
        extra = {
            "sampling_probability": 0.5,
            "embedding_fn": lambda ids: tf.nn.embedding_lookup(table, ids),
            "seed": tf.constant([1, 2]),
        }
    decoder(_inputs(), state, memory, training=True, **extra)  # builds

    @tf.function
    def logits():
        return decoder(_inputs(), state, memory, training=True, **extra)[0]

    inside, outside = random_ops_in_loop_bodies(logits)
    assert inside == 0 and outside >= 1
    first = logits().numpy()
    assert not np.allclose(logits().numpy(), first)
    quiet = decoder(_inputs(), state, memory, training=False, **extra)[0].numpy()
    assert not np.allclose(first, quiet)


def test_teacher_forcing_compiles_with_xla():
    decoder = _attention("LSTMCell")
    encoder_output = _encoder_output()

    def loss_and_grads(inputs):
        with tf.GradientTape() as tape:
            memory = decoder.prepare_memory(encoder_output)
            logits, _ = decoder(inputs, decoder.initial_state(memory), memory)
            loss = tf.reduce_mean(tf.square(logits))
        return loss, tape.gradient(loss, decoder.trainable_weights)

    loss, grads = loss_and_grads(_inputs())  # builds the variables
    xla_loss, xla_grads = tf.function(loss_and_grads, jit_compile=True)(_inputs())
    np.testing.assert_allclose(xla_loss.numpy(), loss.numpy(), rtol=1e-4)
    for grad, xla_grad in zip(grads, xla_grads):
        np.testing.assert_allclose(xla_grad.numpy(), grad.numpy(), rtol=1e-3, atol=1e-6)


def test_without_input_feeding_the_context_is_not_fed_back():
    decoder = _attention(input_feeding=False)
    memory = decoder.prepare_memory(_encoder_output())
    state = decoder.initial_state(memory, _random_cell_state(decoder))
    assert set(state) == {"cell"}
    inputs = _inputs()
    features, _ = decoder.teacher_forced_features(inputs, state, memory)
    assert decoder.cell.cells[0].cell.kernel.shape[0] == EMBED
    # The cell reads only the embeddings: the first 8 features (the cell
    # output) are those of the bare cell run over the inputs.
    cell_state = state["cell"]
    for time in range(TGT_LEN):
        output, cell_state = decoder.cell(inputs[:, time], cell_state)
        np.testing.assert_allclose(features[:, time, :8], output, atol=1e-6)
    # Two steps against different memories: the cell states stay equal.
    other = decoder.prepare_memory(_encoder_output(seed=5))
    state_a, state_b = state, state
    for time in range(2):
        _, state_a, _ = decoder.step(inputs[:, time], state_a, memory)
        _, state_b, _ = decoder.step(inputs[:, time], state_b, other)
    np.testing.assert_allclose(
        tf.nest.flatten(state_a)[0], tf.nest.flatten(state_b)[0], atol=1e-7
    )


def test_input_feeding_changes_the_next_step():
    decoder = _attention()
    memory = decoder.prepare_memory(_encoder_output())
    state = decoder.initial_state(memory, _random_cell_state(decoder))
    inputs = _inputs()
    _, first, _ = decoder.step(inputs[:, 0], state, memory)
    other = decoder.prepare_memory(_encoder_output(seed=5))
    _, first_other, _ = decoder.step(inputs[:, 0], state, other)
    # Same cell state after one step (the first context is zero) ...
    np.testing.assert_allclose(
        tf.nest.flatten(first["cell"])[0], tf.nest.flatten(first_other["cell"])[0]
    )
    # ... but a different one after two: the context went into the cell.
    _, second, _ = decoder.step(inputs[:, 1], first, memory)
    _, second_other, _ = decoder.step(inputs[:, 1], first_other, other)
    assert not np.allclose(
        tf.nest.flatten(second["cell"])[0], tf.nest.flatten(second_other["cell"])[0]
    )


def test_attentional_feeding_feeds_the_vector_the_logits_read():
    decoder = _attention(input_feeding_vector="attentional")
    memory = decoder.prepare_memory(_encoder_output())
    state = decoder.initial_state(memory, _random_cell_state(decoder))
    assert sorted(state) == ["attentional", "cell"]
    assert state["attentional"].shape == (BATCH, 8)
    assert not np.any(state["attentional"].numpy())
    inputs = _inputs()
    logits, first, _ = decoder.step(inputs[:, 0], state, memory)
    # By hand: the cell reads [x; 0], attends, and a = tanh(W [h; c] + b).
    h, _ = decoder.cell(
        tf.concat([inputs[:, 0], tf.zeros([BATCH, 8])], -1), state["cell"]
    )
    _, context = decoder._attend(h, memory)
    mix = decoder.mix_layer
    a = np.tanh(np.concatenate([h, context], -1) @ mix.kernel.numpy() + mix.bias)
    np.testing.assert_allclose(first["attentional"], a, rtol=1e-5, atol=1e-6)
    logits_layer = decoder.logits_layer
    want = a @ logits_layer.kernel.numpy() + logits_layer.bias.numpy()
    np.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-6)
    # The next step's cell reads [x; a].
    _, second, _ = decoder.step(inputs[:, 1], first, memory)
    h2, _ = decoder.cell(tf.concat([inputs[:, 1], a], -1), first["cell"])
    np.testing.assert_allclose(
        tf.nest.flatten(second["cell"])[0], h2, rtol=1e-5, atol=1e-6
    )
    assert decoder.cell.cells[0].cell.kernel.shape[0] == EMBED + 8
    assert decoder.mix_layer.kernel.shape == (8 + VALUE_DEPTH, 8)


def test_unprojected_query_of_another_size_is_a_config_error_when_built():
    with pytest.raises(ConfigError, match=r"num_units \(7\).*size \(8,.*num_units: 8"):
        _attention(attention_params={"project_query": False})


def test_unknown_input_feeding_vector_is_a_config_error():
    with pytest.raises(ConfigError, match="input_feeding_vector.*'context'.*'h'"):
        _attention(input_feeding_vector="h")


@pytest.mark.parametrize("feed", ["context", "attentional"])
def test_attentional_dropout_drops_only_what_the_logits_read(feed):
    keep = 0.5
    decoder = _attention(input_feeding_vector=feed, attentional_keep_prob=keep)
    memory = decoder.prepare_memory(_encoder_output())
    state = decoder.initial_state(memory, _random_cell_state(decoder))
    inputs = _inputs()
    quiet_logits, quiet_state, _ = decoder.step(inputs[:, 0], state, memory)
    tf.random.set_seed(3)
    logits, new_state, _ = decoder.step(inputs[:, 0], state, memory, training=True)
    # The recurrence and the fed-back vector are those without dropout.
    for got, want in zip(tf.nest.flatten(new_state), tf.nest.flatten(quiet_state)):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    # The logits read a dropped `a`: each unit is 0 or a / keep. W [8, 11]
    # has full row rank, so the dropped vector is recovered exactly.
    h, _ = decoder._run_cell(
        tf.concat([inputs[:, 0], tf.zeros_like(state[feed])], -1),
        state["cell"],
        training=False,
    )
    _, context = decoder._attend(h, memory)
    mix = decoder.mix_layer
    a = np.tanh(np.concatenate([h, context], -1) @ mix.kernel.numpy() + mix.bias)
    kernel = decoder.logits_layer.kernel.numpy()
    bias = decoder.logits_layer.bias.numpy()
    np.testing.assert_allclose(quiet_logits, a @ kernel + bias, rtol=1e-5, atol=1e-5)
    dropped = np.linalg.lstsq(kernel.T, (logits.numpy() - bias).T, rcond=None)[0].T
    zero = np.isclose(dropped, 0.0, atol=1e-4)
    np.testing.assert_allclose(dropped[~zero], a[~zero] / keep, rtol=1e-4, atol=1e-4)
    assert zero.any() and not zero.all()
    # Teacher forcing: same features, dropped logits only when training.
    features, _ = decoder.teacher_forced_features(inputs, state, memory)
    train_features, _ = decoder.teacher_forced_features(
        inputs, state, memory, training=True
    )
    np.testing.assert_array_equal(features.numpy(), train_features.numpy())
    quiet = decoder.project(features)
    np.testing.assert_array_equal(quiet.numpy(), decoder.project(features).numpy())
    assert not np.allclose(decoder.project(features, training=True), quiet)


def test_attentional_dropout_is_off_outside_train_mode():
    decoder = _attention(mode="eval", attentional_keep_prob=0.5)
    memory = decoder.prepare_memory(_encoder_output())
    state = decoder.initial_state(memory, _random_cell_state(decoder))
    features, _ = decoder.teacher_forced_features(_inputs(), state, memory)
    np.testing.assert_array_equal(
        decoder.project(features, training=True).numpy(),
        decoder.project(features).numpy(),
    )


@pytest.mark.parametrize("value", [0, -0.2, 1.5, "half"])
def test_bad_attentional_keep_prob_is_a_config_error(value):
    with pytest.raises(ConfigError, match=f"attentional_keep_prob.*{value}"):
        _attention(attentional_keep_prob=value)


@pytest.mark.parametrize(
    "params",
    [
        {"input_feeding": True},
        {"input_feeding": False},
        {"input_feeding_vector": "attentional"},
    ],
    ids=["context", "no-feed", "attentional"],
)
def test_hoisted_teacher_forcing_matches_the_cell_loop_with_gradients(params):
    """The FusedRecurrence path (hoisted input projection) gives the logits
    and gradients of stepping the Keras cell (the RNNDecoder loop)."""
    decoder = _attention("GRUCell", **params)
    memory = decoder.prepare_memory(_encoder_output())
    state = decoder.initial_state(memory, _random_cell_state(decoder))
    inputs = _inputs()
    decoder(inputs, state, memory)  # builds the variables
    assert decoder._fused_cell() is not None

    def loss_and_grads(fn):
        with tf.GradientTape() as tape:
            features, _ = fn()
            loss = tf.reduce_sum(decoder.project(features) ** 2)
        return loss, tape.gradient(loss, decoder.trainable_variables)

    fused = loss_and_grads(
        lambda: decoder.teacher_forced_features(inputs, state, memory)
    )
    stepped = loss_and_grads(
        lambda: decoder._features_loop(
            inputs,
            state,
            lambda x, s: decoder._step_features(x, s, memory, None),
        )
    )
    np.testing.assert_allclose(fused[0], stepped[0], rtol=1e-5)
    for got, want in zip(fused[1], stepped[1]):
        # The key projection ran in prepare_memory, outside the tape.
        assert (got is None) == (want is None)
        if got is not None:
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert sum(g is not None for g in fused[1]) >= 7


def test_no_input_feeding_with_scheduled_sampling_falls_back_to_stepping():
    decoder = _attention(
        input_feeding=False,
        **{
            "scheduled_sampling.type": "constant",
            "scheduled_sampling.probability": 0.5,
        },
    )
    memory = decoder.prepare_memory(_encoder_output())
    state = decoder.initial_state(memory)
    inputs = _inputs()
    table = tf.random.stateless_normal([VOCAB, EMBED], seed=[3, 0])

    def embed(ids):
        return tf.gather(table, ids)

    forced, _ = decoder(inputs, state, memory)
    zero, _ = decoder(
        inputs, state, memory, sampling_probability=0.0, embedding_fn=embed
    )
    np.testing.assert_allclose(zero, forced, rtol=1e-5, atol=1e-6)
    always, _ = decoder(
        inputs, state, memory, sampling_probability=1.0, embedding_fn=embed
    )
    # With probability 1 every input after the first is the model's argmax
    # or sample: step by step with those inputs reproduces the logits.
    assert always.shape == forced.shape
    np.testing.assert_allclose(always[:, 0], forced[:, 0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(always[:, 1:], forced[:, 1:])


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda mode: _basic("GRUCell", mode=mode), id="basic"),
        pytest.param(lambda mode: _attention("GRUCell", mode=mode), id="attention"),
        pytest.param(
            lambda mode: _attention(
                "GRUCell", mode=mode, input_feeding_vector="attentional"
            ),
            id="attention-attentional",
        ),
    ],
)
def test_fused_output_splits_project_at_the_logits_layer(make):
    """In training the output layers split into `hidden_fn` and the last,
    affine layer, whose composition is `project` (its product in bfloat16
    too); outside training there is nothing to fuse."""
    decoder = make("train")
    memory = decoder.prepare_memory(_encoder_output())
    state = decoder.initial_state(memory, _random_cell_state(decoder))
    features, _ = decoder.teacher_forced_features(_inputs(), state, memory)
    hidden_fn, layer = decoder.fused_output(training=True)
    assert layer is decoder.logits_layer
    np.testing.assert_allclose(
        layer(hidden_fn(features)),
        decoder.project(features, training=True),
        rtol=1e-6,
        atol=1e-6,
    )
    assert decoder.fused_output(training=False) is None
    assert make("eval").fused_output() is None
    decoder.logits_layer.training_dtype = "bfloat16"
    assert decoder.fused_output(training=True)[1] is decoder.logits_layer
    assert decoder.logits_layer.product_dtype(training=True) == "bfloat16"
