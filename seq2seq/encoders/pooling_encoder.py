"""PoolingEncoder: a window average (or maximum) over the embeddings.

The encoder of Gehring et al. 2016, "A Convolutional Encoder Model for
Neural Machine Translation" (https://arxiv.org/abs/1611.02344): every source
position is represented by the pooled embeddings of the positions around it,
optionally after fixed position embeddings are combined with the embeddings.

This module also holds the pieces the convolutional encoder shares with it:
the fixed position encoding (End-To-End Memory Networks, section 4.1,
https://arxiv.org/abs/1503.08895), the lookup of the `combiner_fn` and the
length masking helpers.

Padding: positions at or after a sequence's length never influence the
outputs at valid positions, and the outputs at padded positions are zero, so
the result for a sequence does not depend on how much padding its batch has.
"""

import numpy as np
import tensorflow as tf

from seq2seq.configurable import ModeKeys
from seq2seq.encoders.encoder import Encoder, EncoderOutput
from seq2seq.errors import ConfigError

__all__ = ["PoolingEncoder", "position_encoding"]

# ---------------------------------------------------------------- shared

_COMBINERS = {"add": tf.add, "multiply": tf.multiply}
_COMBINER_PREFIXES = ("", "tensorflow.", "tf.", "tensorflow.math.", "tf.math.")
_COMBINER_PREFIXES += ("keras.ops.",)


def resolve_combiner_fn(name, where="position_embeddings.combiner_fn"):
    """Turns a `combiner_fn` name into a function `(inputs, positions) -> [B, T, E]`.

    Accepts `add` and `multiply`, with or without a `tensorflow.`, `tf.`,
    `tensorflow.math.` or `keras.ops.` prefix (the original's names are
    `tensorflow.add` and `tensorflow.multiply`). Configs are data: no other
    function can be named.

    Raises:
      ConfigError: Any other name.
    """
    if callable(name):
        return name
    text = str(name).strip()
    for prefix in _COMBINER_PREFIXES:
        if text.startswith(prefix) and text[len(prefix) :] in _COMBINERS:
            return _COMBINERS[text[len(prefix) :]]
    raise ConfigError(
        f"{where}: unknown function '{name}'. Use tensorflow.add or "
        "tensorflow.multiply (or add / multiply); other functions cannot be "
        "named in a config."
    )


def position_encoding(num_positions, depth):
    """The fixed position encoding of End-To-End Memory Networks (sec. 4.1).

    Entry `[j - 1, k - 1]` (1-based position `j`, dimension `k`) is
    `(1 - j / J) - (k / K) * (1 - 2 j / J)` with `J = num_positions + 1` and
    `K = depth + 1`. It depends on `num_positions`, not on the length of
    the sentence it is applied to.

    Args:
      num_positions: Number of rows (the longest sequence supported).
      depth: Number of columns (the embedding size).

    Returns:
      A float32 numpy array `[num_positions, depth]`.
    """
    j = np.arange(1, num_positions + 1, dtype=np.float64)[:, None]
    k = np.arange(1, depth + 1, dtype=np.float64)[None, :]
    big_j, big_k = num_positions + 1.0, depth + 1.0
    return ((1.0 - j / big_j) - (k / big_k) * (1.0 - 2.0 * j / big_j)).astype(
        np.float32
    )


def sequence_lengths(inputs, sequence_length):
    """[B] int32 lengths; every position is valid when `sequence_length` is None."""
    if sequence_length is None:
        shape = tf.shape(inputs)
        return tf.fill([shape[0]], shape[1])
    return tf.cast(sequence_length, tf.int32)


def valid_mask(lengths, maxlen, dtype):
    """[B, T, 1] mask of the valid positions (1) and the padding (0)."""
    return tf.sequence_mask(lengths, maxlen, dtype=dtype)[:, :, None]


def masked_mean(values, mask):
    """Mean of [B, T, D] `values` over the positions where `mask` [B, T, 1] is 1.

    Returns:
      [B, D]; zero for a sequence without valid positions.
    """
    total = tf.reduce_sum(values * mask, axis=1)
    count = tf.reduce_sum(mask, axis=1)
    return tf.math.divide_no_nan(total, count)


