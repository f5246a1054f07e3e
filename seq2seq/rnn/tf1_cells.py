"""Keras ports of the TF1 cells the original reached through `tf.contrib.rnn`.

* `TF1LSTMCell`: TF1's `LSTMCell` with its optional peephole connections,
  cell-state clipping and output projection (the plain case maps to
  `keras.layers.LSTMCell`).
* `CoupledInputForgetGateLSTMCell`: an LSTM whose input gate is one minus
  its forget gate (CIFG, Greff et al. 2015).
* `NASCell`: the recurrent cell found by neural architecture search (Zoph &
  Le, 2017).
* `UGRNNCell`: the update-gate RNN (Collins et al., 2017).

All follow TF1's math (a constant `forget_bias` added to the forget-gate
pre-activation, zero-initialised biases) and the package's state
convention: Keras order `[h, c]` for the LSTM-like cells, where `h` is the
(projected) output of width `num_proj` or `units` and `c` the cell state of
width `units`; `[h]` for `UGRNNCell`. Their gate layouts are their own, so
`seq2seq.rnn.FusedRecurrence` does not run them; encoders and decoders step
them through the generic per-step path.
"""

import keras
import tensorflow as tf

from seq2seq.rnn.activations import resolve_activation

__all__ = [
    "CoupledInputForgetGateLSTMCell",
    "NASCell",
    "TF1LSTMCell",
    "UGRNNCell",
]


def _positive_int(value, what):
    value = int(value)
    if value <= 0:
        raise ValueError(f"{what} must be a positive integer, got {value}")
    return value


def _optional_clip(value, what):
    """None, or a positive float clipping bound."""
    if value is None:
        return None
    value = float(value)
    if value <= 0.0:
        raise ValueError(f"{what} must be a positive number or None, got {value}")
    return value


def _activation_name(function):
    """A config value naming an activation callable (e.g. `tanh`)."""
    return getattr(function, "__name__", "tanh")


