"""The recurrent cells the `rnn_cell` block builds, and their wrappers.

* `LayerNormLSTMCell`: the port of TF1's `LayerNormBasicLSTMCell`.
* `DropoutWrapper`: input / output dropout around one cell, train mode only.
* `ExtendedMultiRNNCell`: a stack of cells with optional residual
  connections; `seq2seq.rnn.get_rnn_cell` always returns one.
* `GateBiasInitializer`: a gate-stacked bias with one start value per gate
  (TF1's forget bias and GRU gate biases).

State convention of the stack: `state_size` is a list with one list of ints
per layer (`[[H]]` for one GRU layer, `[[H, H], [H, H]]` for two LSTM
layers, Keras order `[h, c]`); a state is the same nest of `[B, size]`
tensors.
"""

import keras
import tensorflow as tf

from seq2seq.configurable import ModeKeys, is_training
from seq2seq.errors import ConfigError
from seq2seq.layers import loop_dropout
from seq2seq.rnn.activations import resolve_activation

__all__ = [
    "DropoutWrapper",
    "ExtendedMultiRNNCell",
    "GateBiasInitializer",
    "LayerNormLSTMCell",
]


# --------------------------------------------------------------- helpers


def as_list(value):
    """A state or state size as a list (an int or tensor becomes `[x]`)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def check_keep_prob(name, value):
    """Raises a ConfigError unless `value` is a keep probability in (0, 1];
    `name` is the parameter as the user wrote it."""
    if not 0.0 < float(value) <= 1.0:
        raise ConfigError(
            f"{name} must be in (0, 1] (1.0 disables dropout), got {value}."
        )


def apply_dropout(inputs, keep_prob):
    """Dropout keeping each element with probability `keep_prob` (stateless
    inside a loop body traced under `loop_dropout.seeded_step`)."""
    return loop_dropout.dropout(inputs, rate=1.0 - keep_prob)


def dropout_masks(shape, keep_prob, dtype):
    """Masks that `inputs * mask` turns into `apply_dropout(inputs,
    keep_prob)`: `1 / keep_prob` with probability `keep_prob`, else 0.

    Args:
      shape: The mask shape, e.g. [T, B, D] for every step of a loop.
      keep_prob: Keep probability in (0, 1).
      dtype: The masks' dtype (that of the inputs they multiply).
    """
    keep = tf.random.uniform(shape) >= 1.0 - keep_prob
    return tf.cast(keep, dtype) * tf.cast(1.0 / keep_prob, dtype)


def nested_lists(state):
    """A stack's state as lists of lists (tuples accepted on input)."""
    return [as_list(layer) for layer in as_list(state)]


@keras.saving.register_keras_serializable(package="seq2seq")
class GateBiasInitializer(keras.initializers.Initializer):
    """Initialises a gate-stacked bias with one constant per gate.

    A bias of shape `[G * units]` is filled gate by gate, e.g. `[0, 1, 0, 0]`
    for a Keras LSTM bias (gates i, f, c, o) with forget bias 1.

    Args:
      gate_values: One float per gate, in the cell's gate order.
    """

    def __init__(self, gate_values):
        self.gate_values = [float(v) for v in gate_values]

    def __call__(self, shape, dtype=None):
        gates = len(self.gate_values)
        if shape[-1] % gates:
            raise ValueError(
                f"bias size {shape[-1]} is not a multiple of {gates} gates"
            )
        units = shape[-1] // gates
        row = tf.concat([tf.fill([units], value) for value in self.gate_values], axis=0)
        dtype = dtype or keras.backend.floatx()
        return tf.cast(tf.broadcast_to(row, shape), dtype)

    def get_config(self):
        return {"gate_values": list(self.gate_values)}


# ------------------------------------------------------ layer norm LSTM


