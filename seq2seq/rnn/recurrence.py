"""Whole-sequence and step-by-step runs of a GRU / LSTM stack with the
work that does not depend on the previous step taken out of the loop.

* `FusedRecurrence`: runs the `ExtendedMultiRNNCell` that `get_rnn_cell`
  builds from Keras `GRUCell`s or `LSTMCell`s (on a GPU through cuDNN's
  kernels, see `seq2seq.rnn.cudnn`).
* `run_together`: independent recurrences in one `tf.while_loop`.
* `run_cell`: any other Keras cell stepped over whole sequences, with its
  dropout fixed by the seed.
* `time_steps`: [B, T, ...] values as a `TensorArray` of T steps.
* `cudnn_allowed`: sets `use_cudnn` on every stack of a model, e.g. while
  a function is traced for XLA.
"""

import contextlib

import keras
import tensorflow as tf
from absl import logging

from seq2seq.configurable import ModeKeys, is_training
from seq2seq.layers import loop_dropout
from seq2seq.rnn import cudnn
from seq2seq.rnn.cells import (
    DropoutWrapper,
    ExtendedMultiRNNCell,
    apply_dropout,
    as_list,
    dropout_masks,
    nested_lists,
)

__all__ = [
    "FusedRecurrence",
    "cudnn_allowed",
    "run_cell",
    "run_together",
    "time_steps",
]


def _fusable_layer(layer):
    """Whether a `DropoutWrapper` layer holds a cell `FusedRecurrence` knows."""
    if type(layer) is not DropoutWrapper:
        return False
    cell = layer.cell
    if type(cell) not in (keras.layers.GRUCell, keras.layers.LSTMCell):
        return False
    return not cell.dropout and not cell.recurrent_dropout


