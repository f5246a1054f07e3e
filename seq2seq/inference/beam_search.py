"""Batched beam search: the `BeamSearch` strategy of `dynamic_decode`.

Every sentence of a batch keeps `K = beam_width` hypotheses. The decoder
runs on all `B * K` of them at once (state and memory tiled with
`tile_batch`, beams of a sentence adjacent); at each step every hypothesis
is extended by every token, the `K * V` candidates of a sentence are
scored, the successors are chosen (`choose_successors_fn`, the `K` best by
default) and the whole decoder state, whatever its structure, is reordered
to follow them. The loop is `dynamic_decode`'s `tf.while_loop`, so the
search traces once inside `tf.function` for any batch size and source
length.

With the default `choose_top_k` the search does not score all `K * V`
candidates: the length penalty is the same for every extension of a
hypothesis, so only its `K` most likely tokens can be among the sentence's
`K` best, and the search ranks those `K * K` (`top_k_rows` finds them
without sorting whole rows). The choice is the full search's, ties
created by rounding aside; other successor functions see all candidates.

Scoring follows GNMT (https://arxiv.org/abs/1609.08144): a hypothesis with
total log-probability `log_p` and `n` tokens (its end token counted once)
scores `log_p / length_penalty(n)` with
`length_penalty(n) = ((5 + n) / 6) ** length_penalty_weight`; a weight of
0 ranks by log-probability alone. With `coverage_penalty_weight` `beta`
> 0, a finished hypothesis also gets GNMT's coverage penalty
`beta * sum_i log(min(a_i, 1))`, `a_i` being the attention source position
`i` received over the hypothesis' steps (padding excluded). As in
tensorflow/nmt, the penalty is added once a hypothesis has finished (to
its score in the search's ranking from the step after its end token on),
and the final ranking adds it to every hypothesis. It needs a decoder with
attention; each hypothesis carries its summed attention, reordered with
its parents like the decoder state.

Once a hypothesis has produced the end token it is finished: it can only be
extended by the end token again, at log-probability 0, so its score and
length no longer change while it keeps competing with the unfinished ones.
The search stops when every sentence is settled, or after `max_length`
steps. A sentence is settled when all its hypotheses have finished or, with
`early_stopping` (`inference.beam_search.early_stopping`, on by default in
the models; it applies with `choose_top_k`, no coverage penalty and a length
penalty weight >= 0), when its best finished hypothesis outscores anything
an unfinished one could still reach: extending a hypothesis only lowers its
log-probability, and its length penalty is at most that of `max_length`
tokens, so an unfinished hypothesis can never score above `log_p /
length_penalty(max_length)`. The best hypothesis is then the one the full
search would return. For an n-best list (`n_best` N) the search waits until
the N-th best finished hypothesis outscores that bound: the N best are then
those of the full search, the rest of the beam may be unfinished. The
hypotheses are then
traced back through the recorded parent pointers, together with their
attention scores.
"""

import collections
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from seq2seq.decoders.samplers import ArgmaxSampler
from seq2seq.errors import ConfigError
from seq2seq.inference.beam_successors import (  # noqa: F401  (re-exported)
    _block_size,
    _full_successors,
    _two_stage_applies,
    _two_stage_successors,
    choose_top_k,
    choose_top_k_sample,
    coverage_penalty,
    get_choose_successors_fn,
    hyp_score,
    length_penalty,
    top_k_rows,
)
from seq2seq.inference.constraints import constrain_scores
from seq2seq.inference.dynamic_decode import (
    DecodingStrategy,
    dynamic_decode,
    gather_batch,
    split_beams,
    tile_batch,
    where_batch,
)