class _PositionEmbeddingEncoder(Encoder):
    """Shared by the pooling and convolutional encoders: validation of the
    `position_embeddings.*` params, their combination with the inputs, and
    dropout on the result."""

    _DROPOUT_KEY = "dropout_keep_prob"

    def __init__(self, params, mode, name):
        super().__init__(params, mode, name)
        owner = type(self).__name__
        self._combiner_fn = resolve_combiner_fn(
            self.params["position_embeddings.combiner_fn"],
            f"{owner}: position_embeddings.combiner_fn",
        )
        if (
            self.params["position_embeddings.enable"]
            and self.params["position_embeddings.num_positions"] < 1
        ):
            raise ConfigError(
                f"{owner}: position_embeddings.num_positions must be at least 1 "
                "when position embeddings are enabled (set it to the longest "
                "source length, e.g. source.max_seq_len + 2), got "
                f"{self.params['position_embeddings.num_positions']}."
            )
        keep = self.params[self._DROPOUT_KEY]
        if not 0.0 < keep <= 1.0:
            raise ConfigError(
                f"{owner}: {self._DROPOUT_KEY} must be in (0, 1] (1.0 means no "
                f"dropout), got {keep}."
            )

    def _check_positive(self, key, minimum=1):
        value = self.params[key]
        if value < minimum:
            raise ConfigError(
                f"{type(self).__name__}: {key} must be at least {minimum}, "
                f"got {value}."
            )

    def _embed_positions(self, inputs, lengths, mask):
        """Combines the position encoding with the [B, T, E] inputs."""
        if not self.params["position_embeddings.enable"]:
            return inputs
        num_positions = self.params["position_embeddings.num_positions"]
        depth = inputs.shape[-1]
        if depth is None:
            raise ValueError("position embeddings need a static embedding size")
        steps = inputs.shape[1]
        if steps is not None and steps > num_positions:
            raise ConfigError(
                f"{type(self).__name__}: the inputs have {steps} positions but "
                f"position_embeddings.num_positions is {num_positions}; raise it "
                "or lower source.max_seq_len."
            )
        table = tf.constant(position_encoding(num_positions, int(depth)))
        maxlen = tf.shape(inputs)[1]
        check = tf.debugging.assert_less_equal(
            maxlen,
            num_positions,
            message=(
                f"{type(self).__name__}: an input is longer than "
                f"position_embeddings.num_positions ({num_positions}); raise it "
                "or lower source.max_seq_len"
            ),
        )
        # In a graph the check must run before the slice it guards, or the
        # shape error of the product below may be raised first instead.
        with tf.control_dependencies([check] if check is not None else []):
            maxlen = tf.identity(maxlen)
        positions = tf.cast(table[None, :maxlen, :], inputs.dtype) * mask
        return self._combiner_fn(inputs, positions)

    def _prepare_inputs(self, inputs, sequence_length, training):
        """The embedded inputs with positions, dropout and padding zeroed.

        Args:
          inputs: [B, T, E] embedded source tokens.
          sequence_length: [B] lengths (or None: all T).
          training: Whether dropout is active.

        Returns:
          `(inputs [B, T, E] in the compute dtype, lengths [B], mask [B, T, 1])`.
        """
        inputs = tf.cast(inputs, self.compute_dtype)
        lengths = sequence_lengths(inputs, sequence_length)
        mask = valid_mask(lengths, tf.shape(inputs)[1], inputs.dtype)
        inputs = self._embed_positions(inputs, lengths, mask)
        return self._dropout(inputs, training) * mask, lengths, mask

    def _dropout(self, inputs, training):
        keep = self.params[self._DROPOUT_KEY]
        if self.mode == ModeKeys.TRAIN and training and keep < 1.0:
            return tf.nn.dropout(inputs, rate=1.0 - keep)
        return inputs


# --------------------------------------------------------------- pooling

_POOLING_MODULES = (
    "",
    "tensorflow.layers.",
    "tf.layers.",
    "tensorflow.compat.v1.layers.",
    "tf.compat.v1.layers.",
    "tensorflow.keras.layers.",
    "tf.keras.layers.",
    "keras.layers.",
)
_POOLING_KINDS = {
    "averagepooling1d": "average",
    "avgpool1d": "average",
    "maxpooling1d": "max",
    "maxpool1d": "max",
}


def resolve_pooling_fn(name, where="pooling_fn"):
    """Maps a `pooling_fn` name to `"average"` or `"max"`.

    Accepts the original's `tensorflow.layers.average_pooling1d` and
    `tensorflow.layers.max_pooling1d`, the Keras layers
    (`keras.layers.AveragePooling1D`, `keras.layers.MaxPooling1D`, also under
    `tensorflow.keras.layers.`) and the bare names.

    Raises:
      ConfigError: Any other name.
    """
    text = str(name).strip()
    for module in _POOLING_MODULES:
        if text.startswith(module):
            rest = text[len(module) :]
            if "." not in rest:
                kind = _POOLING_KINDS.get(rest.replace("_", "").lower())
                if kind:
                    return kind
    raise ConfigError(
        f"{where}: unknown pooling function '{name}'. Use "
        "tensorflow.layers.average_pooling1d or tensorflow.layers.max_pooling1d "
        "(or keras.layers.AveragePooling1D / keras.layers.MaxPooling1D)."
    )