class _TF1Cell(keras.layers.Layer):
    """What the cells here share: units, initialisers, zero state, config.

    Args:
      units: Number of units H of the cell state.
      kernel_initializer: Initialiser of the input kernel.
      recurrent_initializer: Initialiser of the recurrent kernel.
      bias_initializer: Initialiser of the bias.
      **kwargs: Keras layer arguments (`name`, `dtype`, ...).
    """

    def __init__(
        self,
        units,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = _positive_int(units, "units")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def get_initial_state(self, batch_size=None):
        """Zero state: one [B, size] tensor per entry of `state_size`."""
        return [
            tf.zeros([batch_size, size], dtype=self.compute_dtype)
            for size in self.state_size
        ]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "recurrent_initializer": keras.initializers.serialize(
                    self.recurrent_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config


class _ProjectedLSTM(_TF1Cell):
    """The parts of TF1's `LSTMCell` and CIFG cell they have in common:
    peepholes, cell clipping, the output projection and its clipping.

    Subclasses set `_GATES` (gate blocks of the kernels) and `_PEEPHOLES`
    (the gates with a peephole weight) and implement `call`.

    Args:
      units: Number of units H.
      use_peepholes: Add diagonal peephole connections from the cell state.
      cell_clip: If set, the cell state is clipped to `[-cell_clip,
        cell_clip]` before the output nonlinearity.
      num_proj: If set, the output `h` is projected to this width P (and
        fed back as the recurrent input).
      proj_clip: If set (with `num_proj`), the projected output is clipped
        to `[-proj_clip, proj_clip]`.
      forget_bias: Constant added to the forget-gate pre-activation.
      activation: The cell and output nonlinearity (default tanh).
      kernel_initializer: Initialiser of the input kernel and peepholes.
      recurrent_initializer: Initialiser of the recurrent kernel.
      bias_initializer: Initialiser of the bias (zeros, as in TF1).
      projection_initializer: Initialiser of the projection [H, P]; the
        kernel initialiser when None.
      **kwargs: Keras layer arguments.
    """

    _GATES = 4
    _PEEPHOLES = ()

    def __init__(
        self,
        units,
        use_peepholes=False,
        cell_clip=None,
        num_proj=None,
        proj_clip=None,
        forget_bias=1.0,
        activation="tanh",
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        projection_initializer=None,
        **kwargs,
    ):
        super().__init__(
            units,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            **kwargs,
        )
        self.use_peepholes = bool(use_peepholes)
        self.cell_clip = _optional_clip(cell_clip, "cell_clip")
        self.num_proj = (
            None if num_proj is None else _positive_int(num_proj, "num_proj")
        )
        self.proj_clip = _optional_clip(proj_clip, "proj_clip")
        if self.proj_clip is not None and self.num_proj is None:
            raise ValueError("proj_clip needs num_proj (it clips the projection)")
        self.forget_bias = float(forget_bias)
        self.activation = resolve_activation(activation)
        self.projection_initializer = (
            self.kernel_initializer
            if projection_initializer is None
            else keras.initializers.get(projection_initializer)
        )
        self.output_size = self.num_proj or self.units
        self.state_size = [self.output_size, self.units]

    def build(self, input_shape):
        gates = self._GATES * self.units
        self.kernel = self.add_weight(
            shape=(input_shape[-1], gates),
            initializer=self.kernel_initializer,
            name="kernel",
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.output_size, gates),
            initializer=self.recurrent_initializer,
            name="recurrent_kernel",
        )
        self.bias = self.add_weight(
            shape=(gates,), initializer=self.bias_initializer, name="bias"
        )
        if self.use_peepholes:
            # One attribute per vector (not a dict) so that tf.train.Checkpoint
            # finds them.
            for gate in self._PEEPHOLES:
                weight = self.add_weight(
                    shape=(self.units,),
                    initializer=self.kernel_initializer,
                    name=f"peephole_{gate}",
                )
                setattr(self, f"peephole_{gate}", weight)
        self.projection = None
        if self.num_proj is not None:
            self.projection = self.add_weight(
                shape=(self.units, self.num_proj),
                initializer=self.projection_initializer,
                name="projection",
            )

    def _peephole(self, gate, cell_state):
        """The peephole term of `gate` ([B, H]), or 0 without peepholes."""
        if not self.use_peepholes:
            return 0.0
        return getattr(self, f"peephole_{gate}") * cell_state

    def _output(self, c, o):
        """Clips `c`, then `(h [B, P or H], [h, c])` from the output gate
        pre-activation `o` [B, H]."""
        if self.cell_clip is not None:
            c = tf.clip_by_value(c, -self.cell_clip, self.cell_clip)
        h = tf.sigmoid(o + self._peephole("o", c)) * self.activation(c)
        if self.projection is not None:
            h = tf.matmul(h, self.projection)
            if self.proj_clip is not None:
                h = tf.clip_by_value(h, -self.proj_clip, self.proj_clip)
        return h, [h, c]

    def _preactivations(self, inputs, h_prev):
        z = tf.matmul(inputs, self.kernel) + tf.matmul(h_prev, self.recurrent_kernel)
        return tf.split(z + self.bias, self._GATES, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "use_peepholes": self.use_peepholes,
                "cell_clip": self.cell_clip,
                "num_proj": self.num_proj,
                "proj_clip": self.proj_clip,
                "forget_bias": self.forget_bias,
                "activation": _activation_name(self.activation),
                "projection_initializer": keras.initializers.serialize(
                    self.projection_initializer
                ),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="seq2seq")
class TF1LSTMCell(_ProjectedLSTM):
    """TF1's `LSTMCell` with peepholes, cell clipping and projection.

    One step, gates stacked `[i, f, c, o]` in the kernels (Keras order)::

        i, f, g, o = split(x @ W + h_prev @ U + b)
        c = sigmoid(f + forget_bias + p_f * c_prev) * c_prev
            + sigmoid(i + p_i * c_prev) * act(g)
        c = clip(c, cell_clip)                       # if cell_clip
        h = sigmoid(o + p_o * c) * act(c)
        h = clip(h @ P, proj_clip)                   # if num_proj

    The `p_*` peephole vectors exist only with `use_peepholes`. The state
    is `[h [B, P], c [B, H]]` (P = `num_proj` or H) and the output is `h`.
    Weights: `kernel` [E, 4H], `recurrent_kernel` [P, 4H], `bias` [4H]
    (zeros), `peephole_i/f/o` [H], `projection` [H, P].

    Args: see `_ProjectedLSTM`.
    """

    _GATES = 4
    _PEEPHOLES = ("i", "f", "o")

    def call(self, inputs, states, training=None):
        """One step.

        Args:
          inputs: [B, E].
          states: `[h [B, P], c [B, H]]`.
          training: Unused (the cell has no dropout).

        Returns:
          `(h [B, P], [h, c])`.
        """
        h_prev, c_prev = states[0], states[1]
        i, f, g, o = self._preactivations(inputs, h_prev)
        forget = tf.sigmoid(f + self.forget_bias + self._peephole("f", c_prev))
        write = tf.sigmoid(i + self._peephole("i", c_prev))
        c = forget * c_prev + write * self.activation(g)
        return self._output(c, o)


@keras.saving.register_keras_serializable(package="seq2seq")
class CoupledInputForgetGateLSTMCell(_ProjectedLSTM):
    """TF1's `CoupledInputForgetGateLSTMCell`: an LSTM whose input gate is
    `1 - forget gate` (one gate fewer than an LSTM).

    One step, gates stacked `[f, c, o]`::

        f, g, o = split(x @ W + h_prev @ U + b)
        forget = sigmoid(f + forget_bias + p_f * c_prev)
        c = forget * c_prev + (1 - forget) * act(g)
        c = clip(c, cell_clip)                       # if cell_clip
        h = sigmoid(o + p_o * c) * act(c)
        h = clip(h @ P, proj_clip)                   # if num_proj

    Peepholes (`use_peepholes`) are on the forget and output gates, as in
    TF1; `cell_clip` is an addition (TF1's CIFG cell had none). State `[h [B, P], c [B, H]]`; weights `kernel` [E, 3H],
    `recurrent_kernel` [P, 3H], `bias` [3H], `peephole_f/o` [H],
    `projection` [H, P].

    Args: see `_ProjectedLSTM`.
    """

    _GATES = 3
    _PEEPHOLES = ("f", "o")

    def call(self, inputs, states, training=None):
        """One step: `(h [B, P], [h, c])` from `inputs` [B, E] and
        `states` `[h [B, P], c [B, H]]`; `training` is unused."""
        h_prev, c_prev = states[0], states[1]
        f, g, o = self._preactivations(inputs, h_prev)
        forget = tf.sigmoid(f + self.forget_bias + self._peephole("f", c_prev))
        c = forget * c_prev + (1.0 - forget) * self.activation(g)
        return self._output(c, o)


@keras.saving.register_keras_serializable(package="seq2seq")
class NASCell(_TF1Cell):
    """The recurrent cell of Zoph & Le (2017), "Neural Architecture Search
    with Reinforcement Learning", as TF1's `NASCell` computes it.

    Both the input and the previous output are projected to eight blocks of
    H units, `a_k = x @ W_k` and `b_k = h_prev @ U_k (+ bias_k)`; then::

        l1 = [sig(a0 + b0), relu(a1 + b1), sig(a2 + b2), relu(a3 * b3),
              tanh(a4 + b4), sig(a5 + b5), tanh(a6 + b6), sig(a7 + b7)]
        l2_0 = tanh(tanh(l1[0] * l1[1]) + c_prev)
        c = l2_0 * tanh(l1[2] + l1[3])
        h = tanh(c * tanh(tanh(l1[4] * l1[5]) + sig(l1[6] + l1[7])))
        h = h @ P                                    # if num_proj

    (note the product in the fourth block). State `[h [B, P], c [B, H]]`;
    weights `kernel` [E, 8H], `recurrent_kernel` [P, 8H], `bias` [8H] (only
    with `use_bias`, added to the recurrent part), `projection` [H, P].

    Args:
      units: Number of units H.
      num_proj: Optional output projection width P.
      use_bias: Whether to learn a bias (TF1's `use_biases`, default False).
      kernel_initializer: Initialiser of the input kernel.
      recurrent_initializer: Initialiser of the recurrent kernel.
      bias_initializer: Initialiser of the bias.
      projection_initializer: Initialiser of the projection; the kernel
        initialiser when None.
      **kwargs: Keras layer arguments.
    """

    def __init__(
        self,
        units,
        num_proj=None,
        use_bias=False,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        projection_initializer=None,
        **kwargs,
    ):
        super().__init__(
            units,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            **kwargs,
        )
        self.num_proj = (
            None if num_proj is None else _positive_int(num_proj, "num_proj")
        )
        self.use_bias = bool(use_bias)
        self.projection_initializer = (
            self.kernel_initializer
            if projection_initializer is None
            else keras.initializers.get(projection_initializer)
        )
        self.output_size = self.num_proj or self.units
        self.state_size = [self.output_size, self.units]

    def build(self, input_shape):
        blocks = 8 * self.units
        self.kernel = self.add_weight(
            shape=(input_shape[-1], blocks),
            initializer=self.kernel_initializer,
            name="kernel",
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.output_size, blocks),
            initializer=self.recurrent_initializer,
            name="recurrent_kernel",
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(blocks,), initializer=self.bias_initializer, name="bias"
            )
        self.projection = None
        if self.num_proj is not None:
            self.projection = self.add_weight(
                shape=(self.units, self.num_proj),
                initializer=self.projection_initializer,
                name="projection",
            )

    def call(self, inputs, states, training=None):
        """One step: `(h [B, P], [h, c])` from `inputs` [B, E] and
        `states` `[h [B, P], c [B, H]]`; `training` is unused."""
        h_prev, c_prev = states[0], states[1]
        recurrent = tf.matmul(h_prev, self.recurrent_kernel)
        if self.bias is not None:
            recurrent = recurrent + self.bias
        a = tf.split(tf.matmul(inputs, self.kernel), 8, axis=-1)
        b = tf.split(recurrent, 8, axis=-1)
        sig, tanh, relu = tf.sigmoid, tf.tanh, tf.nn.relu
        first = [
            sig(a[0] + b[0]),
            relu(a[1] + b[1]),
            sig(a[2] + b[2]),
            relu(a[3] * b[3]),
            tanh(a[4] + b[4]),
            sig(a[5] + b[5]),
            tanh(a[6] + b[6]),
            sig(a[7] + b[7]),
        ]
        with_cell = tanh(tanh(first[0] * first[1]) + c_prev)
        c = with_cell * tanh(first[2] + first[3])
        right = tanh(tanh(first[4] * first[5]) + sig(first[6] + first[7]))
        h = tanh(c * right)
        if self.projection is not None:
            h = tf.matmul(h, self.projection)
        return h, [h, c]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_proj": self.num_proj,
                "use_bias": self.use_bias,
                "projection_initializer": keras.initializers.serialize(
                    self.projection_initializer
                ),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="seq2seq")