class BeamSearchConfig(
    collections.namedtuple(
        "BeamSearchConfig",
        [
            "beam_width",
            "vocab_size",
            "eos_token",
            "length_penalty_weight",
            "choose_successors_fn",
            "coverage_penalty_weight",
        ],
        defaults=(0.0,),
    )
):
    """Settings of a beam search.

    Fields:
      beam_width: K, the number of hypotheses kept per sentence (Python int
        >= 1).
      vocab_size: V, the number of output classes (the logits' last
        dimension; checked against it when both are static).
      eos_token: The id that ends a hypothesis; used when
        `beam_search_decode` gets no `end_id`.
      length_penalty_weight: The exponent `alpha` of `length_penalty`; 0
        disables the penalty.
      choose_successors_fn: `(scores_flat [B, K * V], config) ->
        (scores [B, K], indices [B, K])`, or the name of one (see
        `get_choose_successors_fn`).
      coverage_penalty_weight: The weight `beta` of the GNMT coverage
        penalty (a Python float >= 0, default 0: no penalty).
    """


class BeamSearchResult(
    collections.namedtuple(
        "BeamSearchResult",
        [
            "ids",
            "lengths",
            "scores",
            "log_probs",
            "attention",
            "step_ids",
            "step_parent_ids",
            "step_scores",
            "step_log_probs",
            "step_lengths",
            "num_steps",
        ],
    )
):
    """Output of `beam_search_decode`. `T` is the number of steps run.

    Final hypotheses, best first along `K`:
      ids: [B, K, T] int32 tokens of each hypothesis, traced back through the
        parents; the end token after the hypothesis has ended.
      lengths: [B, K] int32 tokens up to and including the end token; `T`
        for a hypothesis that never ended.
      scores: [B, K] float32 `log_probs / length_penalty(lengths)` plus the
        coverage penalty when it is on: the ranking score (descending).
      log_probs: [B, K] float32 total log-probability of each hypothesis.
      attention: [B, K, T, S] float32 attention scores of the steps of each
        hypothesis (zeros after its end), or None for decoders without
        attention.

    The raw search trace, one column per beam slot (not traced back), as
    DumpBeams and the beam visualisation read it:
      step_ids: [B, T, K] int32 token chosen for each slot at each step.
      step_parent_ids: [B, T, K] int32 slot (in `[0, K)`) of the previous
        step that each slot extends.
      step_scores: [B, T, K] float32 ranking score of each slot after the
        step (length-penalised, cumulative).
      step_log_probs: [B, T, K] float32 log-probability of the token chosen
        at that step (0 for an already finished hypothesis).
      step_lengths: [B] int32 steps of the trace that matter for each
        sentence: those run until all its hypotheses had finished (the
        trace it would have had if searched alone).
      num_steps: int32 scalar `T`.

    Slots that the search could not fill (when K exceeds the number of
    possible hypotheses) hold a log-probability and score of `-inf`; they
    rank last.
    """


# ------------------------------------------------------------- search


def _check_config(config):
    width = config.beam_width
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)):
        raise ConfigError(
            f"inference.beam_search.beam_width must be an integer, got {width!r}."
        )
    if width < 1:
        raise ConfigError(
            f"inference.beam_search.beam_width must be >= 1, got {width}."
        )
    weight = config.coverage_penalty_weight
    if (
        isinstance(weight, bool)
        or not isinstance(weight, (int, float, np.integer, np.floating))
        or not np.isfinite(weight)
        or weight < 0
    ):
        raise ConfigError(
            "inference.beam_search.coverage_penalty_weight must be a number "
            f">= 0 (0 disables the penalty; GNMT used 0.2), got {weight!r}."
        )
    return config._replace(
        beam_width=int(width),
        coverage_penalty_weight=float(weight),
        choose_successors_fn=get_choose_successors_fn(config.choose_successors_fn),
    )