@keras.saving.register_keras_serializable(package="seq2seq")
class LayerNormLSTMCell(keras.layers.Layer):
    """An LSTM cell with layer normalisation (Ba et al., 2016).

    The port of TF1's `LayerNormBasicLSTMCell`. Each gate pre-activation is
    normalised separately over its units, then scaled by a learned gain
    (starting at `norm_gain`) and shifted by a learned offset (starting at
    `norm_shift`); the new cell state is normalised the same way before the
    output nonlinearity. With `layer_norm=False` the cell is a plain LSTM with
    a bias. `forget_bias` is added to the forget gate as a constant.

    Gates are stacked `[i, f, c, o]` as in Keras; the state is `[h, c]`.

    Args:
      units: Number of units H.
      activation: The cell and output nonlinearity (default tanh).
      forget_bias: Constant added to the forget gate pre-activation.
      layer_norm: Whether to normalise (False gives a plain LSTM).
      norm_gain: Initial gain of the normalisations.
      norm_shift: Initial shift of the normalisations.
      norm_epsilon: Variance epsilon of the normalisations.
      dropout_keep_prob: Keep probability of the dropout applied to the
        candidate values (recurrent dropout, Semeniuta et al. 2016); active
        only when the cell is called with `training=True`.
      kernel_initializer: Initialiser of the input kernel [E, 4H].
      recurrent_initializer: Initialiser of the recurrent kernel [H, 4H].
      bias_initializer: Initialiser of the bias (only when `layer_norm` is
        False).
      seed: Optional seed of the candidate dropout.
      **kwargs: Keras layer arguments (`name`, `dtype`, ...).
    """

    def __init__(
        self,
        units,
        activation="tanh",
        forget_bias=1.0,
        layer_norm=True,
        norm_gain=1.0,
        norm_shift=0.0,
        norm_epsilon=1e-6,
        dropout_keep_prob=1.0,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(units) <= 0:
            raise ValueError(f"units must be positive, got {units}")
        if not 0.0 < float(dropout_keep_prob) <= 1.0:
            raise ValueError(
                f"dropout_keep_prob must be in (0, 1], got {dropout_keep_prob}"
            )
        self.units = int(units)
        self.activation = resolve_activation(activation)
        self.forget_bias = float(forget_bias)
        self.layer_norm = bool(layer_norm)
        self.norm_gain = float(norm_gain)
        self.norm_shift = float(norm_shift)
        self.norm_epsilon = float(norm_epsilon)
        self.dropout_keep_prob = float(dropout_keep_prob)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.seed = seed
        self.state_size = [self.units, self.units]
        self.output_size = self.units

    def build(self, input_shape):
        units = self.units
        self.kernel = self.add_weight(
            shape=(input_shape[-1], 4 * units),
            initializer=self.kernel_initializer,
            name="kernel",
        )
        self.recurrent_kernel = self.add_weight(
            shape=(units, 4 * units),
            initializer=self.recurrent_initializer,
            name="recurrent_kernel",
        )
        if self.layer_norm:
            gain = keras.initializers.Constant(self.norm_gain)
            shift = keras.initializers.Constant(self.norm_shift)
            self.gate_gamma = self.add_weight(
                shape=(4, units), initializer=gain, name="gate_gamma"
            )
            self.gate_beta = self.add_weight(
                shape=(4, units), initializer=shift, name="gate_beta"
            )
            self.state_gamma = self.add_weight(
                shape=(units,), initializer=gain, name="state_gamma"
            )
            self.state_beta = self.add_weight(
                shape=(units,), initializer=shift, name="state_beta"
            )
        else:
            self.bias = self.add_weight(
                shape=(4 * units,), initializer=self.bias_initializer, name="bias"
            )

    def _normalize(self, values, gamma, beta):
        mean, variance = tf.nn.moments(values, axes=[-1], keepdims=True)
        normed = (values - mean) * tf.math.rsqrt(variance + self.norm_epsilon)
        return normed * gamma + beta

    def call(self, inputs, states, training=None):
        """One step.

        Args:
          inputs: [B, E].
          states: `[h [B, H], c [B, H]]`.
          training: Enables the candidate dropout.

        Returns:
          `(h [B, H], [h, c])`.
        """
        h_prev, c_prev = states[0], states[1]
        z = tf.matmul(inputs, self.kernel) + tf.matmul(h_prev, self.recurrent_kernel)
        if self.layer_norm:
            gates = tf.reshape(z, [-1, 4, self.units])
            gates = self._normalize(gates, self.gate_gamma, self.gate_beta)
            z = tf.reshape(gates, [-1, 4 * self.units])
        else:
            z = z + self.bias
        i, f, g, o = tf.split(z, 4, axis=-1)
        g = self.activation(g)
        if training and self.dropout_keep_prob < 1.0:
            g = loop_dropout.dropout(
                g, rate=1.0 - self.dropout_keep_prob, seed=self.seed
            )
        c = c_prev * tf.sigmoid(f + self.forget_bias) + tf.sigmoid(i) * g
        if self.layer_norm:
            c = self._normalize(c, self.state_gamma, self.state_beta)
        h = self.activation(c) * tf.sigmoid(o)
        return h, [h, c]

    def get_initial_state(self, batch_size=None):
        """Zero `[h, c]`, each [B, H]."""
        return [
            tf.zeros([batch_size, self.units], dtype=self.compute_dtype)
            for _ in range(2)
        ]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "forget_bias": self.forget_bias,
                "layer_norm": self.layer_norm,
                "norm_gain": self.norm_gain,
                "norm_shift": self.norm_shift,
                "norm_epsilon": self.norm_epsilon,
                "dropout_keep_prob": self.dropout_keep_prob,
                "seed": self.seed,
            }
        )
        return config


