"""ConvEncoder: two stacks of residual tanh convolutions over the embeddings.

The deep convolutional encoder of Gehring et al. 2016, "A Convolutional
Encoder Model for Neural Machine Translation"
(https://arxiv.org/abs/1611.02344). One stack ("CNN-a") computes the
attention keys, the other ("CNN-c") the values the attention averages.

Padding: every convolution sees zeros at and after each sequence's end, as
if the sequence were not padded at all, so a sequence's outputs do not
depend on the padding of its batch; outputs at padded positions are zero.
"""

import keras
import tensorflow as tf

from seq2seq.encoders.encoder import EncoderOutput
from seq2seq.encoders.pooling_encoder import (
    _PositionEmbeddingEncoder,
    masked_mean,
)

__all__ = ["ConvEncoder"]

# (params prefix, attribute prefix) of the two stacks.
_STACKS = (("attention_cnn", "cnn_a"), ("output_cnn", "cnn_c"))


class ConvEncoder(_PositionEmbeddingEncoder):
    """Two convolution stacks over the (position-embedded) embeddings.

    Each stack has `layers` 1-D convolutions with `units` filters, a window
    of `kernel_size` and 'same' padding; every layer is followed by `tanh`,
    and every layer but the first adds its input before the `tanh`:
    `x <- tanh(conv(x) + x)` (the first: `x <- tanh(conv(x))`).

    Params:
      attention_cnn.units: Filters of every layer of the key stack (512).
      attention_cnn.kernel_size: Its window size (3).
      attention_cnn.layers: Its number of layers (15).
      embedding_dropout_keep_prob: Keep probability of the dropout on the
        embeddings after the position embeddings are combined (0.8; only in
        mode `train` while training).
      output_cnn.units: Filters of every layer of the value stack (256).
      output_cnn.kernel_size: Its window size (3).
      output_cnn.layers: Its number of layers (5).
      position_embeddings.enable: Combine the fixed position encoding with
        the embeddings (true).
      position_embeddings.combiner_fn: How: `tensorflow.multiply` (default)
        or `tensorflow.add` (also `multiply`, `add`).
      position_embeddings.num_positions: Rows of the position encoding (100);
        the longest source the encoder accepts.

    A stack with 0 layers passes the embeddings through.

    Output: `outputs` [B, S, attention_cnn.units] the key stack's output,
    `attention_values` [B, S, output_cnn.units] the value stack's output,
    `final_state` [B, output_cnn.units] the mean of the value stack's output
    over the valid positions, `attention_values_length` the lengths.
    """

    _DROPOUT_KEY = "embedding_dropout_keep_prob"

    def __init__(self, params, mode, name="conv_encoder"):
        super().__init__(params, mode, name)
        counts = {}
        for stack, prefix in _STACKS:
            self._check_positive(f"{stack}.units")
            self._check_positive(f"{stack}.kernel_size")
            self._check_positive(f"{stack}.layers", minimum=0)
            counts[prefix] = self.params[f"{stack}.layers"]
            # One attribute per layer: tf.train.Checkpoint does not follow
            # the lists Keras 3 layers keep.
            for i in range(counts[prefix]):
                setattr(
                    self,
                    f"{prefix}_{i}",
                    keras.layers.Conv1D(
                        self.params[f"{stack}.units"],
                        self.params[f"{stack}.kernel_size"],
                        padding="same",
                        name=f"{prefix}_conv_{i}",
                    ),
                )
        # A plain dict, kept out of Keras' attribute tracking.
        object.__setattr__(self, "_stack_sizes", counts)

    @staticmethod
    def default_params():
        return {
            "attention_cnn.units": 512,
            "attention_cnn.kernel_size": 3,
            "attention_cnn.layers": 15,
            "embedding_dropout_keep_prob": 0.8,
            "output_cnn.units": 256,
            "output_cnn.kernel_size": 3,
            "output_cnn.layers": 5,
            "position_embeddings.enable": True,
            "position_embeddings.combiner_fn": "tensorflow.multiply",
            "position_embeddings.num_positions": 100,
        }

    def _stack_layers(self, prefix):
        return [
            getattr(self, f"{prefix}_{i}") for i in range(self._stack_sizes[prefix])
        ]

    @property
    def attention_cnn_layers(self):
        """The `keras.layers.Conv1D` layers of the key stack ("CNN-a")."""
        return self._stack_layers("cnn_a")

    @property
    def output_cnn_layers(self):
        """The `keras.layers.Conv1D` layers of the value stack ("CNN-c")."""
        return self._stack_layers("cnn_c")

    @staticmethod
    def _run_stack(layers, inputs, mask):
        """Runs one stack; `inputs` [B, S, E] and the result are zero at padding."""
        values = inputs
        for i, conv in enumerate(layers):
            summed = conv(values)
            if i > 0:
                summed = summed + values
            # Zero the padding again so that the next layer (and the caller)
            # sees zeros after each sequence's end.
            values = tf.tanh(summed) * mask
        return values

    def call(self, inputs, sequence_length, training=None):
        inputs, lengths, mask = self._prepare_inputs(inputs, sequence_length, training)
        keys = self._run_stack(self.attention_cnn_layers, inputs, mask)
        values = self._run_stack(self.output_cnn_layers, inputs, mask)
        return EncoderOutput(
            outputs=keys,
            final_state=masked_mean(values, mask),
            attention_values=values,
            attention_values_length=lengths,
        )
