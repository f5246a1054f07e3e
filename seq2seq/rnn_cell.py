"""Recurrent cells built from the `rnn_cell` configuration block.

Encoders and decoders describe their recurrent cell with the same YAML block
as the original toolkit::

    rnn_cell:
      cell_class: GRUCell          # TF1 name, Keras name or dotted path
      cell_params: {num_units: 256}
      num_layers: 2
      dropout_input_keep_prob: 0.8
      dropout_output_keep_prob: 1.0
      residual_connections: false
      residual_combiner: add
      residual_dense: false

`get_rnn_cell(**rnn_cell, mode=...)` turns it into one Keras cell object that
`keras.layers.RNN` can run and that decoders can step by hand.

Cell names
----------
The TensorFlow 1 names of the original map to Keras cells with the same math:

* `GRUCell`, `GRUBlockCell` -> `keras.layers.GRUCell(reset_after=False)`.
  TF1 applied the reset gate to the previous state *before* the recurrent
  matmul, which is Keras' `reset_after=False`. TF1 also started the update
  and reset gate biases at 1.0 (candidate bias at 0); the same start is used
  unless `bias_initializer` is given.
* `LSTMCell`, `BasicLSTMCell`, `LSTMBlockCell` -> `keras.layers.LSTMCell`.
  TF1 added a constant `forget_bias` (default 1.0) to a zero-initialised
  forget-gate bias; here the forget-gate bias variable *starts* at
  `forget_bias` instead (`unit_forget_bias=True` for 1.0). The two are the
  same function with the same gradients; only the stored bias differs.
* `BasicRNNCell`, `RNNCell` -> `keras.layers.SimpleRNNCell`.
* `LayerNormBasicLSTMCell` -> `LayerNormLSTMCell` (this module).

Keras names (`GRUCell`, `LSTMCell`, `SimpleRNNCell`, `LayerNormLSTMCell`)
accept the Keras constructor arguments as well, and a dotted path such as
`keras.layers.GRUCell` or `mypackage.cells.MyCell` names any Keras cell class
(given its own constructor arguments; `num_units` is renamed to `units`).
Dotted TF1 paths (`tensorflow.contrib.rnn.BasicRNNCell`) use the mapping
above.

State structure
---------------
`get_rnn_cell` always returns an `ExtendedMultiRNNCell`, whatever the number
of layers, so that the variables of a model keep the same checkpoint paths
when dropout, mode or depth change, and so that every consumer sees one
state convention:

* `state_size` is a list with one entry per layer, each entry the list of
  that layer's state sizes: `[[H]]` for one GRU / simple RNN layer,
  `[[H, H], [H, H]]` for two LSTM layers (Keras order `[h, c]`, output first).
* A state is the same nest of `[B, size]` tensors (lists; tuples are accepted
  on input). `tf.nest.flatten` gives the leaves in layer order.
"""

import contextlib
import importlib
import inspect
import threading

import keras
import tensorflow as tf
from absl import logging

try:
    # Keras's cuDNN GRU / LSTM functions for the TensorFlow backend (the ones
    # keras.layers.GRU and LSTM run on a GPU). Not public API: without them
    # the recurrences run as this module's own loops.
    from keras.src.backend.tensorflow import rnn as _keras_tf_rnn
except ImportError:  # pragma: no cover - depends on the Keras version
    _keras_tf_rnn = None

from seq2seq.configurable import ModeKeys
from seq2seq.errors import ConfigError

__all__ = [
    "DropoutWrapper",
    "ExtendedMultiRNNCell",
    "GateBiasInitializer",
    "LayerNormLSTMCell",
    "cell_from_spec",
    "cudnn_disabled",
    "default_rnn_cell_params",
    "get_rnn_cell",
    "known_cell_classes",
    "resolve_activation",
    "run_together",
    "time_steps",
]