class UGRNNCell(_TF1Cell):
    """The update-gate RNN of Collins et al. (2017), "Capacity and
    Trainability in Recurrent Neural Networks", as TF1's `UGRNNCell`.

    One step, blocks stacked `[g, c]`::

        g, c = split(x @ W + h_prev @ U + b)
        gate = sigmoid(g + forget_bias)
        h = gate * h_prev + (1 - gate) * act(c)

    State `[h [B, H]]`, output `h`; weights `kernel` [E, 2H],
    `recurrent_kernel` [H, 2H], `bias` [2H] (zeros).

    Args:
      units: Number of units H.
      forget_bias: Constant added to the gate pre-activation (default 1).
      activation: The candidate nonlinearity (default tanh).
      kernel_initializer: Initialiser of the input kernel.
      recurrent_initializer: Initialiser of the recurrent kernel.
      bias_initializer: Initialiser of the bias (zeros, as in TF1).
      **kwargs: Keras layer arguments.
    """

    def __init__(
        self,
        units,
        forget_bias=1.0,
        activation="tanh",
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(
            units,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            **kwargs,
        )
        self.forget_bias = float(forget_bias)
        self.activation = resolve_activation(activation)
        self.output_size = self.units
        self.state_size = [self.units]

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], 2 * self.units),
            initializer=self.kernel_initializer,
            name="kernel",
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, 2 * self.units),
            initializer=self.recurrent_initializer,
            name="recurrent_kernel",
        )
        self.bias = self.add_weight(
            shape=(2 * self.units,), initializer=self.bias_initializer, name="bias"
        )

    def call(self, inputs, states, training=None):
        """One step: `(h [B, H], [h])` from `inputs` [B, E] and `states`
        `[h [B, H]]`; `training` is unused."""
        h_prev = states[0]
        z = (
            tf.matmul(inputs, self.kernel)
            + tf.matmul(h_prev, self.recurrent_kernel)
            + self.bias
        )
        g, candidate = tf.split(z, 2, axis=-1)
        gate = tf.sigmoid(g + self.forget_bias)
        h = gate * h_prev + (1.0 - gate) * self.activation(candidate)
        return h, [h]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "forget_bias": self.forget_bias,
                "activation": _activation_name(self.activation),
            }
        )
        return config
