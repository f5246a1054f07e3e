"""CopyAttentionDecoder: an AttentionDecoder whose steps can copy source
words (pointer-generator)."""

import tensorflow as tf

from seq2seq.decoders.attention_decoder import AttentionDecoder
from seq2seq.decoders.copy_attention import CopyGenerator


class CopyAttentionDecoder(AttentionDecoder):
    """`AttentionDecoder` with copy attention (See et al., 2017).

    The step mixes the softmax over the vocabulary with the attention over
    the source, in the extended vocabulary of `seq2seq.data.copy_vocab`,
    and returns log-probabilities over `V + M` classes instead of logits
    (see `seq2seq.decoders.copy_attention`):

        logits = Dense(V)(tanh(Dense(H)(concat(h, c))))      # as AttentionDecoder
        log P  = log(p_gen * softmax(logits) + (1 - p_gen) * copy(a))

    The parameters, state and weights are `AttentionDecoder`'s, plus the
    gate's kernel and bias (`copy_generator/copy_gate`, created last).
    Memory: `AttentionDecoder`'s plus `"copy_source_ids"` [B, S] int32 and
    `"copy_oov_mask"` [B, M] bool (`with_copy_source`; the model adds them
    in `start_decoding`).

    Args: as `AttentionDecoder`.
    """

    # What the model reads to add the extended-vocabulary features.
    copy_attention = True

    def __init__(
        self,
        params,
        mode,
        vocab_size,
        attention_layer=None,
        name="attention_decoder",
        cell=None,
    ):
        super().__init__(
            params,
            mode,
            vocab_size,
            attention_layer=attention_layer,
            name=name,
            cell=cell,
        )
        self.copy_generator = CopyGenerator(
            self.vocab_size, kernel_initializer=self._initializer()
        )

    def with_copy_source(self, memory, source_copy_ids, oov_mask):
        """Adds what copy attention reads to the memory.

        Args:
          memory: The result of `prepare_memory`.
          source_copy_ids: [B, S] int32 source ids in the extended space, in
            the order of the attention positions.
          oov_mask: [B, M] bool, the slots each sentence uses.

        Returns:
          The memory with `copy_source_ids` and `copy_oov_mask`.
        """
        memory = dict(memory)
        memory["copy_source_ids"] = tf.cast(source_copy_ids, tf.int32)
        memory["copy_oov_mask"] = tf.cast(oov_mask, tf.bool)
        return memory

    def num_classes(self, memory):
        """`V + M`: the vocabulary and the slots of the batch."""
        return self.vocab_size + tf.shape(memory["copy_oov_mask"])[1]

    def copy_log_probs(self, features, inputs, attention, memory, training=None):
        """Log-probabilities of the copy mixture.

        Args:
          features: [B, ..., F] features: `[h; c]` (F = H + Dv), or the
            attentional vector (F = H) with `input_feeding_vector:
            attentional`.
          inputs: [B, ..., E] embedded previous tokens.
          attention: [B, ..., S] attention distributions.
          memory: The memory, with the copy entries.
          training: Whether dropout in the output layers is active.

        Returns:
          [B, ..., V + M] float32.
        """
        gate_inputs = tf.concat(
            [tf.cast(features, tf.float32), tf.cast(inputs, tf.float32)], axis=-1
        )
        return self.copy_generator(
            self._project(features, training),
            gate_inputs,
            attention,
            memory["copy_source_ids"],
            memory["copy_oov_mask"],
        )

    def step(self, inputs, state, memory, training=None):
        """See `Decoder.step`; the [B, V + M] output is log-probabilities."""
        features, new_state, attention = self._step_features(
            inputs, state, memory, training
        )
        log_probs = self.copy_log_probs(
            features, inputs, attention, memory, training=training
        )
        return log_probs, new_state, attention

    def teacher_forced(self, inputs, state, memory, training=None):
        """See `Decoder.teacher_forced`; [B, T, V + M] log-probabilities, the
        numbers of stepping."""
        features, attention = self.teacher_forced_features(
            inputs, state, memory, training=training
        )
        log_probs = self.copy_log_probs(
            features, inputs, attention, memory, training=training
        )
        return log_probs, attention
