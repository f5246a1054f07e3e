"""Copy attention (pointer-generator, See et al., 2017).

The decoder's distribution over the target vocabulary is mixed with its
attention over the source positions, in an extended vocabulary where every
source word outside the target vocabulary has a slot of its own (ids
`V, V + 1, ...` per sentence; see `seq2seq.data.copy_vocab`):

    p_gen = sigmoid(w . [h; c; x] + b)
    P(w)  = p_gen * P_vocab(w) + (1 - p_gen) * sum_{i: src_i = w} a_i

with `h` the cell output, `c` the attention context, `x` the embedded
previous token, `a` the attention distribution and `src` the source ids in
the extended space. A decoder step with copy attention returns `log P`
over `V + M` classes (`M` slots in the batch) instead of logits; since
`log_softmax(log P) = log P`, every strategy, sampler and loss that takes
logits takes them unchanged. Slots a sentence does not use are `-inf`.
"""

import keras
import numpy as np
import tensorflow as tf

from seq2seq.layers.composite import CompositeLayer

# Added to the mixed probabilities before the log, so that a probability
# that underflows to 0 gives a finite log and gradient.
_LOG_GUARD = 1e-20


def copy_distribution(attention, source_ids, size):
    """Sums attention weights onto the extended ids of the source positions.

    Args:
      attention: [B, ..., S] float32 attention distributions.
      source_ids: [B, S] int32 source ids in the extended space (< `size`).
      size: The extended vocabulary size `V + M` (int or scalar tensor).

    Returns:
      [B, ..., size] float32: entry `w` is the attention on the positions
      holding `w` (positions with the same word add up).
    """
    attention = tf.cast(attention, tf.float32)
    shape = tf.shape(attention)
    batch, length = shape[0], shape[-1]
    rows = tf.reshape(attention, [batch, -1, length])  # [B, R, S]
    grid = tf.shape(rows)
    indices = tf.stack(
        [
            tf.broadcast_to(tf.range(batch)[:, None, None], grid),
            tf.broadcast_to(tf.range(grid[1])[None, :, None], grid),
            tf.broadcast_to(tf.cast(source_ids, tf.int32)[:, None, :], grid),
        ],
        axis=-1,
    )
    # scatter_nd adds the updates that land on the same index.
    copied = tf.scatter_nd(indices, rows, tf.stack([batch, grid[1], size]))
    return tf.reshape(copied, tf.concat([shape[:-1], [size]], axis=0))


class CopyGenerator(CompositeLayer):
    """The generation gate `p_gen` and the mixture of the module docstring.

    Args:
      vocab_size: V, the target vocabulary size.
      kernel_initializer: Initializer of the gate's kernel (None: Keras's).
      name: Layer name.
    """

    def __init__(self, vocab_size, kernel_initializer=None, name="copy_generator"):
        # The mixture runs in float32 under any mixed-precision policy.
        super().__init__(name=name, dtype="float32")
        self.vocab_size = int(vocab_size)
        kwargs = {}
        if kernel_initializer is not None:
            kwargs["kernel_initializer"] = kernel_initializer
        self.gate = keras.layers.Dense(1, name="copy_gate", dtype="float32", **kwargs)

    def call(self, logits, gate_inputs, attention, source_ids, oov_mask):
        """The log-probabilities of the mixed distribution.

        Args:
          logits: [B, ..., V] vocabulary logits.
          gate_inputs: [B, ..., G] what `p_gen` reads (`[h; c; x]`).
          attention: [B, ..., S] attention distributions.
          source_ids: [B, S] int32 source ids in the extended space.
          oov_mask: [B, M] bool: the slots each sentence uses.

        Returns:
          [B, ..., V + M] float32 log-probabilities (`-inf` at unused
          slots).
        """
        logits = tf.cast(logits, tf.float32)
        num_slots = tf.shape(oov_mask)[1]
        size = self.vocab_size + num_slots
        p_gen = tf.sigmoid(self.gate(tf.cast(gate_inputs, tf.float32)))
        vocab_probs = tf.nn.softmax(logits, axis=-1)
        rank = len(logits.shape)
        padding = [[0, 0]] * (rank - 1) + [[0, num_slots]]
        vocab_probs = tf.pad(vocab_probs, padding)
        copied = copy_distribution(attention, source_ids, size)
        mixed = p_gen * vocab_probs + (1.0 - p_gen) * copied
        log_probs = tf.math.log(mixed + _LOG_GUARD)
        valid = tf.concat(
            [tf.ones([tf.shape(oov_mask)[0], self.vocab_size], tf.bool), oov_mask],
            axis=1,
        )
        ones = tf.ones([rank - 2], tf.int32)
        valid = tf.reshape(valid, tf.concat([[tf.shape(valid)[0]], ones, [size]], 0))
        return tf.where(valid, log_probs, -np.inf)
