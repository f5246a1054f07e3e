"""Bridges: how the encoder's result becomes the decoder's initial cell state.

A bridge is built once per model and called once per batch. It is a Keras
layer (so that the weights of `InitialStateBridge` are tracked by the model
and saved in checkpoints) and a `Configurable`.

State structure: `decoder_state_size` is the decoder cell's `state_size`, a
nest of ints. For cells from `seq2seq.rnn.get_rnn_cell` it is a list with
one list per layer, e.g. `[[256]]` (one GRU layer) or `[[512, 512],
[512, 512]]` (two LSTM layers); a plain int or any other nest works too. A
bridge returns a nest of the same structure whose leaves are `[B, n]` tensors.

Constructor: both the original's argument order
`Bridge(encoder_outputs, decoder_state_size, params, mode)` and the order of
the rest of this package `Bridge(params, mode, decoder_state_size=...,
encoder_outputs=None)` are accepted. The encoder outputs given at
construction are only a default for calls without arguments.

Calling: `bridge(encoder_outputs=None, batch_size=None, training=None)`
returns the initial state; without `encoder_outputs` the ones given at
construction are used (the original's `bridge()`).
"""

import math

import keras
import tensorflow as tf

from seq2seq.configurable import Configurable, ModeKeys
from seq2seq.encoders.encoder import EncoderOutput
from seq2seq.errors import ConfigError
from seq2seq.layers.composite import CompositeLayer
from seq2seq.rnn import resolve_activation

__all__ = ["Bridge", "InitialStateBridge", "PassThroughBridge", "ZeroBridge"]


def _sizes(state_size):
    """The flat list of int state sizes of a `state_size` nest."""
    return [int(size) for size in tf.nest.flatten(state_size)]


def _bind_arguments(args, kwargs):
    """Maps either constructor argument order to named values."""
    names_original = ("encoder_outputs", "decoder_state_size", "params", "mode")
    names_package = ("params", "mode", "decoder_state_size", "encoder_outputs")
    names = names_original
    if len(args) >= 2 and isinstance(args[1], str):
        # (params, mode, ...): a mode string is never a state size.
        names = names_package
    if len(args) > len(names):
        raise TypeError(f"a bridge takes at most 4 arguments, got {len(args)}")
    bound = dict(zip(names, args))
    for key, value in kwargs.items():
        if key not in names_original:
            raise TypeError(f"unexpected bridge argument '{key}'")
        if key in bound:
            raise TypeError(f"bridge argument '{key}' given twice")
        bound[key] = value
    if bound.get("decoder_state_size") is None:
        raise TypeError("a bridge needs decoder_state_size (the decoder cell's)")
    bound.setdefault("encoder_outputs", None)
    bound.setdefault("params", None)
    bound.setdefault("mode", ModeKeys.TRAIN)
    return bound


def _batch_size(encoder_outputs):
    """The dynamic batch size of an `EncoderOutput`."""
    for field in ("final_state", "outputs", "attention_values"):
        leaves = tf.nest.flatten(getattr(encoder_outputs, field, None))
        leaves = [leaf for leaf in leaves if leaf is not None]
        if leaves:
            return tf.shape(leaves[0])[0]
    raise ValueError("cannot find the batch size: the encoder output has no tensors")


def _structure(nest):
    """A short text of a nest's structure with its sizes, for messages."""

    def describe(leaf):
        if isinstance(leaf, int):
            return leaf
        shape = getattr(leaf, "shape", None)
        return f"[B,{shape[-1]}]" if shape is not None else leaf

    return str(tf.nest.map_structure(describe, nest)).replace("'", "")


class Bridge(Configurable, CompositeLayer):
    """Base class of bridges.

    Subclasses implement `default_params()` and `_create(encoder_outputs,
    batch_size)`.

    Args (either order, see the module docstring):
      encoder_outputs: An `EncoderOutput` used when the bridge is called
        without one (may be None).
      decoder_state_size: The decoder cell's `state_size`, a nest of ints.
      params: The bridge's params.
      mode: `train`, `eval` or `infer`.
      name: Optional layer name (keyword only).
    """

    def __init__(self, *args, name=None, **kwargs):
        bound = _bind_arguments(args, kwargs)
        keras.layers.Layer.__init__(self, name=name)
        Configurable.__init__(self, bound["params"], bound["mode"])
        # Plain attributes: Keras must neither wrap the size lists nor track
        # the (possibly symbolic) encoder tensors.
        object.__setattr__(self, "decoder_state_size", bound["decoder_state_size"])
        object.__setattr__(self, "encoder_outputs", bound["encoder_outputs"])
        _sizes(self.decoder_state_size)  # fails early on a malformed nest
        # Lengths come from `attention_values_length`; Keras masks riding on
        # the encoder tensors are accepted and not propagated.
        self.supports_masking = True

    @staticmethod
    def default_params():
        return {}

    def __call__(self, encoder_outputs=None, batch_size=None, training=None):
        """Returns the decoder's initial cell state.

        Args:
          encoder_outputs: An `EncoderOutput`; defaults to the one given at
            construction.
          batch_size: Optional batch size (a scalar); taken from the encoder
            outputs when None.
          training: Unused by the bridges here; passed on for subclasses.

        Returns:
          A nest with the structure of `decoder_state_size` of [B, n]
          tensors.
        """
        if encoder_outputs is None:
            encoder_outputs = self.encoder_outputs
        if encoder_outputs is None:
            raise ValueError(
                f"{type(self).__name__}: no encoder outputs given at construction "
                "or call"
            )
        encoder_outputs = EncoderOutput(*encoder_outputs)
        # Checked here, not in `call`, so that a user error keeps its
        # one-line message (Keras decorates errors raised inside `call`).
        self._check(encoder_outputs)
        if batch_size is None:
            batch_size = _batch_size(encoder_outputs)
        # Keras only takes tensors positionally.
        batch_size = tf.cast(batch_size, tf.int32)
        return keras.layers.Layer.__call__(
            self, encoder_outputs, batch_size, training=training
        )

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def call(self, encoder_outputs, batch_size, training=None):
        del training
        return self._create(EncoderOutput(*encoder_outputs), batch_size)

    def _check(self, encoder_outputs):
        """Raises ConfigError if the encoder outputs cannot be bridged."""
        del encoder_outputs  # Every encoder output fits by default.

    def _create(self, encoder_outputs, batch_size):
        """Computes the initial state; implemented by subclasses."""
        raise NotImplementedError