# -------------------------------------------------------------- wrappers


class DropoutWrapper(keras.layers.Layer):
    """Dropout on the inputs and outputs of a cell, drawn anew at every step.

    The port of TF1's `DropoutWrapper` (non-variational): a fresh dropout
    mask is drawn for the step input and for the step output each time the
    cell is called. Dropout is active only when `mode` is `train` *and* the
    call gets `training=True`; otherwise the wrapper is the identity around
    the cell. The recurrent state is never dropped.

    Args:
      cell: A Keras cell (`state_size`, `output_size`, `call(inputs,
        states, training)`).
      input_keep_prob: Probability of keeping each input unit.
      output_keep_prob: Probability of keeping each output unit.
      mode: `train`, `eval` or `infer`.
      **kwargs: Keras layer arguments.
    """

    def __init__(
        self,
        cell,
        input_keep_prob=1.0,
        output_keep_prob=1.0,
        mode=ModeKeys.TRAIN,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for key, value in (
            ("dropout_input_keep_prob", input_keep_prob),
            ("dropout_output_keep_prob", output_keep_prob),
        ):
            check_keep_prob(f"rnn_cell.{key}", value)
        self.cell = cell
        self.input_keep_prob = float(input_keep_prob)
        self.output_keep_prob = float(output_keep_prob)
        self.mode = mode

    @property
    def state_size(self):
        return self.cell.state_size

    @property
    def output_size(self):
        return self.cell.output_size

    def build(self, input_shape):
        if not self.cell.built:
            self.cell.build(input_shape)

    def call(self, inputs, states, training=None):
        """One step: `(output [B, H], new_states)`; states as the cell's."""
        active = is_training(training, self.mode)
        if active and self.input_keep_prob < 1.0:
            inputs = apply_dropout(inputs, self.input_keep_prob)
        output, new_states = self.cell(inputs, states, training=active)
        if active and self.output_keep_prob < 1.0:
            output = apply_dropout(output, self.output_keep_prob)
        return output, new_states

    def get_initial_state(self, batch_size=None):
        return _initial_state(self.cell, batch_size, self.compute_dtype)


def _initial_state(cell, batch_size, dtype):
    """A cell's zero state as a list of [B, size] tensors."""
    get_fn = getattr(cell, "get_initial_state", None)
    if get_fn is not None:
        return as_list(get_fn(batch_size=batch_size))
    return [
        tf.zeros([batch_size, size], dtype=dtype) for size in as_list(cell.state_size)
    ]


_COMBINERS = ("add", "mean", "concat")


class ExtendedMultiRNNCell(keras.layers.Layer):
    """A stack of cells, optionally with residual connections between layers.

    Layer `i` reads the output of layer `i - 1` (the step input for layer 0).
    With `residual_connections` (and more than one layer, as in the
    original), the input of each layer is combined with its output before it
    is passed on:

    * `add`: `x_{i+1} = y_i + x_i`;
    * `mean`: like add (the mean of one input is itself);
    * `concat`: `x_{i+1} = [y_i, x_i]`, so the width grows with depth.

    With `residual_dense`, every layer combines its output with *all* earlier
    `x_0 .. x_i` (sum, mean or concatenation) instead of only `x_i`. For
    `add` and `mean`, the step input is first projected by a dense layer
    (`input_transform`, no activation) to the first layer's output size when
    the two differ. The step output is the last `x`.

    `state_size` is a list with one list of ints per layer (`[[H], [H]]`
    for two GRU layers, `[[H, H]]` for one LSTM); states are the matching
    lists of [B, size] tensors.

    Args:
      cells: The per-layer cells, in order.
      residual_connections: Whether to add residual connections.
      residual_combiner: `add`, `mean` or `concat`.
      residual_dense: Whether each layer combines with all earlier inputs.
      mode: `train`, `eval` or `infer`; cells get `training=True` only in
        `train` mode.
      **kwargs: Keras layer arguments.

    Attributes:
      use_cudnn: Whether whole-sequence runs of this stack
        (`seq2seq.rnn.FusedRecurrence.run`) may call cuDNN's kernels on a GPU
        (True). Code traced for XLA sets it to False (see
        `seq2seq.rnn.cudnn_allowed`); it is not part of the checkpoint.
    """

    def __init__(
        self,
        cells,
        residual_connections=False,
        residual_combiner="add",
        residual_dense=False,
        mode=ModeKeys.TRAIN,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not cells:
            raise ConfigError("rnn_cell.num_layers must be at least 1.")
        if residual_combiner not in _COMBINERS:
            raise ConfigError(
                f"rnn_cell.residual_combiner: unknown combiner "
                f"'{residual_combiner}'. Use one of {', '.join(_COMBINERS)}."
            )
        # One attribute per layer: tf.train.Checkpoint does not follow the
        # lists Keras 3 layers keep, so a list attribute would drop weights.
        for index, cell in enumerate(cells):
            setattr(self, f"cell_{index}", cell)
        self._num_cells = len(cells)
        self.residual_connections = bool(residual_connections)
        self.residual_combiner = residual_combiner
        self.residual_dense = bool(residual_dense)
        self.mode = mode
        self.use_cudnn = True
        self._use_residual = self.residual_connections and len(self.cells) > 1
        self._project_input = False
        self._output_size = None
        # Created here (not in build) so that the attribute, and hence the
        # checkpoint path, exists from construction; it only gets variables
        # when the input width differs from the first layer's output size.
        self.input_transform = None
        if self._use_residual and residual_combiner in ("add", "mean"):
            self.input_transform = keras.layers.Dense(
                _cell_output_size(self.cells[0]), name="input_transform"
            )

    @property
    def uses_residual(self):
        """Whether residual connections are active (two or more layers)."""
        return self._use_residual

    @property
    def cells(self):
        """The per-layer cells, in order."""
        return [getattr(self, f"cell_{i}") for i in range(self._num_cells)]

    @property
    def state_size(self):
        return [as_list(cell.state_size) for cell in self.cells]

    @property
    def output_size(self):
        """The step output width (for `concat` residuals: known after build)."""
        if self._output_size is not None:
            return self._output_size
        if self._use_residual and self.residual_combiner == "concat":
            return None
        return _cell_output_size(self.cells[-1])

    def build(self, input_shape):
        width = int(input_shape[-1])
        if self.input_transform is not None and width != _cell_output_size(
            self.cells[0]
        ):
            self._project_input = True
            self.input_transform.build(input_shape)
            width = _cell_output_size(self.cells[0])
        widths = [width]
        for cell in self.cells:
            cell_shape = tuple(input_shape[:-1]) + (widths[-1],)
            if not cell.built:
                cell.build(cell_shape)
            out = _cell_output_size(cell)
            if not self._use_residual:
                widths.append(out)
            elif self.residual_combiner == "concat":
                combined = widths if self.residual_dense else widths[-1:]
                widths.append(out + sum(combined))
            else:
                if out != widths[-1]:
                    raise ConfigError(
                        "rnn_cell.residual_connections with the "
                        f"'{self.residual_combiner}' combiner needs layers of "
                        f"equal size, got a layer of {out} units after one of "
                        f"{widths[-1]}. Use the same cell_params for all layers "
                        "or residual_combiner: concat."
                    )
                widths.append(out)
        self._output_size = widths[-1]

    def call(self, inputs, states, training=None):
        """One step through all layers.

        Args:
          inputs: [B, E] step input.
          states: One list of [B, size] tensors per layer.
          training: Enables dropout (only in `train` mode).

        Returns:
          `(output [B, output_size], new_states)`, `new_states` a list with
          one list of [B, size] tensors per layer.
        """
        active = is_training(training, self.mode)
        if len(states) != len(self.cells):
            raise ValueError(
                f"expected a state with one entry per layer ({len(self.cells)}), "
                f"got {len(states)}"
            )
        x = inputs
        if self._project_input:
            x = self.input_transform(x)
        previous = [x]
        new_states = []
        for cell, state in zip(self.cells, states):
            output, new_state = cell(x, as_list(state), training=active)
            new_states.append(as_list(new_state))
            if self._use_residual:
                combined = previous if self.residual_dense else previous[-1:]
                if self.residual_combiner == "add":
                    output = output + tf.add_n(combined)
                elif self.residual_combiner == "mean":
                    output = output + tf.add_n(combined) / float(len(combined))
                else:
                    output = tf.concat([output] + combined, axis=-1)
            x = output
            previous.append(x)
        return x, new_states

    def get_initial_state(self, batch_size=None):
        """Zero state: one list of [B, size] tensors per layer."""
        return [
            _initial_state(cell, batch_size, self.compute_dtype) for cell in self.cells
        ]


def _cell_output_size(cell):
    size = getattr(cell, "output_size", None)
    if size is None:
        size = as_list(cell.state_size)[0]
    return int(size)


# ----------------------------------------------------------- cell specs