def default_rnn_cell_params():
    """The default `rnn_cell` block of RNN encoders and decoders.

    Returns:
      A new dict: a one-layer `BasicLSTMCell` of 128 units, no dropout and no
      residual connections.
    """
    return {
        "cell_class": "BasicLSTMCell",
        "cell_params": {"num_units": 128},
        "dropout_input_keep_prob": 1.0,
        "dropout_output_keep_prob": 1.0,
        "num_layers": 1,
        "residual_connections": False,
        "residual_combiner": "add",
        "residual_dense": False,
    }


# --------------------------------------------------------------- helpers


def _as_list(value):
    """A state or state size as a list (an int or tensor becomes `[x]`)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _is_training(training, mode):
    """Dropout is active only for mode `train` and a true `training` flag."""
    return mode == ModeKeys.TRAIN and bool(training)


def _dropout(inputs, keep_prob):
    return tf.nn.dropout(inputs, rate=1.0 - keep_prob)


def resolve_activation(name, where="activation"):
    """Turns an activation given in a config into a callable.

    Accepts Keras activation names (`tanh`, `relu`, `linear`), the original's
    dotted TensorFlow names (`tensorflow.tanh`, `tensorflow.nn.relu`,
    `tensorflow.identity`), other dotted paths to a function, and callables.
    `None`, `""`, `"none"`, `"identity"` and `"linear"` mean identity.

    Args:
      name: The name, a callable or None.
      where: What is being configured, for the error message.

    Returns:
      A callable mapping a tensor to a tensor.

    Raises:
      ConfigError: The name resolves to nothing callable.
    """
    if callable(name):
        return name
    if name is None or (isinstance(name, str) and name.strip().lower() in _IDENTITY):
        return tf.identity
    if not isinstance(name, str):
        raise ConfigError(f"{where}: expected an activation name, got {name!r}.")
    found = None
    text = name.strip()
    for prefix in ("tensorflow.", "tf."):
        if text.startswith(prefix):
            found = _getattr_path(tf, text[len(prefix) :])
            break
    if found is None and "." not in text:
        try:
            found = keras.activations.get(text)
        except (ValueError, TypeError):
            found = getattr(tf.nn, text, None) or getattr(tf.math, text, None)
    if found is None and "." in text:
        found = _import_dotted(text)
    if not callable(found):
        raise ConfigError(
            f"{where}: unknown activation '{name}'. Use a Keras activation name "
            "(tanh, relu, sigmoid, linear, ...) or a dotted function name such "
            "as tensorflow.tanh."
        )
    return found


_IDENTITY = ("", "none", "identity", "linear")


def _getattr_path(obj, path):
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _import_dotted(name):
    """Imports `a.b.C` (attribute `C` of module `a.b`); None when missing."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        return _getattr_path(module, ".".join(parts[cut:]))
    return None


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
            g = tf.nn.dropout(g, rate=1.0 - self.dropout_keep_prob, seed=self.seed)
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
            if not 0.0 < float(value) <= 1.0:
                raise ConfigError(
                    f"rnn_cell.{key} must be in (0, 1] (1.0 disables dropout), "
                    f"got {value}."
                )
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
        active = _is_training(training, self.mode)
        if active and self.input_keep_prob < 1.0:
            inputs = _dropout(inputs, self.input_keep_prob)
        output, new_states = self.cell(inputs, states, training=active)
        if active and self.output_keep_prob < 1.0:
            output = _dropout(output, self.output_keep_prob)
        return output, new_states

    def get_initial_state(self, batch_size=None):
        return _initial_state(self.cell, batch_size, self.compute_dtype)