class ZeroBridge(Bridge):
    """Starts the decoder from zeros; the encoder state is not used.

    Params: none.
    """

    def _create(self, encoder_outputs, batch_size):
        return tf.nest.map_structure(
            lambda size: tf.zeros([batch_size, int(size)], dtype=self.compute_dtype),
            self.decoder_state_size,
        )


class PassThroughBridge(Bridge):
    """Hands the encoder's final state to the decoder unchanged.

    Needs the encoder and decoder cells to have the same state structure
    and sizes (e.g. the same `rnn_cell` block; lists and tuples are treated
    alike). A bidirectional encoder's `(forward, backward)` state does not
    fit a unidirectional decoder; use `InitialStateBridge` there.

    Params: none.
    """

    def _check(self, encoder_outputs):
        state = encoder_outputs.final_state
        expected = self.decoder_state_size
        problem = None
        try:
            tf.nest.assert_same_structure(state, expected, check_types=False)
        except (ValueError, TypeError):
            problem = "structure"
        if problem is None:
            for leaf, size in zip(tf.nest.flatten(state), _sizes(expected)):
                if leaf.shape[-1] is not None and int(leaf.shape[-1]) != size:
                    problem = "sizes"
                    break
        if problem is not None:
            raise ConfigError(
                f"PassThroughBridge: the encoder final state {_structure(state)} "
                f"does not match the decoder state size {_structure(expected)} "
                f"(different {problem}). Give encoder and decoder the same "
                "rnn_cell, or use bridge.class: InitialStateBridge or ZeroBridge."
            )

    def _create(self, encoder_outputs, batch_size):
        flat = tf.nest.flatten(encoder_outputs.final_state)
        return tf.nest.pack_sequence_as(self.decoder_state_size, flat)


class InitialStateBridge(Bridge):
    """Projects an encoder result to the decoder's initial state.

    The chosen input is flattened to one [B, D] vector per sequence, passed
    through one dense layer of `sum(decoder state sizes)` units with the
    given activation, and split into the decoder's state structure. Works
    between any encoder and decoder cells (e.g. a bidirectional GRU state
    `([[h]], [[h]])` into a two-layer LSTM decoder `[[H, H], [H, H]]`).

    Params:
      bridge_input: `final_state` (all leaves of the encoder's final state,
        concatenated), `outputs` or `attention_values` (the vector at each
        sequence's last valid position, found with
        `attention_values_length`; the original flattened the whole padded
        sequence instead, which needs a fixed length).
      activation_fn: The activation of the dense layer: a dotted name as in
        the original (`tensorflow.identity`, `tensorflow.tanh`,
        `tensorflow.nn.relu`) or a Keras name (`tanh`). Default identity.

    The dense layer is created with the bridge (attribute `dense`) and built
    on the first call.
    """

    _INPUTS = ("final_state", "outputs", "attention_values")

    def __init__(self, *args, name=None, **kwargs):
        super().__init__(*args, name=name, **kwargs)
        if self.params["bridge_input"] not in self._INPUTS:
            raise ConfigError(
                f"InitialStateBridge: unknown bridge_input "
                f"'{self.params['bridge_input']}'. Use one of "
                f"{', '.join(self._INPUTS)}."
            )
        activation = resolve_activation(
            self.params["activation_fn"], "InitialStateBridge.activation_fn"
        )
        self.dense = keras.layers.Dense(
            sum(_sizes(self.decoder_state_size)),
            activation=activation,
            name="bridge_projection",
        )

    @staticmethod
    def default_params():
        return {"bridge_input": "final_state", "activation_fn": "tensorflow.identity"}

    def _check(self, encoder_outputs):
        choice = self.params["bridge_input"]
        leaves = tf.nest.flatten(getattr(encoder_outputs, choice))
        if not leaves or any(leaf is None for leaf in leaves):
            raise ConfigError(
                f"InitialStateBridge: the encoder gives no {choice}; "
                "set bridge_input to one it provides."
            )

    def _bridge_input(self, encoder_outputs):
        """The chosen encoder result as one [B, D] tensor."""
        choice = self.params["bridge_input"]
        value = getattr(encoder_outputs, choice)
        if choice == "final_state":
            leaves = []
            for leaf in tf.nest.flatten(value):
                depth = math.prod(int(d) for d in leaf.shape[1:])
                leaves.append(tf.reshape(leaf, [-1, depth]))
            return tf.concat(leaves, axis=-1) if len(leaves) > 1 else leaves[0]
        lengths = encoder_outputs.attention_values_length
        if lengths is None:
            last = tf.fill([tf.shape(value)[0]], tf.shape(value)[1])
        else:
            last = tf.cast(lengths, tf.int32)
        index = tf.maximum(last - 1, 0)
        return tf.gather(value, index, axis=1, batch_dims=1)

    def _create(self, encoder_outputs, batch_size):
        flat = self.dense(self._bridge_input(encoder_outputs))
        parts = tf.split(flat, _sizes(self.decoder_state_size), axis=-1)
        return tf.nest.pack_sequence_as(self.decoder_state_size, parts)
