"""Greedy search: one sequence per sentence, one token per step.

`GreedySearch` is the `dynamic_decode` strategy that keeps one hypothesis
per sentence and lets a sampler choose each token: `ArgmaxSampler` for
greedy decoding, `RandomSampler` for sampling (temperature, top-k, top-p).
`greedy_decode` is the function form, kept for its callers.

This module also re-exports the loop's helpers (`tile_batch`,
`default_jit_compile`, ...) from `seq2seq.inference.dynamic_decode`, where
they live.
"""

import collections

import tensorflow as tf

from seq2seq.decoders.samplers import argmax_log_prob, get_sampler
from seq2seq.inference.constraints import select_constrained
from seq2seq.inference.dynamic_decode import (
    DecodingStrategy,
    collect_steps,
    default_jit_compile,
    dynamic_decode,
    gather_batch,
    gather_beams,
    merge_beams,
    resolve_jit_compile,
    run_decode_loop,
    split_beams,
    static_max_length,
    tile_batch,
    where_batch,
)

__all__ = [
    "DecodeResult",
    "GreedySearch",
    "argmax_log_prob",
    "collect_steps",
    "default_jit_compile",
    "gather_batch",
    "gather_beams",
    "greedy_decode",
    "merge_beams",
    "resolve_jit_compile",
    "run_decode_loop",
    "split_beams",
    "static_max_length",
    "tile_batch",
    "where_batch",
]


class DecodeResult(
    collections.namedtuple(
        "DecodeResult", ["ids", "lengths", "log_probs", "step_log_probs", "attention"]
    )
):
    """Output of greedy search.

    Fields:
      ids: [B, T] int32 chosen tokens; after a sequence's end token, end
        tokens again. `T` is the number of steps run (at most the limit).
      lengths: [B] int32 number of tokens up to and including the end token;
        the number of steps run for a sequence that never ended.
      log_probs: [B] float32 sum of the chosen tokens' log-probabilities up to
        and including the end token.
      step_log_probs: [B, T] float32 log-probability of each chosen token, 0
        after the end.
      attention: [B, T, S] float32 attention scores of each step (zeros after
        the end), or None for decoders without attention.
    """


class GreedySearch(DecodingStrategy):
    """One hypothesis per sentence; the sampler picks each token.

    A sequence finishes when it emits the end token; from then on it emits
    the end token, adds nothing to its score and keeps its decoder state.
    Decoding may stop once every sequence has finished. Log-probabilities
    are the model's (without a sampler's temperature or filtering).

    Loop state: `(finished [B] bool, lengths [B] int32, scores [B] float32)`.
    """

    step_outputs = {"ids": tf.int32, "log_probs": tf.float32}

    def initialize(self, start_ids, state, memory, max_length):
        del max_length
        batch_size = tf.shape(start_ids)[0]
        search = (
            tf.zeros([batch_size], tf.bool),
            tf.zeros([batch_size], tf.int32),
            tf.zeros([batch_size], tf.float32),
        )
        return start_ids, state, memory, search

    def finished(self, search_state):
        return tf.reduce_all(search_state[0])

    def active_sentences(self, search_state):
        return tf.logical_not(search_state[0])

    def idle_outputs(self, ids, search_state, env):
        # A finished sentence records its last token (the end token) again.
        del search_state, env
        return {"ids": ids}

    def step(self, time, logits, state, new_state, attention, search_state, env):
        finished, lengths, scores = search_state
        if env.constraints is None:
            ids, chosen = env.sampler.select(logits, time)
        else:
            ids, chosen = select_constrained(env.constraints, env.sampler, logits, time)
        ids = tf.where(finished, env.end_id, ids)
        chosen = tf.where(finished, 0.0, chosen)
        lengths = lengths + tf.cast(tf.logical_not(finished), tf.int32)
        scores = scores + chosen
        new_state = where_batch(finished, state, new_state)
        outputs = {"ids": ids, "log_probs": chosen}
        if attention is not None:
            attention = tf.cast(attention, tf.float32)
            outputs["attention"] = tf.where(finished[:, None], 0.0, attention)
        finished = tf.logical_or(finished, tf.equal(ids, env.end_id))
        return ids, new_state, (finished, lengths, scores), outputs

    def finalize(self, steps, search_state, num_steps, env):
        _, lengths, scores = search_state
        kept = num_steps * env.nonempty
        attention = None
        if "attention" in steps:
            attention = tf.transpose(steps["attention"][:kept], [1, 0, 2])
        return DecodeResult(
            tf.transpose(steps["ids"][:kept]),
            lengths,
            scores,
            tf.transpose(steps["log_probs"][:kept]),
            attention,
        )

    def predictions(self, result):
        """`predicted_ids` [B, T], `predicted_len` [B], `log_probs` [B] and,
        for attention decoders, `attention_scores` [B, T, S]."""
        predictions = {
            "predicted_ids": result.ids,
            "predicted_len": result.lengths,
            "log_probs": result.log_probs,
        }
        if result.attention is not None:
            predictions["attention_scores"] = result.attention
        return predictions


def greedy_decode(
    decoder,
    embedding_fn,
    start_ids,
    end_id,
    state,
    memory,
    max_length=None,
    sampling="argmax",
    temperature=1.0,
    seed=None,
    jit_compile=None,
):
    """`dynamic_decode` with `GreedySearch` and a sampler named `sampling`.

    Args:
      decoder: An object with `step(inputs [B, E], state, memory, training)
        -> (logits [B, V], new_state, attention [B, S] or None)`.
      embedding_fn: Maps [B] int32 ids to [B, E] embeddings.
      start_ids: [B] int ids fed at the first step (SEQUENCE_START).
      end_id: Int id that ends a sequence (SEQUENCE_END).
      state: The decoder's initial state.
      memory: The decoder's memory (`prepare_memory`).
      max_length: Most steps to run (int or scalar tensor, >= 1); the
        decoder's `max_decode_length` when None.
      sampling: A sampler name (`argmax`, `sample`) or a `Sampler`.
      temperature: Softmax temperature for `sample`.
      seed: Optional int for reproducible sampling.
      jit_compile: Compile the decoding loop with XLA (see `dynamic_decode`).

    Returns:
      A `DecodeResult`.

    Raises:
      ConfigError: An unknown sampling mode or a non-positive temperature.
      ValueError: `jit_compile` with a `max_length` known only at run time.
    """
    sampler = get_sampler(sampling, temperature=temperature, seed=seed)
    return dynamic_decode(
        decoder,
        GreedySearch(),
        sampler,
        embedding_fn,
        start_ids,
        end_id,
        state,
        memory,
        max_length,
        jit_compile=jit_compile,
    )