class FusedRecurrence:
    """Runs a stack of Keras GRU or LSTM cells with the work that does not
    depend on the previous step taken out of the recurrence.

    Calling a Keras cell once per step projects that step's input inside the
    loop and, for the GRU, slices the recurrent kernel at every step (in the
    gradient, one zero-padded full-size kernel per slice per step). Here the
    first layer's input projection `x @ W + b` is computed for all steps in
    one matmul before the loop (`project_inputs`), and the kernels are sliced
    once per sequence (`prepare`); `step` does only what depends on the
    previous state. The math is the cells' own (same variables, same gate
    order and activations), so a model can switch between this and calling
    the cell without any change to its checkpoints; only the summation order
    of the input matmul differs (float rounding).

    Dropout follows the cell's `DropoutWrapper`s: input dropout on each
    layer's input and output dropout on its output, drawn independently for
    every element as the wrapper does, only in `train` mode with
    `training=True`. For the first layer the input dropout is applied to the
    whole input sequence at once; the loops draw the masks of their other
    dropouts for all steps before they start (`draw_step_masks`), so that a
    seed fixes them.

    Use `FusedRecurrence.create(cell)`, which returns None for a cell it
    cannot run (other cell classes, Keras cell dropout, residual
    connections); callers then step the cell itself.

    On a GPU, `run` (whole sequences) uses cuDNN's fused RNN kernels, layer
    by layer, when `use_cudnn` allows it and every layer qualifies
    (`cudnn_compatible`): LSTM cells, and GRU cells with `reset_after: true`
    (cuDNN's GRU applies the reset gate after the recurrent product, so the
    TF1-style `GRUCell` default, `reset_after: false`, keeps the loop), with
    tanh / sigmoid activations and biases. The variables and the math are the same as the loop's, so
    a checkpoint moves freely between CPU and GPU. `step` never uses cuDNN
    (decoders step one token at a time).

    Args:
      cell: An `ExtendedMultiRNNCell` (as `get_rnn_cell` builds) of
        `DropoutWrapper`s around `keras.layers.GRUCell` or
        `keras.layers.LSTMCell`, without residual connections.
      use_cudnn: Whether `run` may call cuDNN's kernels (False for code
        traced for XLA, which has no cuDNN RNN kernel).
    """

    def __init__(self, cell, use_cudnn=True):
        self.cell = cell
        self.layers = cell.cells
        self.use_cudnn = bool(use_cudnn)

    @classmethod
    def create(cls, cell, use_cudnn=None):
        """A `FusedRecurrence` for `cell`, or None when it does not apply.

        Args:
          cell: The cell (see the class doc).
          use_cudnn: Whether `run` may call cuDNN's kernels; None takes the
            cell's `use_cudnn` attribute (True unless `cudnn_allowed` turned
            it off).
        """
        if type(cell) is not ExtendedMultiRNNCell or cell.uses_residual:
            return None
        if not all(_fusable_layer(layer) for layer in cell.cells):
            return None
        if use_cudnn is None:
            use_cudnn = cell.use_cudnn
        return cls(cell, use_cudnn=use_cudnn)

    def build(self, input_shape):
        """Builds the cell for inputs of `input_shape` ([..., E])."""
        if not self.cell.built:
            self.cell.build(tuple(input_shape))

    def cudnn_compatible(self):
        """Whether every layer's cell has the math of a cuDNN kernel."""
        return cudnn.compatible([layer.cell for layer in self.layers])

    def uses_cudnn(self):
        """Whether `run` takes the cuDNN kernels: `use_cudnn`, a GPU is
        visible and `cudnn_compatible()`."""
        return self.use_cudnn and cudnn.usable([layer.cell for layer in self.layers])

    def dropout_active(self, training):
        """Whether dropout applies: `train` mode and a true `training`."""
        return is_training(training, self.cell.mode)

    @property
    def dtype(self):
        """The compute dtype of the cells."""
        return self.layers[0].cell.compute_dtype

    # ------------------------------------------------------------ projections

    def layer_weights(self, layer):
        """`(kernel, recurrent_kernel, bias or None)` cast to the compute dtype."""
        cell = layer.cell
        dtype = cell.compute_dtype
        bias = tf.cast(cell.bias, dtype) if cell.use_bias else None
        return (
            tf.cast(cell.kernel, dtype),
            tf.cast(cell.recurrent_kernel, dtype),
            bias,
        )

    def _input_bias(self, layer, bias):
        cell = layer.cell
        if bias is None:
            return None
        if isinstance(cell, keras.layers.GRUCell) and cell.reset_after:
            return bias[0]
        return bias

    def input_dropout(self, inputs, training):
        """The first layer's input dropout (identity unless training)."""
        keep = self.layers[0].input_keep_prob
        if self.dropout_active(training) and keep < 1.0:
            return apply_dropout(inputs, keep)
        return inputs

    def project_inputs(self, inputs, training, offset=0, bias=True):
        """The first layer's input projection of any number of steps at once.

        Args:
          inputs: [..., E] inputs (e.g. [B, T, E]); they are rows
            `offset:offset + E` of the first layer's kernel (the rest of the
            layer's input is projected per step with `project_extra`).
          training: Whether dropout is active.
          offset: First kernel row of these inputs.
          bias: Whether to add the input bias.

        Returns:
          [..., G] projected inputs (G = 3H for a GRU, 4H for an LSTM), input
          dropout applied first.
        """
        inputs = tf.cast(self.input_dropout(inputs, training), self.dtype)
        kernel, _, bias_value = self.layer_weights(self.layers[0])
        width = inputs.shape[-1]
        kernel = kernel[offset : offset + width]
        projected = tf.linalg.matmul(tf.reshape(inputs, [-1, width]), kernel)
        projected = tf.reshape(
            projected, tf.concat([tf.shape(inputs)[:-1], [kernel.shape[-1]]], 0)
        )
        input_bias = self._input_bias(self.layers[0], bias_value)
        if bias and input_bias is not None:
            projected = projected + input_bias
        return projected

    def prepare(self, extra_rows=None):
        """Slices and casts the kernels once, before a loop over `step`.

        Args:
          extra_rows: Optional `(offset, width)`: the rows of the first
            layer's kernel that `project_extra` will multiply (sliced here,
            not at every step).

        Returns:
          A list with one tuple of tensors per layer, for `step`.
        """
        prepared = []
        for index, layer in enumerate(self.layers):
            cell = layer.cell
            kernel, recurrent, bias = self.layer_weights(layer)
            if index == 0 and extra_rows is not None:
                offset, width = extra_rows
                kernel = kernel[offset : offset + width]
            units = cell.units
            if isinstance(cell, keras.layers.GRUCell):
                if cell.reset_after:
                    input_bias = None if bias is None else bias[0]
                    recurrent_bias = None if bias is None else bias[1]
                    prepared.append((kernel, input_bias, recurrent, recurrent_bias))
                else:
                    prepared.append(
                        (
                            kernel,
                            bias,
                            recurrent[:, : 2 * units],
                            recurrent[:, 2 * units :],
                        )
                    )
            else:
                prepared.append((kernel, bias, recurrent, None))
        return prepared

    def project_extra(self, extra, prepared, masks=None):
        """The per-step part of the first layer's input projection.

        Args:
          extra: [B, E2] inputs at the kernel rows given to `prepare` as
            `extra_rows` (e.g. the attention context fed back into the cell).
          prepared: The result of `prepare(extra_rows=...)`.
          masks: This step's dropout masks (`step_masks`); None: no dropout.

        Returns:
          [B, G] to add to the hoisted projection of the step.
        """
        extra = tf.cast(extra, self.dtype)
        if masks is not None and masks["extra"] is not None:
            extra = extra * masks["extra"]
        return tf.linalg.matmul(extra, prepared[0][0])

    def draw_step_masks(self, batch_size, num_steps, training, extra_width=0):
        """Draws the dropout masks of every step of a loop, before the loop.

        A random op inside a `tf.while_loop` is called once per iteration,
        and TensorFlow runs several iterations at once: which step receives
        which draw would depend on thread timing, so two runs with the same
        seed would train different weights. Drawn here, one op per dropout,
        the masks depend only on the seed.

        Args:
          batch_size: B, a scalar.
          num_steps: T, a scalar.
          training: Whether dropout is active.
          extra_width: E2, the width of the `project_extra` inputs (0: none).

        Returns:
          None when no dropout applies inside the loop; else a dict of
          time-major `TensorArray`s of masks (None where a dropout is off):
          "extra" [T, B, E2], and per layer "input" [T, B, H_{l-1}] (layers
          after the first) and "output" [T, B, H_l]. Read one step with
          `step_masks`.
        """
        if not self.dropout_active(training):
            return None

        def draw(keep_prob, width):
            if keep_prob >= 1.0 or not width:
                return None
            masks = dropout_masks([num_steps, batch_size, width], keep_prob, self.dtype)
            return tf.TensorArray(self.dtype, size=num_steps).unstack(masks)

        drawn = {
            "extra": draw(self.layers[0].input_keep_prob, extra_width),
            "input": [None],
            "output": [],
        }
        for index, layer in enumerate(self.layers):
            if index > 0:
                width = self.layers[index - 1].cell.units
                drawn["input"].append(draw(layer.input_keep_prob, width))
            drawn["output"].append(draw(layer.output_keep_prob, layer.cell.units))
        if not any(
            array is not None
            for array in [drawn["extra"], *drawn["input"], *drawn["output"]]
        ):
            return None
        return drawn

    @staticmethod
    def step_masks(drawn, time):
        """Step `time`'s [B, D] masks from `draw_step_masks` (None: none)."""
        if drawn is None:
            return None

        def read(array):
            return None if array is None else array.read(time)

        return {
            "extra": read(drawn["extra"]),
            "input": [read(array) for array in drawn["input"]],
            "output": [read(array) for array in drawn["output"]],
        }

    # ------------------------------------------------------------ recurrence

    def _cell_step(self, layer, projected, state, weights):
        """One cell update from its projected input [B, G]."""
        cell = layer.cell
        _, _, recurrent, extra = weights
        if isinstance(cell, keras.layers.LSTMCell):
            h_prev, c_prev = state[0], state[1]
            z = projected + tf.linalg.matmul(h_prev, recurrent)
            z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
            i = cell.recurrent_activation(z_i)
            f = cell.recurrent_activation(z_f)
            c = f * c_prev + i * cell.activation(z_c)
            h = cell.recurrent_activation(z_o) * cell.activation(c)
            return h, [h, c]
        h_prev = state[0]
        x_z, x_r, x_h = tf.split(projected, 3, axis=-1)
        if cell.reset_after:
            inner = tf.linalg.matmul(h_prev, recurrent)
            if extra is not None:
                inner = inner + extra
            r_z, r_r, r_h = tf.split(inner, 3, axis=-1)
            z = cell.recurrent_activation(x_z + r_z)
            r = cell.recurrent_activation(x_r + r_r)
            candidate = cell.activation(x_h + r * r_h)
        else:
            # A split, not two slices: its gradient is one concat, where each
            # slice's would be a zero-padded full-size tensor plus a sum.
            r_z, r_r = tf.split(tf.linalg.matmul(h_prev, recurrent), 2, axis=-1)
            z = cell.recurrent_activation(x_z + r_z)
            r = cell.recurrent_activation(x_r + r_r)
            candidate = cell.activation(x_h + tf.linalg.matmul(r * h_prev, extra))
        h = z * h_prev + (1.0 - z) * candidate
        return h, [h]

    def step(self, projected, states, prepared, masks=None):
        """One step of the whole stack.

        Dropout inside a loop comes only from masks drawn before it
        (`draw_step_masks`), never from a random op in the step.

        Args:
          projected: [B, G] the first layer's projected input (bias and any
            `project_extra` part included).
          states: The cell state (one list of [B, size] tensors per layer).
          prepared: The result of `prepare`.
          masks: This step's dropout masks (`step_masks`); None: no dropout.

        Returns:
          `(output [B, H], new_states)` as the cell's `call` returns them.
        """
        new_states = []
        output = None
        for index, (layer, state, weights) in enumerate(
            zip(self.layers, states, prepared)
        ):
            if index > 0:
                inputs = output
                if masks is not None and masks["input"][index] is not None:
                    inputs = inputs * masks["input"][index]
                kernel, bias = weights[0], weights[1]
                projected = tf.linalg.matmul(inputs, kernel)
                if bias is not None:
                    projected = projected + bias
            output, new_state = self._cell_step(
                layer, projected, as_list(state), weights
            )
            if masks is not None and masks["output"][index] is not None:
                output = output * masks["output"][index]
            new_states.append(new_state)
        return output, new_states

    def run(self, inputs, initial_state, training, mask=None):
        """Runs the stack over whole sequences.

        Args:
          inputs: [B, T, E] inputs.
          initial_state: The cell state before the first step.
          training: Whether dropout is active.
          mask: Optional [B, T] bool; at masked positions the output is zero
            and the state is carried over unchanged (for right-padded
            sequences: the final state is the one at each sequence's last
            valid position).

        Returns:
          `(outputs [B, T, H], final_state)`.
        """
        outputs, states = run_together(
            [self], [inputs], [initial_state], training, mask
        )
        return outputs[0], states[0]