def _pool_same(values, mask, kind, pool_size, strides):
    """1-D pooling with 'same' padding that ignores the masked positions.

    Output position `i` pools the valid input positions among
    `[i * strides - (pool_size - 1) // 2, ... + pool_size)`: the window is
    centred like TensorFlow's 'SAME' padding with stride 1, and the same
    alignment is kept for larger strides, whatever the padded width (so
    extra batch padding cannot shift a window).

    Args:
      values: [B, T, D] inputs, zero at masked positions.
      mask: [B, T, 1] float, 1 at valid positions.
      kind: `"average"` (the mean of the valid positions in the window) or
        `"max"` (their maximum).
      pool_size: The window size.
      strides: The step between windows.

    Returns:
      `(outputs [B, ceil(T / strides), D], output_mask [B, ceil(T / strides), 1])`
      where the outputs are zero at masked output positions.
    """
    steps = tf.shape(values)[1]
    out_steps = (steps + strides - 1) // strides
    before = (pool_size - 1) // 2
    # Enough padding after the end for every window; the extra windows are
    # sliced away.
    paddings = [[0, 0], [before, pool_size], [0, 0]]
    if kind == "average":
        sums = tf.nn.avg_pool1d(tf.pad(values, paddings), pool_size, strides, "VALID")[
            :, :out_steps
        ]
        counts = tf.nn.avg_pool1d(tf.pad(mask, paddings), pool_size, strides, "VALID")[
            :, :out_steps
        ]
        pooled = tf.math.divide_no_nan(sums, counts)
    else:
        lowest = values.dtype.min
        filled = tf.where(mask > 0, values, tf.cast(lowest, values.dtype))
        pooled = tf.nn.max_pool1d(
            tf.pad(filled, paddings, constant_values=lowest),
            pool_size,
            strides,
            "VALID",
        )[:, :out_steps]
    # Output i is valid when its window centre i * strides is a valid input.
    out_mask = mask[:, ::strides][:, :out_steps]
    return tf.where(out_mask > 0, pooled, tf.zeros_like(pooled)), out_mask


class PoolingEncoder(_PositionEmbeddingEncoder):
    """Pools the (position-embedded) source embeddings over a sliding window.

    Params:
      dropout_keep_prob: Keep probability of the dropout on the embeddings
        after the position embeddings are combined (0.8; only in mode
        `train` while training).
      pooling_fn: `tensorflow.layers.average_pooling1d` (default) or
        `tensorflow.layers.max_pooling1d`; Keras names
        (`keras.layers.AveragePooling1D`, `keras.layers.MaxPooling1D`) work
        too.
      pool_size: The window size (5).
      strides: The step between windows (1).
      position_embeddings.enable: Combine the fixed position encoding with
        the embeddings before pooling (true).
      position_embeddings.combiner_fn: How: `tensorflow.multiply` (default)
        or `tensorflow.add` (also `multiply`, `add`).
      position_embeddings.num_positions: Rows of the position encoding (100);
        the longest source the encoder accepts.

    Padding: the window average divides by the number of *valid* positions in
    the window (near the end of a sequence, fewer than `pool_size`), which is
    what 'same' average pooling computes on the unpadded sequence; max
    pooling never picks a padded position. Outputs at padded positions are
    zero.

    Output: `outputs` [B, ceil(S / strides), E] the pooled embeddings,
    `final_state` [B, E] their mean over the valid output positions,
    `attention_values` [B, S, E] the embeddings after position embeddings
    and dropout (zero at padding), as in the original,
    `attention_values_length` the lengths. With `strides` > 1 the outputs
    are shorter than the attention values, so an attention model needs
    `strides: 1`.
    """

    def __init__(self, params, mode, name="pooling_encoder"):
        super().__init__(params, mode, name)
        owner = type(self).__name__
        self._pooling_kind = resolve_pooling_fn(
            self.params["pooling_fn"], f"{owner}: pooling_fn"
        )
        self._check_positive("pool_size")
        self._check_positive("strides")

    @staticmethod
    def default_params():
        return {
            "dropout_keep_prob": 0.8,
            "pooling_fn": "tensorflow.layers.average_pooling1d",
            "pool_size": 5,
            "strides": 1,
            "position_embeddings.enable": True,
            "position_embeddings.combiner_fn": "tensorflow.multiply",
            "position_embeddings.num_positions": 100,
        }

    @property
    def pooling_kind(self):
        """`"average"` or `"max"`."""
        return self._pooling_kind

    def call(self, inputs, sequence_length, training=None):
        inputs, lengths, mask = self._prepare_inputs(inputs, sequence_length, training)
        outputs, out_mask = _pool_same(
            inputs,
            mask,
            self._pooling_kind,
            self.params["pool_size"],
            self.params["strides"],
        )
        return EncoderOutput(
            outputs=outputs,
            final_state=masked_mean(outputs, out_mask),
            attention_values=inputs,
            attention_values_length=lengths,
        )