def source_mask(memory):
    """The real source positions of a decoder memory, for the coverage
    penalty.

    The attention decoders' memory is a dict with `values` [B, S, Dv] and
    `lengths` [B] (`AttentionDecoder`, `SelfAttentionDecoder`); a decoder
    whose attention should be penalised keeps those two keys.

    Args:
      memory: The decoder memory (`prepare_memory`), not tiled.

    Returns:
      [B, S] bool.

    Raises:
      ConfigError: The memory has no `values` and `lengths`.
    """
    if not (isinstance(memory, Mapping) and {"values", "lengths"} <= set(memory)):
        raise ConfigError(
            "inference.beam_search.coverage_penalty_weight needs a decoder with "
            "attention whose memory holds 'values' [B, S, D] and 'lengths' [B] "
            "(as AttentionDecoder's); set the weight to 0 for this decoder."
        )
    values = tf.convert_to_tensor(memory["values"])
    return tf.sequence_mask(memory["lengths"], tf.shape(values)[1])


def _backtrack(parent_ids, last_slots):
    """Follows parent pointers from the last step to the first.

    Args:
      parent_ids: [T, B, K] int32; `parent_ids[t, b, k]` is the slot of step
        `t - 1` that slot `k` of step `t` extends.
      last_slots: [B, K] int32 slots of the last step to start from.

    Returns:
      [T, B, K] int32: for each step, the slot each traced path went
      through.
    """
    num_steps = tf.shape(parent_ids)[0]
    paths = tf.TensorArray(tf.int32, size=num_steps, element_shape=last_slots.shape)

    def body(time, slots, paths):
        paths = paths.write(time, slots)
        slots = tf.gather(parent_ids[time], slots, batch_dims=1)
        return time - 1, slots, paths

    _, _, paths = tf.while_loop(
        lambda time, *_: time >= 0,
        body,
        (num_steps - 1, last_slots, paths),
        maximum_iterations=num_steps,
    )
    return paths.gather(tf.range(num_steps))


