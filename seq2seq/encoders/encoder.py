"""The encoder interface: what every encoder takes and returns."""

import collections

import keras
import tensorflow as tf

from seq2seq.configurable import Configurable
from seq2seq.layers.composite import CompositeLayer

EncoderOutput = collections.namedtuple(
    "EncoderOutput",
    ["outputs", "final_state", "attention_values", "attention_values_length"],
)
EncoderOutput.__doc__ = """What an encoder hands to the bridge and the decoder.

Fields:
  outputs: [B, S, D] per-position outputs (exactly zero at padded positions
    for the RNN encoders).
  final_state: A nest of [B, ...] tensors summarising each sequence (for RNN
    encoders, the cell state after the last valid position), or None.
  attention_values: [B, S, Dv] what an attention decoder reads.
  attention_values_length: [B] int32 number of valid positions.
"""


class Encoder(Configurable, CompositeLayer):
    """Base class of encoders: a configurable Keras layer.

    Subclasses implement `default_params()` and `call(inputs,
    sequence_length, training=None)`, and create their sublayers in the
    constructor so that they are tracked for checkpoints from the start.

    Args:
      params: The encoder's params (merged over `default_params()`).
      mode: `train`, `eval` or `infer`.
      name: The layer name.
    """

    def __init__(self, params, mode, name="encoder"):
        keras.layers.Layer.__init__(self, name=name)
        Configurable.__init__(self, params, mode)
        # Encoders read `sequence_length`; a Keras mask on the inputs (e.g.
        # from an Embedding with mask_zero) is accepted and not propagated.
        self.supports_masking = True

    def compute_mask(self, inputs, previous_mask=None):
        return None

    @staticmethod
    def default_params():
        raise NotImplementedError

    def __call__(self, inputs, sequence_length=None, *args, **kwargs):
        # Keras only takes tensors positionally; accept lists and arrays of
        # lengths as well.
        if sequence_length is not None:
            sequence_length = tf.convert_to_tensor(sequence_length)
        return super().__call__(inputs, sequence_length, *args, **kwargs)

    def call(self, inputs, sequence_length, training=None):
        """Encodes a batch of sequences.

        Args:
          inputs: [B, S, E] float embeddings (padded).
          sequence_length: [B] int32 number of valid positions per sequence.
          training: Whether dropout is active (it also needs mode `train`).

        Returns:
          An `EncoderOutput`.
        """
        raise NotImplementedError

    def encode(self, inputs, sequence_length, training=None):
        """Same as calling the layer (the original's method name)."""
        return self(inputs, sequence_length, training=training)
