"""Ensemble decoding: several decoders stepped together as one.

`EnsembleDecoder` wraps the decoders of M models that share a target
vocabulary and offers the `Decoder` step contract, so `dynamic_decode` and
every strategy (greedy, beam search) and sampler run it unchanged:

* its inputs, state and memory are M-tuples, one entry per member (each
  member embeds the previous tokens with its own target embedding, see
  `embed_target_fn`); beam search tiles and reorders tuples like any other
  state nest;
* `step` runs every member's step and combines the distributions by
  `average_log_probs`: the log of the mean of the members' probabilities
  (a linear mixture of the members, as in fairseq), so the combined scores
  are proper log-probabilities;
* the attention it returns is the mean of the members' attention scores
  (over the members that attend), so `unk_replace` and `DumpAttention`
  see one [N, S] matrix per step.

This module knows nothing of models; `seq2seq.models.ensemble` builds an
ensemble of trained models on top of it.
"""

import math

import tensorflow as tf


def average_log_probs(logits):
    """Log of the mean of the members' probabilities.

    Args:
      logits: A list of M [N, V] logits (any float dtype).

    Returns:
      [N, V] float32 `log(mean_m softmax(logits[m]))`, itself normalised
      (`exp` sums to 1 over V). With one member, its log-softmax.
    """
    log_probs = [tf.nn.log_softmax(tf.cast(x, tf.float32), axis=-1) for x in logits]
    if len(log_probs) == 1:
        return log_probs[0]
    stacked = tf.stack(log_probs, axis=0)
    return tf.reduce_logsumexp(stacked, axis=0) - math.log(len(log_probs))


def average_attention(attention):
    """The mean of the members' [N, S] attention scores; None entries (members
    without attention) are left out, and None if every entry is None."""
    present = [tf.cast(a, tf.float32) for a in attention if a is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return tf.add_n(present) / float(len(present))


def embed_target_fn(embedding_fns):
    """An `embedding_fn` for `dynamic_decode` that embeds the previous ids
    with every member's own embedding.

    Args:
      embedding_fns: M functions mapping [N] int32 ids to [N, E_m].

    Returns:
      A function mapping [N] ids to an M-tuple of [N, E_m] embeddings.
    """
    embedding_fns = tuple(embedding_fns)
    return lambda ids: tuple(fn(ids) for fn in embedding_fns)


class EnsembleDecoder:
    """M decoders with one target vocabulary, stepped as one decoder.

    Not a Keras layer: it owns no variables, only the members' decoders
    (whose weights their models restore).

    Args:
      decoders: The members' decoders (objects with the `Decoder` step
        contract, all with the same `vocab_size`).

    Raises:
      ValueError: No decoders, or their vocabulary sizes differ.
    """

    def __init__(self, decoders):
        self.decoders = tuple(decoders)
        if not self.decoders:
            raise ValueError("an ensemble needs at least one decoder")
        sizes = {int(d.vocab_size) for d in self.decoders}
        if len(sizes) != 1:
            raise ValueError(
                f"ensemble members have different target vocabulary sizes {sizes}"
            )
        self.vocab_size = sizes.pop()

    @property
    def has_attention(self):
        """Whether any member returns attention scores."""
        return any(getattr(d, "has_attention", False) for d in self.decoders)

    @property
    def independent_rows(self):
        """Whether every member steps its rows independently."""
        return all(getattr(d, "independent_rows", False) for d in self.decoders)

    @property
    def max_decode_length(self):
        """The first member's `max_decode_length`."""
        return self.decoders[0].max_decode_length

    def step(self, inputs, state, memory, training=None):
        """One step of every member, combined.

        Args:
          inputs: M-tuple of [N, E_m] embedded previous tokens.
          state: M-tuple of the members' states.
          memory: M-tuple of the members' memories.
          training: Whether dropout is active.

        Returns:
          `(log_probs [N, V] float32, new_state (M-tuple), attention [N, S]
          float32 or None)`; the log-probabilities of `average_log_probs`
          stand in for logits (a log-softmax leaves them unchanged).
        """
        logits, new_states, attention = [], [], []
        for decoder, member_inputs, member_state, member_memory in zip(
            self.decoders, inputs, state, memory
        ):
            member_logits, member_state, member_attention = decoder.step(
                member_inputs, member_state, member_memory, training=training
            )
            logits.append(member_logits)
            new_states.append(member_state)
            attention.append(member_attention)
        return (
            average_log_probs(logits),
            tuple(new_states),
            average_attention(attention),
        )