class BeamSearch(DecodingStrategy):
    """Keeps the `beam_width` best hypotheses of every sentence.

    The decoder runs on `B * K` rows (state and memory tiled, beams of a
    sentence adjacent); after each step every slot takes the decoder state
    of the hypothesis it extends (`gather_batch` over whatever nest the
    decoder returns), a finished hypothesis keeping its own. Only beam 0 is
    alive at first, so the first step fills the K slots with K different
    tokens (with a forced target prefix, the first step after it does).
    Successors are chosen by `config.choose_successors_fn`; with the
    default `choose_top_k` and a length penalty that keeps the order of a
    hypothesis' extensions (`_two_stage_applies`) only `K * K`
    candidates are scored (`_two_stage_successors`).

    Loop state: `(log_probs [B, K] float32, finished [B, K] bool, lengths
    [B, K] int32, sentence_steps [B] int32, attention_sums [B, K, S]
    float32, source_mask [B, S] bool)`; the last two (the attention each
    hypothesis gave each source position so far, and the real positions)
    have `S = 0` unless the coverage penalty is on.

    Args:
      config: A `BeamSearchConfig`; `choose_successors_fn` may be a name.
      early_stopping: Stop a sentence once its best hypothesis is settled
        (see the module docstring); the best hypothesis is the full
        search's, the rest of the beam may be unfinished.
      n_best: With `early_stopping`, wait until the `n_best` best
        hypotheses are settled, so that an n-best list is the full
        search's (see the module docstring). 1 by default.

    Raises:
      ConfigError: A bad beam width, coverage weight or successor function.
    """

    step_outputs = {
        "ids": tf.int32,
        "parents": tf.int32,
        "scores": tf.float32,
        "log_probs": tf.float32,
    }

    def __init__(self, config, early_stopping=False, n_best=1):
        self.config = _check_config(config)
        self.early_stopping = bool(early_stopping)
        self.n_best = int(n_best)
        self._two_stage = False
        self._max_length = None

    @classmethod
    def from_params(cls, params, vocab_size, end_id, beam_width=None, n_best=1):
        """From `inference.beam_search.*` (`beam_width` overrides the
        configured width when given; `n_best` as for `__init__`)."""
        return cls(
            BeamSearchConfig(
                beam_width=beam_width or params["inference.beam_search.beam_width"],
                vocab_size=vocab_size,
                eos_token=end_id,
                length_penalty_weight=params[
                    "inference.beam_search.length_penalty_weight"
                ],
                choose_successors_fn=params[
                    "inference.beam_search.choose_successors_fn"
                ],
                coverage_penalty_weight=params.get(
                    "inference.beam_search.coverage_penalty_weight", 0.0
                ),
            ),
            early_stopping=params.get("inference.beam_search.early_stopping", False),
            n_best=n_best,
        )

    @property
    def beam_width(self):
        """K."""
        return self.config.beam_width

    @property
    def rows_per_sentence(self):
        """K: the decoder runs on `B * K` rows."""
        return self.config.beam_width

    @property
    def coverage_weight(self):
        """The coverage penalty weight; 0 when off."""
        return self.config.coverage_penalty_weight

    def check_sampler(self, sampler):
        if not isinstance(sampler, ArgmaxSampler):
            raise ConfigError(
                "beam search chooses its hypotheses with "
                "inference.beam_search.choose_successors_fn (choose_top_k, or "
                "choose_top_k_sample to sample); inference.sampler must be "
                f"argmax with it, not {type(sampler).__name__}. Set "
                "inference.beam_search.beam_width: 1 to decode with a sampler."
            )

    def initialize(self, start_ids, state, memory, max_length):
        width = self.beam_width
        self._max_length = max_length
        self._two_stage = _two_stage_applies(self.config, max_length)
        batch_size = tf.shape(start_ids)[0]
        first_log_probs = tf.where(tf.range(width) == 0, 0.0, -np.inf)
        if self.coverage_weight:
            mask = source_mask(memory)
        else:
            mask = tf.zeros([batch_size, 0], tf.bool)
        # Static S = 0 without the penalty (see `scatter_batch`).
        num_positions = mask.shape[1]
        if num_positions is None:
            num_positions = tf.shape(mask)[1]
        search = (
            tf.tile(first_log_probs[None, :], [batch_size, 1]),
            tf.zeros([batch_size, width], tf.bool),
            tf.zeros([batch_size, width], tf.int32),
            tf.zeros([batch_size], tf.int32),
            tf.zeros([batch_size, width, num_positions], tf.float32),
            mask,
        )
        return (
            tf.repeat(start_ids, width),
            tile_batch(state, width),
            tile_batch(memory, width),
            search,
        )

    @staticmethod
    def _all_done(finished, log_probs):
        # A slot the search could not fill (-inf) counts as done.
        return tf.logical_or(finished, tf.equal(log_probs, -np.inf))

    def _stops_early(self):
        """Whether the best hypothesis can settle before the others end."""
        weight = tf.get_static_value(self.config.length_penalty_weight)
        return (
            self.early_stopping
            and self._max_length is not None
            and not self.coverage_weight
            and self.config.choose_successors_fn is choose_top_k
            and weight is not None
            and float(weight) >= 0
        )

    def _settled(self, log_probs, finished, lengths, all_done):
        """[B] bool: the `n_best`-th best finished hypothesis of each
        sentence (the best one by default) scores above every bound
        `log_p / length_penalty(max_length)` of its unfinished ones (see the
        module docstring). `all_done` is `_all_done(finished, log_probs)`,
        [B, W]."""
        scores = hyp_score(log_probs, lengths, self.config)
        finished_scores = tf.where(finished, scores, -np.inf)
        # A larger n_best than the width is refused by nbest_predictions.
        count = min(max(self.n_best, 1), self.beam_width)
        if count == 1:
            nth_finished = tf.reduce_max(finished_scores, axis=1)
        else:
            nth_finished = tf.math.top_k(finished_scores, k=count).values[:, -1]
        alive = tf.logical_not(all_done)
        best_alive = tf.reduce_max(tf.where(alive, log_probs, -np.inf), axis=1)
        bound = best_alive / length_penalty(
            self._max_length, self.config.length_penalty_weight
        )
        return nth_finished > bound

    def _sentences_done(self, search_state):
        """[B] bool: the sentences whose hypotheses have all finished or,
        with early stopping, whose best ones are settled."""
        log_probs, finished, lengths = search_state[:3]
        all_done = self._all_done(finished, log_probs)
        done = tf.reduce_all(all_done, axis=1)
        if self._stops_early():
            settled = self._settled(log_probs, finished, lengths, all_done)
            done = tf.logical_or(done, settled)
        return done

    def finished(self, search_state):
        return tf.reduce_all(self._sentences_done(search_state))

    def active_sentences(self, search_state):
        """The sentences not yet done, when skipping the others leaves
        every result as it was: with `choose_top_k` (a sampling successor
        function would draw differently over fewer rows) and no coverage
        penalty (which reorders finished hypotheses once more after they
        end); otherwise None."""
        if self.coverage_weight or self.config.choose_successors_fn is not (
            choose_top_k
        ):
            return None
        return tf.logical_not(self._sentences_done(search_state))

    def idle_outputs(self, ids, search_state, env):
        """What a step records for a sentence that is done: each hypothesis
        extended by the end token, in place, with its score unchanged (as
        for finished hypotheses)."""
        del ids
        log_probs, _, lengths = search_state[:3]
        shape = tf.shape(log_probs)
        return {
            "ids": tf.fill(shape, tf.cast(env.end_id, tf.int32)),
            "parents": tf.broadcast_to(
                tf.range(self.beam_width, dtype=tf.int32), shape
            ),
            "scores": hyp_score(log_probs, lengths, self.config),
        }

    def step(self, time, logits, state, new_state, attention, search_state, env):
        config, width = self.config, self.beam_width
        log_probs, finished, lengths, sentence_steps, sums, mask = search_state
        stop_id = env.end_id
        sentence_done = tf.reduce_all(self._all_done(finished, log_probs), axis=1)
        sentence_steps += tf.cast(tf.logical_not(sentence_done), tf.int32)
        batch_size = tf.shape(log_probs)[0]

        if logits.shape[-1] is not None and config.vocab_size is not None:
            if int(logits.shape[-1]) != int(config.vocab_size):
                raise ValueError(
                    f"the decoder gives {logits.shape[-1]} logits but "
                    f"BeamSearchConfig.vocab_size is {config.vocab_size}"
                )
        vocab = logits.shape[-1]
        token_lp = tf.nn.log_softmax(logits, axis=-1)
        if env.constraints is not None:
            token_lp = constrain_scores(env.constraints, time, token_lp)
        token_lp = tf.reshape(
            token_lp,
            [batch_size, width, tf.shape(logits)[-1] if vocab is None else vocab],
        )
        # Every extension of an unfinished hypothesis, the end token
        # included, adds one token.
        new_lengths = lengths + tf.cast(tf.logical_not(finished), tf.int32)
        args = (token_lp, log_probs, finished, new_lengths, stop_id, config)
        bonus = None
        if self.coverage_weight:
            if attention is None:
                raise ConfigError(
                    "inference.beam_search.coverage_penalty_weight needs a "
                    "decoder with attention; set it to 0 for this model."
                )
            # A finished hypothesis competes with its coverage penalty.
            penalty = coverage_penalty(sums, mask[:, None, :], self.coverage_weight)
            bonus = tf.where(finished, penalty, 0.0)
        if self._two_stage and vocab is not None:
            successors, cut_tie = _two_stage_successors(*args, bonus=bonus)
            # Rare: fall back to scoring every candidate for this step.
            successors = tf.cond(
                cut_tie,
                lambda: _full_successors(*args, bonus=bonus),
                lambda: successors,
            )
        else:
            successors = _full_successors(*args, bonus=bonus)
        top_scores, parents, word_ids, chosen_lp = successors
        # The total is the parent's plus the token's (as when scoring).
        parent_log_probs = tf.gather(log_probs, parents, batch_dims=1)
        chosen_totals = parent_log_probs + chosen_lp
        parent_finished = tf.gather(finished, parents, batch_dims=1)
        next_lengths = tf.gather(new_lengths, parents, batch_dims=1)
        next_finished = tf.logical_or(parent_finished, tf.equal(word_ids, stop_id))

        # Finished hypotheses keep their state; then every slot takes the
        # state of its parent.
        row_offsets = tf.range(batch_size)[:, None] * width
        parent_rows = tf.reshape(parents + row_offsets, [-1])
        new_state = where_batch(tf.reshape(finished, [-1]), state, new_state)
        new_state = gather_batch(new_state, parent_rows)

        outputs = {
            "ids": word_ids,
            "parents": parents,
            "scores": top_scores,
            "log_probs": chosen_lp,
        }
        if attention is not None:
            attention = tf.gather(tf.cast(attention, tf.float32), parent_rows)
            attention = split_beams(attention, width)
            outputs["attention"] = tf.where(parent_finished[:, :, None], 0.0, attention)
            if self.coverage_weight:
                sums = tf.gather(sums, parents, batch_dims=1) + outputs["attention"]
        search = (chosen_totals, next_finished, next_lengths, sentence_steps)
        search += (sums, mask)
        return tf.reshape(word_ids, [-1]), new_state, search, outputs

    def finalize(self, steps, search_state, num_steps, env):
        log_probs, _, lengths, sentence_steps, sums, mask = search_state
        step_ids = steps["ids"]  # [T, B, K]
        step_parents = steps["parents"]
        step_scores = steps["scores"]
        step_log_probs = steps["log_probs"]

        final_scores = hyp_score(log_probs, lengths, self.config)
        if self.coverage_weight:
            final_scores += coverage_penalty(
                sums, mask[:, None, :], self.coverage_weight
            )
        order = tf.argsort(final_scores, axis=1, direction="DESCENDING", stable=True)
        order = tf.cast(order, tf.int32)
        paths = _backtrack(step_parents, order)  # [T, B, K]

        lengths = tf.gather(lengths, order, batch_dims=1)
        valid = tf.range(num_steps)[None, None, :] < lengths[:, :, None]  # [B, K, T]
        ids = tf.transpose(tf.gather(step_ids, paths, axis=2, batch_dims=2), [1, 2, 0])
        ids = tf.where(valid, ids, env.end_id)
        attention = None
        if "attention" in steps:
            history = tf.gather(steps["attention"], paths, axis=2, batch_dims=2)
            attention = tf.transpose(history, [1, 2, 0, 3])  # [B, K, T, S]
            attention = tf.where(valid[:, :, :, None], attention, 0.0)

        kept = num_steps * env.nonempty
        return BeamSearchResult(
            ids=ids[:, :, :kept],
            lengths=lengths,
            scores=tf.gather(final_scores, order, batch_dims=1),
            log_probs=tf.gather(log_probs, order, batch_dims=1),
            attention=None if attention is None else attention[:, :, :kept],
            step_ids=tf.transpose(step_ids[:kept], [1, 0, 2]),
            step_parent_ids=tf.transpose(step_parents[:kept], [1, 0, 2]),
            step_scores=tf.transpose(step_scores[:kept], [1, 0, 2]),
            step_log_probs=tf.transpose(step_log_probs[:kept], [1, 0, 2]),
            step_lengths=sentence_steps,
            num_steps=kept,
        )

    def predictions(self, result):
        return beam_search_predictions(result)

    def nbest_predictions(self, result, n_best):
        """The `n_best` best hypotheses of every sentence, best first.

        Args:
          result: A `BeamSearchResult`.
          n_best: N, a Python int in `[1, beam_width]`.

        Returns:
          A dict with `nbest.predicted_ids` [B, N, T] int32,
          `nbest.predicted_len` [B, N] int32, `nbest.scores` [B, N] float32
          (the ranking scores), `nbest.log_probs` [B, N] float32 and, for
          decoders with attention, `nbest.attention_scores` [B, N, T, S].

        Raises:
          ConfigError: `n_best` exceeds the beam width.
        """
        if not 1 <= n_best <= self.beam_width:
            raise ConfigError(
                f"n_best {n_best} needs beam search with "
                f"inference.beam_search.beam_width >= {n_best} (it is "
                f"{self.beam_width}); raise the beam width or lower n_best."
            )
        predictions = {
            "nbest.predicted_ids": result.ids[:, :n_best],
            "nbest.predicted_len": result.lengths[:, :n_best],
            "nbest.scores": result.scores[:, :n_best],
            "nbest.log_probs": result.log_probs[:, :n_best],
        }
        if result.attention is not None:
            predictions["nbest.attention_scores"] = result.attention[:, :n_best]
        return predictions