def time_steps(values):
    """[B, T, ...] values as a `TensorArray` of their T [B, ...] steps, to be
    read one step at a time inside a `tf.while_loop`."""
    values = tf.convert_to_tensor(values)
    time_major = tf.transpose(values, [1, 0] + list(range(2, values.shape.rank)))
    return tf.TensorArray(
        values.dtype, size=tf.shape(values)[1], element_shape=time_major.shape[1:]
    ).unstack(time_major)


def run_together(recurrences, inputs, initial_states, training, mask=None):
    """Runs independent recurrences over sequences of the same length in one
    loop (e.g. the two directions of a bidirectional encoder).

    One `tf.while_loop` instead of one per recurrence halves the loop's own
    cost (per-iteration bookkeeping, and its gradient's stack pushes and
    pops), and lets TensorFlow run the independent steps of an iteration in
    parallel. Each result equals `recurrence.run(...)` on its own; a
    recurrence that takes the cuDNN path (`uses_cudnn`) runs its kernels
    apart from the loop.

    Args:
      recurrences: `FusedRecurrence`s.
      inputs: One [B, T, E_i] tensor per recurrence (same B and T).
      initial_states: One cell state per recurrence.
      training: Whether dropout is active.
      mask: Optional [B, T] bool mask, shared (see `FusedRecurrence.run`).

    Returns:
      `(outputs, final_states)`: lists with one [B, T, H_i] tensor and one
      state per recurrence.
    """
    outputs = [None] * len(recurrences)
    states = [None] * len(recurrences)
    looped = []
    for index, (recurrence, values, state) in enumerate(
        zip(recurrences, inputs, initial_states)
    ):
        recurrence.build(values.shape)
        if recurrence.uses_cudnn():
            try:
                outputs[index], states[index] = cudnn.run(
                    recurrence, values, state, training, mask
                )
                continue
            except NotImplementedError:
                # Keras declined this configuration: loop instead.
                logging.debug("cuDNN RNN declined; using the step loop.")
        looped.append(index)
    if not looped:
        return outputs, states

    batch_size = tf.shape(inputs[looped[0]])[0]
    num_steps = tf.shape(inputs[looped[0]])[1]
    step_inputs, prepared, masks, arrays, loop_states = [], [], [], [], []
    for index in looped:
        recurrence = recurrences[index]
        step_inputs.append(
            time_steps(recurrence.project_inputs(inputs[index], training))
        )
        prepared.append(recurrence.prepare())
        masks.append(recurrence.draw_step_masks(batch_size, num_steps, training))
        arrays.append(tf.TensorArray(recurrence.dtype, size=num_steps))
        loop_states.append(
            tf.nest.map_structure(
                lambda t, dtype=recurrence.dtype: tf.cast(t, dtype),
                nested_lists(initial_states[index]),
            )
        )
    step_mask = None
    if mask is not None:
        step_mask = time_steps(tf.cast(mask, tf.bool))

    def body(time, loop_states, arrays):
        valid = None if step_mask is None else step_mask.read(time)[:, None]
        new_states, new_arrays = [], []
        for position, index in enumerate(looped):
            state = loop_states[position]
            recurrence = recurrences[index]
            output, new_state = recurrence.step(
                step_inputs[position].read(time),
                state,
                prepared[position],
                recurrence.step_masks(masks[position], time),
            )
            if valid is not None:
                # The outputs are masked once after the loop.
                new_state = tf.nest.map_structure(
                    lambda new, old: tf.where(valid, new, old), new_state, state
                )
            new_states.append(new_state)
            new_arrays.append(arrays[position].write(time, output))
        return time + 1, new_states, new_arrays

    _, loop_states, arrays = tf.while_loop(
        lambda time, *_: time < num_steps,
        body,
        (tf.constant(0), loop_states, arrays),
        maximum_iterations=num_steps,
    )
    for position, index in enumerate(looped):
        values = tf.transpose(arrays[position].stack(), [1, 0, 2])
        if mask is not None:
            values = tf.where(
                tf.cast(mask, tf.bool)[:, :, None], values, tf.zeros_like(values)
            )
        outputs[index] = values
        states[index] = loop_states[position]
    return outputs, states