def _initial_state(cell, batch_size, dtype):
    """A cell's zero state as a list of [B, size] tensors."""
    get_fn = getattr(cell, "get_initial_state", None)
    if get_fn is not None:
        return _as_list(get_fn(batch_size=batch_size))
    return [
        tf.zeros([batch_size, size], dtype=dtype) for size in _as_list(cell.state_size)
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
    def cells(self):
        """The per-layer cells, in order."""
        return [getattr(self, f"cell_{i}") for i in range(self._num_cells)]

    @property
    def state_size(self):
        return [_as_list(cell.state_size) for cell in self.cells]

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
        active = _is_training(training, self.mode)
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
            output, new_state = cell(x, _as_list(state), training=active)
            new_states.append(_as_list(new_state))
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
        size = _as_list(cell.state_size)[0]
    return int(size)


# ----------------------------------------------------------- cell specs


class _CellSpec:
    """How one short cell name maps to a Keras cell class.

    Attributes:
      target: The Keras class to build.
      tf1_params: Parameter names of the TF1 class (translated here).
      keras_params: Whether the target's own constructor arguments are
        accepted too.
      family: `gru`, `lstm`, `rnn` or `layer_norm`, for defaults.
    """

    def __init__(self, target, tf1_params=(), keras_params=True, family="rnn"):
        self.target = target
        self.tf1_params = tuple(tf1_params)
        self.keras_params = keras_params
        self.family = family


_TF1_IGNORED = ("reuse", "num_unit_shards", "num_proj_shards", "input_size", "name")

_CELL_SPECS = {
    "BasicRNNCell": _CellSpec(
        keras.layers.SimpleRNNCell, ("num_units", "activation", "reuse"), False
    ),
    "RNNCell": _CellSpec(
        keras.layers.SimpleRNNCell, ("num_units", "activation", "reuse"), False
    ),
    "SimpleRNNCell": _CellSpec(keras.layers.SimpleRNNCell, ("num_units",), True),
    "GRUCell": _CellSpec(
        keras.layers.GRUCell,
        (
            "num_units",
            "activation",
            "reuse",
            "kernel_initializer",
            "bias_initializer",
            "name",
        ),
        True,
        "gru",
    ),
    "GRUBlockCell": _CellSpec(
        keras.layers.GRUCell, ("num_units", "cell_size", "reuse", "name"), False, "gru"
    ),
    "BasicLSTMCell": _CellSpec(
        keras.layers.LSTMCell,
        ("num_units", "forget_bias", "state_is_tuple", "activation", "reuse", "name"),
        False,
        "lstm",
    ),
    "LSTMCell": _CellSpec(
        keras.layers.LSTMCell,
        (
            "num_units",
            "use_peepholes",
            "cell_clip",
            "initializer",
            "num_proj",
            "proj_clip",
            "num_unit_shards",
            "num_proj_shards",
            "forget_bias",
            "state_is_tuple",
            "activation",
            "reuse",
            "name",
        ),
        True,
        "lstm",
    ),
    "LSTMBlockCell": _CellSpec(
        keras.layers.LSTMCell,
        ("num_units", "forget_bias", "cell_clip", "use_peephole", "reuse", "name"),
        False,
        "lstm",
    ),
    "LayerNormBasicLSTMCell": _CellSpec(
        LayerNormLSTMCell,
        (
            "num_units",
            "forget_bias",
            "input_size",
            "activation",
            "layer_norm",
            "norm_gain",
            "norm_shift",
            "dropout_keep_prob",
            "dropout_prob_seed",
            "reuse",
        ),
        True,
        "layer_norm",
    ),
    "LayerNormLSTMCell": _CellSpec(
        LayerNormLSTMCell, ("num_units",), True, "layer_norm"
    ),
}

# TF1 values that have no Keras equivalent: allowed only at these values.
_UNSUPPORTED_UNLESS = {
    "use_peepholes": (False,),
    "use_peephole": (False,),
    "cell_clip": (None, -1, -1.0),
    "num_proj": (None,),
    "proj_clip": (None,),
    "state_is_tuple": (True,),
}

# Keras arguments that cannot be used inside this module's cells.
_REJECTED_KERAS = {
    "dropout": "use rnn_cell.dropout_input_keep_prob",
    "recurrent_dropout": "use rnn_cell.dropout_input_keep_prob / "
    "dropout_output_keep_prob (or LayerNormBasicLSTMCell's dropout_keep_prob)",
}

# Dotted prefixes of the original's cell modules; their last component is
# looked up among the short names.
_TF1_PREFIXES = (
    "tensorflow.contrib.rnn.",
    "tf.contrib.rnn.",
    "tensorflow.nn.rnn_cell.",
    "tf.nn.rnn_cell.",
    "tensorflow.contrib.rnn.python.ops.rnn_cell.",
    "tensorflow.python.ops.rnn_cell.",
    "tensorflow.python.ops.rnn_cell_impl.",
    "seq2seq.contrib.rnn_cell.",
)

_LAYER_KWARGS = ("name", "dtype", "trainable")


def known_cell_classes():
    """The short cell names `get_rnn_cell` understands, sorted."""
    return sorted(_CELL_SPECS)


def _constructor_args(cls):
    """Named constructor arguments of a class (without self / *args)."""
    params = inspect.signature(cls.__init__).parameters.values()
    return [
        p.name
        for p in params
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def _fresh_uniform(init_scale):
    return keras.initializers.RandomUniform(-init_scale, init_scale)


def _resolve_spec(cell_classname):
    """Returns `(short_name or None, spec or class)` for a cell name."""
    if not isinstance(cell_classname, str) or not cell_classname.strip():
        raise ConfigError(
            f"rnn_cell.cell_class: expected a cell class name, got {cell_classname!r}."
        )
    name = cell_classname.strip()
    if name in _CELL_SPECS:
        return name, _CELL_SPECS[name]
    for prefix in _TF1_PREFIXES:
        if name.startswith(prefix) and name[len(prefix) :] in _CELL_SPECS:
            short = name[len(prefix) :]
            return short, _CELL_SPECS[short]
    if "." in name:
        found = _import_dotted(name)
        if inspect.isclass(found) and issubclass(found, keras.layers.Layer):
            return None, found
    raise ConfigError(
        f"rnn_cell.cell_class: unknown cell class '{cell_classname}'. Known: "
        f"{', '.join(known_cell_classes())}, or a dotted path to a Keras cell "
        "class such as keras.layers.GRUCell."
    )


def _check_unknown(cell_params, valid, cell_name):
    for key in cell_params:
        if key not in valid:
            raise ConfigError(
                f"rnn_cell.cell_params: '{key}' is not a parameter of {cell_name}. "
                f"Valid parameters: {', '.join(sorted(valid))}."
            )


def _take_units(params, cell_name, *aliases):
    """Pops the unit count given under any alias; `units` wins over others."""
    given = {a: params.pop(a) for a in aliases if a in params}
    if not given:
        raise ConfigError(
            f"rnn_cell.cell_params: {cell_name} needs num_units (the number of "
            "units), e.g. cell_params: {num_units: 128}."
        )
    units = given.get("units", next(iter(given.values())))
    if len(set(given.values())) > 1:
        logging.debug(
            "%s: units %s given as %s; using %s", cell_name, units, given, units
        )
    try:
        units = int(units)
    except (TypeError, ValueError):
        raise ConfigError(
            f"rnn_cell.cell_params.num_units: expected a positive integer, got {units!r}."
        ) from None
    if units <= 0:
        raise ConfigError(
            f"rnn_cell.cell_params.num_units: expected a positive integer, got {units}."
        )
    return units


def _mapped_kwargs(short, spec, cell_params, init_scale):
    """Translates TF1 / Keras cell params into the target's kwargs."""
    target = spec.target
    keras_args = _constructor_args(target) if spec.keras_params else []
    valid = set(spec.tf1_params) | set(keras_args) | {"units"}
    if spec.keras_params:
        valid |= set(_LAYER_KWARGS)
    valid -= set(_REJECTED_KERAS)
    for key, hint in _REJECTED_KERAS.items():
        if key in cell_params and cell_params[key] not in (None, 0, 0.0):
            raise ConfigError(
                f"rnn_cell.cell_params: '{key}' is not supported for {short}; {hint} "
                "instead."
            )
    params = {k: v for k, v in cell_params.items() if k not in _REJECTED_KERAS}
    _check_unknown(params, valid, short)
    for key, allowed in _UNSUPPORTED_UNLESS.items():
        if key in params:
            value = params.pop(key)
            if value not in allowed:
                raise ConfigError(
                    f"rnn_cell.cell_params: {key}={value!r} is not supported by the "
                    f"Keras cell {short} maps to; remove it."
                )
    for key in _TF1_IGNORED:
        if key in params and key not in keras_args:
            params.pop(key)
    kwargs = {"units": _take_units(params, short, "num_units", "cell_size", "units")}

    if "activation" in params:
        kwargs["activation"] = resolve_activation(
            params.pop("activation"), "rnn_cell.cell_params.activation"
        )
    if "initializer" in params:  # TF1 LSTMCell: weights initializer
        init = params.pop("initializer")
        if init is not None:
            kwargs["kernel_initializer"] = init
            kwargs["recurrent_initializer"] = init
    if "dropout_prob_seed" in params:
        kwargs["seed"] = params.pop("dropout_prob_seed")

    forget_bias = params.pop("forget_bias", None)
    kwargs.update(params)

    if spec.family == "lstm":
        keras_bias = "unit_forget_bias" in kwargs or "bias_initializer" in kwargs
        if forget_bias is not None and keras_bias:
            raise ConfigError(
                f"rnn_cell.cell_params: give either forget_bias (TF1) or "
                f"unit_forget_bias/bias_initializer (Keras) for {short}, not both."
            )
        if not keras_bias:
            value = 1.0 if forget_bias is None else float(forget_bias)
            if value == 1.0:
                kwargs["unit_forget_bias"] = True
            else:
                kwargs["unit_forget_bias"] = False
                kwargs["bias_initializer"] = GateBiasInitializer([0.0, value, 0.0, 0.0])
    elif spec.family == "layer_norm":
        if forget_bias is not None:
            kwargs["forget_bias"] = float(forget_bias)
    elif spec.family == "gru":
        kwargs.setdefault("reset_after", False)
        if "bias_initializer" not in kwargs and not kwargs["reset_after"]:
            # TF1 GRUCell: update and reset gate biases start at 1.
            kwargs["bias_initializer"] = GateBiasInitializer([1.0, 1.0, 0.0])

    if init_scale:
        for key in ("kernel_initializer", "recurrent_initializer"):
            if kwargs.get(key) is None:
                kwargs[key] = _fresh_uniform(init_scale)
    return kwargs


def _dotted_kwargs(cls, cell_params, init_scale):
    """Kwargs for a Keras cell class given by dotted path."""
    args = _constructor_args(cls)
    params = dict(cell_params)
    if "units" in args and "num_units" not in args:
        units = _take_units(params, cls.__name__, "num_units", "units")
        params["units"] = units
    valid = set(args) | set(_LAYER_KWARGS)
    _check_unknown(params, valid, cls.__name__)
    for key, hint in _REJECTED_KERAS.items():
        if params.get(key) not in (None, 0, 0.0):
            raise ConfigError(
                f"rnn_cell.cell_params: '{key}' is not supported for "
                f"{cls.__name__}; {hint} instead."
            )
    if init_scale:
        for key in ("kernel_initializer", "recurrent_initializer"):
            if key in args and params.get(key) is None:
                params[key] = _fresh_uniform(init_scale)
    return params


def cell_from_spec(cell_classname, cell_params, init_scale=None):
    """Builds one Keras cell from a class name and its parameters.

    Args:
      cell_classname: A short name (`GRUCell`, `BasicLSTMCell`,
        `LayerNormBasicLSTMCell`, `SimpleRNNCell`, ...; see
        `known_cell_classes()`), a dotted TF1 name
        (`tensorflow.contrib.rnn.GRUCell`) or a dotted path to a Keras cell
        class.
      cell_params: Dict of constructor parameters: the TF1 names of the
        original (`num_units`, `forget_bias`, `activation`, ...) and, for
        Keras-backed names, the Keras arguments (`units`, `reset_after`,
        `kernel_initializer`, ...). When both `num_units` and `units` are
        present, `units` wins.
      init_scale: If set and > 0, kernels and recurrent kernels not given an
        initializer in `cell_params` start uniform in
        `[-init_scale, init_scale]` (as the original's variable-scope
        initializer did); biases keep their own initializers.

    Returns:
      A Keras cell (`keras.layers.Layer` with `state_size`, `output_size`,
      `call(inputs, states, training)`).

    Raises:
      ConfigError: Unknown class, unknown or unsupported parameter, or a
        value the cell rejects.
    """
    cell_params = dict(cell_params or {})
    short, spec = _resolve_spec(cell_classname)
    if short is not None:
        cls = spec.target
        kwargs = _mapped_kwargs(short, spec, cell_params, init_scale)
    else:
        cls = spec
        kwargs = _dotted_kwargs(cls, cell_params, init_scale)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(
            f"rnn_cell: cannot build {cell_classname} with {cell_params}: {message}"
        ) from None


def get_rnn_cell(
    cell_class="BasicLSTMCell",
    cell_params=None,
    num_layers=1,
    dropout_input_keep_prob=1.0,
    dropout_output_keep_prob=1.0,
    residual_connections=False,
    residual_combiner="add",
    residual_dense=False,
    mode=ModeKeys.TRAIN,
    init_scale=None,
):
    """Builds the (possibly multi-layer) cell an `rnn_cell` block describes.

    Every layer is `cell_from_spec(cell_class, cell_params)` wrapped in a
    `DropoutWrapper`; the layers are stacked in an `ExtendedMultiRNNCell`
    (also for one layer, so that the state structure and the checkpoint
    paths do not depend on the depth or on dropout).

    Args:
      cell_class: Cell class name (see `cell_from_spec`).
      cell_params: Cell constructor parameters; defaults to
        `{"num_units": 128}`.
      num_layers: Number of stacked layers.
      dropout_input_keep_prob: Keep probability of the dropout on each
        layer's input (1.0: none).
      dropout_output_keep_prob: Keep probability of the dropout on each
        layer's output (1.0: none).
      residual_connections: Residual connections between layers (only used
        with two or more layers, as in the original).
      residual_combiner: `add`, `mean` or `concat`.
      residual_dense: Combine each layer's output with all earlier layer
        inputs rather than only its own.
      mode: `train`, `eval` or `infer`; dropout is active only in `train`
        mode and when the cell is called with `training=True`.
      init_scale: Optional uniform init range of the kernels (see
        `cell_from_spec`).

    Returns:
      An `ExtendedMultiRNNCell`. Its `state_size` is a list with one list of
      ints per layer, e.g. `[[128, 128]]` for one LSTM layer.

    Raises:
      ConfigError: An invalid value.
    """
    if cell_params is None:
        cell_params = {"num_units": 128}
    if mode not in ModeKeys.ALL:
        raise ValueError(f"mode must be one of {ModeKeys.ALL}, got {mode!r}")
    try:
        num_layers = int(num_layers)
    except (TypeError, ValueError):
        num_layers = 0
    if num_layers < 1:
        raise ConfigError(
            f"rnn_cell.num_layers must be a positive integer, got {num_layers!r}."
        )
    cells = []
    for index in range(num_layers):
        cell = cell_from_spec(cell_class, cell_params, init_scale=init_scale)
        cells.append(
            DropoutWrapper(
                cell,
                input_keep_prob=dropout_input_keep_prob,
                output_keep_prob=dropout_output_keep_prob,
                mode=mode,
                name=f"layer_{index}",
            )
        )
    if residual_connections and num_layers == 1:
        logging.info("rnn_cell.residual_connections has no effect with one layer.")
    return ExtendedMultiRNNCell(
        cells,
        residual_connections=residual_connections,
        residual_combiner=residual_combiner,
        residual_dense=residual_dense,
        mode=mode,
    )


# ------------------------------------------------------ fused recurrence


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
    whole input sequence at once.

    Use `FusedRecurrence.create(cell)`, which returns None for a cell it
    cannot run (other cell classes, Keras cell dropout, residual
    connections); callers then step the cell itself.

    On a GPU, `run` (whole sequences) uses cuDNN's fused RNN kernels, layer
    by layer, when every layer qualifies (`cudnn_compatible`): LSTM cells,
    and GRU cells with `reset_after: true` (cuDNN's GRU applies the reset
    gate after the recurrent product, so the TF1-style `GRUCell` default,
    `reset_after: false`, keeps the loop), with tanh / sigmoid activations
    and biases. The variables and the math are the same as the loop's, so
    a checkpoint moves freely between CPU and GPU. `step` never uses cuDNN
    (decoders step one token at a time).

    Args:
      cell: An `ExtendedMultiRNNCell` (as `get_rnn_cell` builds) of
        `DropoutWrapper`s around `keras.layers.GRUCell` or
        `keras.layers.LSTMCell`, without residual connections.
    """

    def __init__(self, cell):
        self.cell = cell
        self.layers = cell.cells

    @classmethod
    def create(cls, cell):
        """A `FusedRecurrence` for `cell`, or None when it does not apply."""
        if type(cell) is not ExtendedMultiRNNCell or cell._use_residual:
            return None
        if not all(_fusable_layer(layer) for layer in cell.cells):
            return None
        return cls(cell)

    def build(self, input_shape):
        """Builds the cell for inputs of `input_shape` ([..., E])."""
        if not self.cell.built:
            self.cell.build(tuple(input_shape))

    def cudnn_compatible(self):
        """Whether every layer's cell has the math of a cuDNN kernel."""
        if _keras_tf_rnn is None:
            return False
        for layer in self.layers:
            cell = layer.cell
            if not cell.use_bias:
                return False
            if cell.activation not in _TANH:
                return False
            if cell.recurrent_activation not in _SIGMOID:
                return False
            if isinstance(cell, keras.layers.GRUCell) and not cell.reset_after:
                return False
        return True

    def uses_cudnn(self):
        """Whether `run` takes the cuDNN kernels: a GPU is visible,
        `cudnn_compatible()`, and not inside `cudnn_disabled()`."""
        if getattr(_CUDNN_SWITCH, "disabled", 0):
            return False
        return _gpu_visible() and self.cudnn_compatible()

    def _active(self, training):
        return _is_training(training, self.cell.mode)

    @property
    def dtype(self):
        """The compute dtype of the cells."""
        return self.layers[0].cell.compute_dtype

    # ------------------------------------------------------------ projections

    def _weights(self, layer):
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
        if self._active(training) and keep < 1.0:
            return _dropout(inputs, keep)
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
        kernel, _, bias_value = self._weights(self.layers[0])
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
            kernel, recurrent, bias = self._weights(layer)
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

    def project_extra(self, extra, prepared, training):
        """The per-step part of the first layer's input projection.

        Args:
          extra: [B, E2] inputs at the kernel rows given to `prepare` as
            `extra_rows` (e.g. the attention context fed back into the cell).
          prepared: The result of `prepare(extra_rows=...)`.
          training: Whether dropout is active.

        Returns:
          [B, G] to add to the hoisted projection of the step.
        """
        extra = tf.cast(self.input_dropout(extra, training), self.dtype)
        return tf.linalg.matmul(extra, prepared[0][0])

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

    def step(self, projected, states, prepared, training):
        """One step of the whole stack.

        Args:
          projected: [B, G] the first layer's projected input (bias and any
            `project_extra` part included).
          states: The cell state (one list of [B, size] tensors per layer).
          prepared: The result of `prepare`.
          training: Whether dropout is active.

        Returns:
          `(output [B, H], new_states)` as the cell's `call` returns them.
        """
        active = self._active(training)
        new_states = []
        output = None
        for index, (layer, state, weights) in enumerate(
            zip(self.layers, states, prepared)
        ):
            if index > 0:
                inputs = output
                if active and layer.input_keep_prob < 1.0:
                    inputs = _dropout(inputs, layer.input_keep_prob)
                kernel, bias = weights[0], weights[1]
                projected = tf.linalg.matmul(inputs, kernel)
                if bias is not None:
                    projected = projected + bias
            output, new_state = self._cell_step(
                layer, projected, _as_list(state), weights
            )
            if active and layer.output_keep_prob < 1.0:
                output = _dropout(output, layer.output_keep_prob)
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

    def _run_cudnn(self, inputs, initial_state, training, mask):
        """`run` with one cuDNN kernel call per layer (see the class doc).

        Dropout is drawn per element of the whole sequence, as the loop
        draws it per step. cuDNN rejects empty sequences, so those run for
        one step and get their zero outputs and initial state back after.
        """
        num_steps = tf.shape(inputs)[1]
        kernel_mask = lengths = None
        if mask is not None:
            mask = tf.cast(mask, tf.bool)
            lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
            kernel_mask = tf.sequence_mask(tf.maximum(lengths, 1), maxlen=num_steps)
        states = tf.nest.map_structure(
            lambda t: tf.cast(t, self.dtype), _nested_lists(initial_state)
        )
        active = self._active(training)
        outputs = tf.cast(self.input_dropout(inputs, training), self.dtype)
        final_states = []
        for index, (layer, state) in enumerate(zip(self.layers, states)):
            if index > 0 and active and layer.input_keep_prob < 1.0:
                outputs = _dropout(outputs, layer.input_keep_prob)
            cell = layer.cell
            kernel, recurrent, bias = self._weights(layer)
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
                outputs = _dropout(outputs, layer.output_keep_prob)
            final_states.append(list(new_state))
        if mask is not None:
            outputs = tf.where(mask[:, :, None], outputs, tf.zeros_like(outputs))
            empty = tf.equal(lengths, 0)[:, None]
            final_states = tf.nest.map_structure(
                lambda new, old: tf.where(empty, old, new), final_states, states
            )
        return outputs, final_states


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
                outputs[index], states[index] = recurrence._run_cudnn(
                    values, state, training, mask
                )
                continue
            except NotImplementedError:
                # Keras declined this configuration: loop instead.
                logging.debug("cuDNN RNN declined; using the step loop.")
        looped.append(index)
    if not looped:
        return outputs, states

    num_steps = tf.shape(inputs[looped[0]])[1]
    step_inputs, prepared, arrays, loop_states = [], [], [], []
    for index in looped:
        recurrence = recurrences[index]
        step_inputs.append(
            time_steps(recurrence.project_inputs(inputs[index], training))
        )
        prepared.append(recurrence.prepare())
        arrays.append(tf.TensorArray(recurrence.dtype, size=num_steps))
        loop_states.append(
            tf.nest.map_structure(
                lambda t, dtype=recurrence.dtype: tf.cast(t, dtype),
                _nested_lists(initial_states[index]),
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
            output, new_state = recurrences[index].step(
                step_inputs[position].read(time), state, prepared[position], training
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


_TANH = (keras.activations.tanh, keras.ops.tanh, tf.tanh, tf.math.tanh)
_SIGMOID = (keras.activations.sigmoid, keras.ops.sigmoid, tf.sigmoid, tf.math.sigmoid)


_CUDNN_SWITCH = threading.local()


@contextlib.contextmanager
def cudnn_disabled():
    """Keeps `FusedRecurrence.run` on its own loop within the block.

    For code that is traced for XLA (`jit_compile`): XLA has no cuDNN RNN
    kernel, so a function compiled with it must not contain one. The switch
    is per thread and applies while the code is traced.
    """
    _CUDNN_SWITCH.disabled = getattr(_CUDNN_SWITCH, "disabled", 0) + 1
    try:
        yield
    finally:
        _CUDNN_SWITCH.disabled -= 1


def _gpu_visible():
    """Whether TensorFlow sees a GPU (the cuDNN kernels run only there)."""
    return bool(tf.config.list_logical_devices("GPU"))


def _nested_lists(state):
    """A cell state as lists of lists (tuples accepted on input)."""
    return [_as_list(layer) for layer in _as_list(state)]
