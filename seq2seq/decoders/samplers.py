"""Samplers: how one token per row is chosen from a step's logits.

A sampler is the only place that turns logits into token ids. Free-running
decoding (`seq2seq.inference.dynamic_decode` with `GreedySearch`) and
scheduled sampling in training (`Decoder.call` with a
`sampling_probability`) both call one, so a new way of choosing tokens is
one class here, registered in `SAMPLERS`, and reaches both.

Every sampler maps `[B, V]` logits to `([B] int32 ids, [B] float32
log-probabilities)`, the log-probabilities being those of the model
(`log_softmax(logits)` at the chosen ids, whatever the temperature or
filtering). Draws are stateless when the sampler has a seed (or the caller
passes one), so a seeded run is reproducible inside `tf.function`, under
`tf.distribute` and under XLA.

The samplers live beside the decoders (scheduled sampling is part of a
decoder's training pass); `seq2seq.inference.samplers` re-exports them for
the decoding side.
"""

import inspect

import numpy as np
import tensorflow as tf

from seq2seq.errors import ConfigError


def argmax_log_prob(logits, ids):
    """The log-probability of each row's chosen token, from its logits.

    Taken from the same `log_softmax` kernel beam search reads, so that
    greedy search and a beam of width 1 give the same numbers bit for bit
    (a shortcut such as `-log(sum(exp(logits - best)))` sums in another
    order and can differ in the last bit).

    Args:
      logits: [B, V] float32.
      ids: [B] int32 chosen token of each row.

    Returns:
      [B] float32 log-probabilities (<= 0).
    """
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    return tf.gather(log_probs, ids, axis=1, batch_dims=1)


class Sampler:
    """Base class: chooses one token per row of a step's logits."""

    def select(self, logits, step, seed=None):
        """Chooses a token per row.

        Args:
          logits: [B, V] float32 logits of one decoding step.
          step: The decoding step (int or scalar int tensor); a seeded
            sampler folds it into its seed.
          seed: Optional [2] int tensor: a stateless seed that replaces the
            sampler's own for this call (callers that manage their seeds,
            like scheduled sampling).

        Returns:
          `(ids [B] int32, log_probs [B] float32)`: the chosen tokens and
          their log-probabilities under the model's distribution.
        """
        raise NotImplementedError


class ArgmaxSampler(Sampler):
    """The most likely token (ties: the lowest id)."""

    def select(self, logits, step, seed=None):
        del step, seed
        ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return ids, argmax_log_prob(logits, ids)


class RandomSampler(Sampler):
    """A token drawn from the model's distribution, reshaped.

    The distribution drawn from is `softmax(log_probs / temperature)`
    restricted to the `top_k` most likely tokens (0: all) and then to the
    nucleus (`top_p` < 1): the most likely tokens whose probabilities, in
    decreasing order, sum to at least `top_p` (at least one token). Tokens
    tied with the last kept one are kept too.

    Args:
      temperature: > 0; below 1 sharpens the distribution, above 1 flattens
        it.
      top_k: Keep only the `k` most likely tokens (int >= 0; 0 keeps all).
      top_p: Keep only the nucleus of this probability mass (in (0, 1]; 1
        keeps all).
      seed: Optional int. With a seed the draw of step `t` is a stateless
        function of `(seed, t)`; without one, draws use the global random
        state.

    Raises:
      ConfigError: A value out of range.
    """

    def __init__(self, temperature=1.0, top_k=0, top_p=1.0, seed=None):
        if not temperature > 0:
            raise ConfigError(f"sampling.temperature must be > 0, got {temperature!r}.")
        if isinstance(top_k, bool) or int(top_k) != top_k or top_k < 0:
            raise ConfigError(
                f"sampling.top_k must be an integer >= 0 (0 keeps every "
                f"token), got {top_k!r}."
            )
        if not 0.0 < top_p <= 1.0:
            raise ConfigError(
                f"sampling.top_p must be in (0, 1] (1 keeps every token), got "
                f"{top_p!r}."
            )
        self.temperature = float(temperature)
        self.top_k = int(top_k)
        self.top_p = float(top_p)
        self.seed = None if seed is None else int(seed)

    def filter_logits(self, log_probs):
        """`log_probs / temperature` with the tokens outside the top-k and
        the nucleus set to -inf.

        Args:
          log_probs: [B, V] float32 log-probabilities.

        Returns:
          [B, V] float32 logits of the distribution drawn from.
        """
        logits = log_probs / tf.cast(self.temperature, log_probs.dtype)
        vocab = logits.shape[-1]
        neg_inf = tf.constant(-np.inf, logits.dtype)
        if self.top_k and (vocab is None or self.top_k < vocab):
            kth = tf.math.top_k(logits, k=self.top_k).values[:, -1:]
            logits = tf.where(logits < kth, neg_inf, logits)
        if self.top_p < 1.0:
            ordered = tf.sort(logits, axis=-1, direction="DESCENDING")
            # Mass of the tokens strictly more likely than each one.
            before = tf.cumsum(tf.nn.softmax(ordered, axis=-1), axis=-1, exclusive=True)
            kept = before < self.top_p
            threshold = tf.reduce_min(
                tf.where(kept, ordered, tf.constant(np.inf, logits.dtype)),
                axis=-1,
                keepdims=True,
            )
            logits = tf.where(logits < threshold, neg_inf, logits)
        return logits

    def select(self, logits, step, seed=None):
        log_probs = tf.nn.log_softmax(logits, axis=-1)
        scaled = self.filter_logits(log_probs)
        if seed is None and self.seed is not None:
            seed = tf.stack([tf.constant(self.seed, tf.int32), tf.cast(step, tf.int32)])
        if seed is None:
            ids = tf.random.categorical(scaled, 1, dtype=tf.int32)[:, 0]
        else:
            ids = tf.random.stateless_categorical(
                scaled, 1, seed=tf.cast(seed, tf.int32), dtype=tf.int32
            )[:, 0]
        return ids, tf.gather(log_probs, ids, axis=1, batch_dims=1)


# The names a config uses (`inference.sampler`,
# `decoder.params.scheduled_sampling.sampling`); `random` is another name
# for `sample`.
SAMPLERS = {"argmax": ArgmaxSampler, "sample": RandomSampler, "random": RandomSampler}


def get_sampler(name, where="sampling mode", **kwargs):
    """Builds a sampler from its name.

    Args:
      name: A key of `SAMPLERS`, or a `Sampler` instance (returned as is).
      where: The config key that named it, for the error message.
      **kwargs: Constructor arguments; those the sampler does not take are
        ignored, so one set of settings serves every sampler.

    Returns:
      A `Sampler`.

    Raises:
      ConfigError: An unknown name or a bad setting.
    """
    if isinstance(name, Sampler):
        return name
    if name not in SAMPLERS:
        raise ConfigError(
            f"unknown {where} {name!r}; use one of {', '.join(sorted(SAMPLERS))}."
        )
    cls = SAMPLERS[name]
    accepted = inspect.signature(cls).parameters
    return cls(**{key: value for key, value in kwargs.items() if key in accepted})