def run_cell(cell, inputs, initial_state, training, mask=None):
    """Steps a Keras RNN cell over whole sequences in a `tf.while_loop`, for
    cells `FusedRecurrence` cannot run; the same numbers as a
    `keras.layers.RNN(cell, return_sequences=True, return_state=True,
    zero_output_for_mask=True)`.

    Unlike Keras's loop, the body is traced under `loop_dropout.seeded_step`
    when dropout is active, so that the dropout the cell draws at each step
    (e.g. a `DropoutWrapper`'s) is fixed by the seed, whatever order the
    loop runs its iterations in.

    Args:
      cell: A built Keras RNN cell: `call(inputs, states, training)`.
      inputs: [B, T, E] inputs (cast to the cell's compute dtype).
      initial_state: The cell state before the first step.
      training: Whether dropout is active (in the cell's mode).
      mask: Optional [B, T] bool; at masked positions the output is zero
        and the state is carried over unchanged.

    Returns:
      `(outputs [B, T, H], final_state)`, the state in the structure of
      `initial_state`.
    """
    dtype = cell.compute_dtype
    inputs = tf.cast(inputs, dtype)
    num_steps = tf.shape(inputs)[1]
    step_inputs = time_steps(inputs)
    step_mask = None if mask is None else time_steps(tf.cast(mask, tf.bool))
    seed = None
    if is_training(training, getattr(cell, "mode", ModeKeys.TRAIN)):
        seed = loop_dropout.loop_seed()

    def body(time, state, outputs):
        with loop_dropout.seeded_step(seed, time):
            output, new_state = cell(step_inputs.read(time), state, training=training)
        new_state = tf.nest.pack_sequence_as(state, tf.nest.flatten(new_state))
        if step_mask is not None:
            valid = step_mask.read(time)[:, None]
            output = tf.where(valid, output, tf.zeros_like(output))
            new_state = tf.nest.map_structure(
                lambda new, old: tf.where(valid, new, old), new_state, state
            )
        return time + 1, new_state, outputs.write(time, tf.cast(output, dtype))

    _, state, outputs = tf.while_loop(
        lambda time, *_: time < num_steps,
        body,
        (tf.constant(0), initial_state, tf.TensorArray(dtype, size=num_steps)),
        maximum_iterations=num_steps,
    )
    return tf.transpose(outputs.stack(), [1, 0, 2]), state


@contextlib.contextmanager
def cudnn_allowed(layer, allowed):
    """Sets `use_cudnn` of every `ExtendedMultiRNNCell` under `layer` within
    the block, and restores the previous values after it.

    For a function traced for XLA (`jit_compile`): XLA has no cuDNN RNN
    kernel, so the recurrences the function runs (those of the encoders and
    of the decoders' teacher-forced passes, which make their
    `FusedRecurrence` from the cell) must trace their own loops. The setting
    belongs to the cells of `layer` only and applies while the code runs
    (for a `tf.function`: while it is traced).

    Args:
      layer: A Keras layer, e.g. a model.
      allowed: Whether whole-sequence runs may call cuDNN's kernels.

    Yields:
      The cells whose setting was changed.
    """
    cells = [
        sub
        for sub in layer._flatten_layers(include_self=True, recursive=True)
        if isinstance(sub, ExtendedMultiRNNCell)
    ]
    previous = [cell.use_cudnn for cell in cells]
    for cell in cells:
        cell.use_cudnn = bool(allowed)
    try:
        yield cells
    finally:
        for cell, value in zip(cells, previous):
            cell.use_cudnn = value
