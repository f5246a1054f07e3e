"""cuDNN's fused RNN kernels for `FusedRecurrence.run`, on a GPU.

The only module of the package that touches Keras internals: it calls the
GRU and LSTM functions of Keras's TensorFlow backend
(`keras.src.backend.tensorflow.rnn`), the ones `keras.layers.GRU` and
`keras.layers.LSTM` run on a GPU. They are not public API; when they are
missing, `compatible` is False and every recurrence runs its own loop.

Whether a run may use the kernels at all is decided by the caller
(`FusedRecurrence(use_cudnn=...)`, from the cell's `use_cudnn` attribute):
code traced for XLA must not, since XLA has no cuDNN RNN kernel.
"""

import keras
import tensorflow as tf

from seq2seq.rnn.cells import apply_dropout, nested_lists

try:
    from keras.src.backend.tensorflow import rnn as _keras_tf_rnn
except ImportError:  # pragma: no cover - depends on the Keras version
    _keras_tf_rnn = None

__all__ = ["compatible", "run", "usable"]

_TANH = (keras.activations.tanh, keras.ops.tanh, tf.tanh, tf.math.tanh)
_SIGMOID = (keras.activations.sigmoid, keras.ops.sigmoid, tf.sigmoid, tf.math.sigmoid)


def _gpu_visible():
    """Whether TensorFlow sees a GPU (the cuDNN kernels run only there)."""
    return bool(tf.config.list_logical_devices("GPU"))


def compatible(cells):
    """Whether every cell has the math of a cuDNN kernel.

    Args:
      cells: `keras.layers.GRUCell`s and `keras.layers.LSTMCell`s, one per
        layer.

    Returns:
      True for LSTM cells and GRU cells with `reset_after` (cuDNN's GRU
      applies the reset gate after the recurrent product), all with a bias
      and tanh / sigmoid activations, when Keras provides the kernels.
    """
    if _keras_tf_rnn is None:
        return False
    for cell in cells:
        if not cell.use_bias:
            return False
        if cell.activation not in _TANH:
            return False
        if cell.recurrent_activation not in _SIGMOID:
            return False
        if isinstance(cell, keras.layers.GRUCell) and not cell.reset_after:
            return False
    return True


def usable(cells):
    """Whether `run` can take the kernels: a GPU is visible and the cells
    are `compatible`."""
    return _gpu_visible() and compatible(cells)


def run(recurrence, inputs, initial_state, training, mask):
    """`recurrence.run` with one cuDNN kernel call per layer.

    Dropout is drawn per element of the whole sequence, as the loop draws it
    per step. cuDNN rejects empty sequences, so those run for one step and
    get their zero outputs and initial state back after.

    Args:
      recurrence: A `FusedRecurrence` whose cells are `compatible`.
      inputs: [B, T, E] inputs.
      initial_state: The stack's state before the first step.
      training: Whether dropout is active.
      mask: Optional [B, T] bool mask of right-padded sequences.

    Returns:
      `(outputs [B, T, H], final_state)` as `recurrence.run`.

    Raises:
      NotImplementedError: Keras declined the configuration (the caller
        then runs the loop).
    """
    num_steps = tf.shape(inputs)[1]
    kernel_mask = lengths = None
    if mask is not None:
        mask = tf.cast(mask, tf.bool)
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        kernel_mask = tf.sequence_mask(tf.maximum(lengths, 1), maxlen=num_steps)
    states = tf.nest.map_structure(
        lambda t: tf.cast(t, recurrence.dtype), nested_lists(initial_state)
    )
    active = recurrence.dropout_active(training)
    outputs = tf.cast(recurrence.input_dropout(inputs, training), recurrence.dtype)
    final_states = []
    for index, (layer, state) in enumerate(zip(recurrence.layers, states)):
        if index > 0 and active and layer.input_keep_prob < 1.0:
            outputs = apply_dropout(outputs, layer.input_keep_prob)
        cell = layer.cell
        kernel, recurrent, bias = recurrence.layer_weights(layer)
        if isinstance(cell, keras.layers.GRUCell):
            run_kernel, options = _keras_tf_rnn.gru, {"reset_after": True}
        else:
            run_kernel, options = _keras_tf_rnn.lstm, {}
        # The state is [h] for a GRU, [h, c] for an LSTM, as the Keras
        # functions take it.
        _, outputs, new_state = run_kernel(
            outputs,
            *state,
            kernel_mask,
            kernel,
            recurrent,
            bias,
            cell.activation,
            cell.recurrent_activation,
            return_sequences=True,
            **options,
        )
        if active and layer.output_keep_prob < 1.0:
            outputs = apply_dropout(outputs, layer.output_keep_prob)
        final_states.append(list(new_state))
    if mask is not None:
        outputs = tf.where(mask[:, :, None], outputs, tf.zeros_like(outputs))
        empty = tf.equal(lengths, 0)[:, None]
        final_states = tf.nest.map_structure(
            lambda new, old: tf.where(empty, old, new), final_states, states
        )
    return outputs, final_states