def beam_search_decode(
    decoder,
    embedding_fn,
    start_ids,
    end_id,
    state,
    memory,
    config,
    max_length=None,
    jit_compile=None,
    early_stopping=False,
    n_best=1,
):
    """`dynamic_decode` with the `BeamSearch` strategy.

    Args:
      decoder: An object with `step(inputs [N, E], state, memory, training)
        -> (logits [N, V], new_state, attention [N, S] or None)`.
      embedding_fn: Maps [N] int32 ids to [N, E] embeddings.
      start_ids: [B] int ids fed at the first step (SEQUENCE_START).
      end_id: Int id that ends a hypothesis (SEQUENCE_END); the config's
        `eos_token` when None.
      state: The decoder's initial state for the B sentences (not tiled; a
        nest of [B, ...] tensors).
      memory: The decoder's memory for the B sentences (not tiled).
      config: A `BeamSearchConfig`; `choose_successors_fn` may be a name.
      max_length: Most steps to run (int or scalar tensor, >= 1); the
        decoder's `max_decode_length` when None.
      jit_compile: Compile the search loop with XLA (see `dynamic_decode`).
      early_stopping: Stop once every sentence's best hypothesis is settled
        (see `BeamSearch`).
      n_best: With `early_stopping`, wait until the `n_best` best
        hypotheses of every sentence are settled.

    Returns:
      A `BeamSearchResult`.

    Raises:
      ConfigError: A bad beam width or an unknown successor function.
      ValueError: The logits' size differs from `config.vocab_size`, or
        `jit_compile` with a `max_length` known only at run time.
    """
    strategy = BeamSearch(config, early_stopping=early_stopping, n_best=n_best)
    if end_id is None:
        end_id = strategy.config.eos_token
    return dynamic_decode(
        decoder,
        strategy,
        None,
        embedding_fn,
        start_ids,
        end_id,
        state,
        memory,
        max_length,
        jit_compile=jit_compile,
    )


def beam_search_predictions(result):
    """The model's prediction dict for a `BeamSearchResult`.

    Args:
      result: A `BeamSearchResult`.

    Returns:
      A dict with the best hypothesis as greedy decoding reports it
      (`predicted_ids` [B, T], `predicted_len` [B], `log_probs` [B] and, for
      attention decoders, `attention_scores` [B, T, S]) and the search trace
      (`beam_search_output.predicted_ids`, `.beam_parent_ids`, `.scores`,
      `.log_probs`, all [B, T, K], and `beam_search_output.length` [B]).
    """
    predictions = {
        "predicted_ids": result.ids[:, 0],
        "predicted_len": result.lengths[:, 0],
        "log_probs": result.log_probs[:, 0],
        "beam_search_output.predicted_ids": result.step_ids,
        "beam_search_output.beam_parent_ids": result.step_parent_ids,
        "beam_search_output.scores": result.step_scores,
        "beam_search_output.log_probs": result.step_log_probs,
        "beam_search_output.length": result.step_lengths,
    }
    if result.attention is not None:
        predictions["attention_scores"] = result.attention[:, 0]
    return predictions
