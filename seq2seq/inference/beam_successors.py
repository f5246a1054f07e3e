"""How a beam search scores hypotheses and chooses the successors of a step.

Scoring follows GNMT (https://arxiv.org/abs/1609.08144): a hypothesis with
total log-probability `log_p` and `n` tokens scores `log_p / length_penalty(n)`
with `length_penalty(n) = ((5 + n) / 6) ** length_penalty_weight`, plus the
GNMT coverage penalty of a finished hypothesis when
`coverage_penalty_weight` is set (`coverage_penalty`).

Each step extends every one of the `K` hypotheses of a sentence by every
token and keeps `K` successors among the `K * V` candidates
(`choose_successors_fn`). With the default `choose_top_k` only each
hypothesis' best few tokens can win (all its extensions share one length
penalty), so `_two_stage_successors` ranks those (found by `top_k_rows`
without sorting whole rows) and gives the full search's choice.
"""

import math

import numpy as np
import tensorflow as tf

from seq2seq.errors import ConfigError

# ------------------------------------------------------------- scoring


def length_penalty(sequence_lengths, penalty_factor):
    """The GNMT length penalty `((5 + n) / 6) ** penalty_factor`.

    Args:
      sequence_lengths: Int or float tensor of any shape: hypothesis lengths
        (end token counted once).
      penalty_factor: Scalar `alpha`; 0 gives 1 everywhere.

    Returns:
      A float32 tensor shaped like `sequence_lengths`.
    """
    lengths = tf.cast(sequence_lengths, tf.float32)
    alpha = tf.cast(penalty_factor, tf.float32)
    return tf.pow((5.0 + lengths) / 6.0, alpha)


def hyp_score(log_probs, sequence_lengths, config):
    """Ranking score `log_probs / length_penalty(sequence_lengths)`.

    Args:
      log_probs: Float tensor of total log-probabilities.
      sequence_lengths: Int tensor broadcastable to `log_probs`.
      config: A `BeamSearchConfig` (its `length_penalty_weight`).

    Returns:
      A float32 tensor shaped like `log_probs`.
    """
    log_probs = tf.cast(log_probs, tf.float32)
    weight = tf.get_static_value(config.length_penalty_weight)
    if weight is not None and float(weight) == 0.0:
        # The penalty is exactly 1: skip a [B, K, V] division per step.
        return log_probs
    penalty = length_penalty(sequence_lengths, config.length_penalty_weight)
    return log_probs / penalty


def coverage_penalty(accumulated, source_mask, weight):
    """The GNMT coverage penalty `weight * sum_i log(min(a_i, 1))`.

    `a_i` is the attention that source position `i` received, summed over
    the steps of a hypothesis; positions outside `source_mask` (padding)
    add nothing. A real position that received no attention at all counts
    as `log(tiny)` (about -87) instead of `-inf`, so that the hypothesis
    still has a finite score to rank by.

    Args:
      accumulated: [..., S] float32 attention summed over the steps.
      source_mask: bool, broadcastable to `accumulated`: the real source
        positions.
      weight: Python float `beta` (>= 0).

    Returns:
      A float32 tensor shaped like `accumulated` without its last axis (<= 0
      for a positive weight).
    """
    accumulated = tf.cast(accumulated, tf.float32)
    tiny = np.finfo(np.float32).tiny
    logs = tf.math.log(tf.clip_by_value(accumulated, tiny, 1.0))
    logs = tf.where(source_mask, logs, 0.0)
    return tf.cast(weight, tf.float32) * tf.reduce_sum(logs, axis=-1)


def choose_top_k(scores_flat, config):
    """Keeps the `beam_width` best candidates of each sentence.

    Args:
      scores_flat: [B, K * V] float32 candidate scores; candidate `i`
        extends beam `i // V` with token `i % V`.
      config: A `BeamSearchConfig`.

    Returns:
      `(scores [B, K] descending, indices [B, K] int32 into K * V)`; among
      equal scores the lower index comes first.
    """
    return tf.math.top_k(scores_flat, k=config.beam_width)


def choose_top_k_sample(scores_flat, config):
    """Draws `beam_width` distinct candidates per sentence, each with
    probability proportional to `exp(score)` (sampling without
    replacement through Gumbel noise and top-k), for diverse n-best lists.

    Args:
      scores_flat: [B, K * V] float32 candidate scores.
      config: A `BeamSearchConfig`.

    Returns:
      `(scores [B, K], indices [B, K] int32)`: the drawn candidates' own
      scores (without the noise), in the order of the noisy scores.
    """
    uniform = tf.random.uniform(
        tf.shape(scores_flat), minval=np.finfo(np.float32).tiny, maxval=1.0
    )
    gumbel = -tf.math.log(-tf.math.log(uniform))
    _, indices = tf.math.top_k(scores_flat + gumbel, k=config.beam_width)
    return tf.gather(scores_flat, indices, batch_dims=1), indices


CHOOSE_SUCCESSORS_FNS = {
    "choose_top_k": choose_top_k,
    "choose_top_k_sample": choose_top_k_sample,
}


def get_choose_successors_fn(name):
    """Resolves `inference.beam_search.choose_successors_fn`.

    Args:
      name: A name from `CHOOSE_SUCCESSORS_FNS` (`choose_top_k`,
        `choose_top_k_sample`), or a callable, returned as is.

    Returns:
      The function.

    Raises:
      ConfigError: An unknown name.
    """
    if callable(name):
        return name
    if name not in CHOOSE_SUCCESSORS_FNS:
        raise ConfigError(
            f"unknown inference.beam_search.choose_successors_fn {name!r}; "
            f"use one of {', '.join(sorted(CHOOSE_SUCCESSORS_FNS))}."
        )
    return CHOOSE_SUCCESSORS_FNS[name]


# ------------------------------------------------ choosing successors

# Tokens offered per hypothesis beyond K, so that a tie at the K-th token
# rarely needs the full scoring.
_EXTRA_CANDIDATES = 3

# Below this vocabulary size a row's top-k is taken directly.
_BLOCKED_TOP_K_MIN_VOCAB = 512

# `exp(80)` is far below the float32 maximum (about `exp(88.7)`).
_MAX_LOG_PENALTY = 80.0


def _block_size(vocab, k):
    """Block length for `top_k_rows`.

    The work after the blockwise maximum is about `vocab / size + k * size`
    per row, least near `sqrt(vocab / k)`; a divisor of `vocab` near that
    saves padding the rows.
    """
    target = max(1, int(round(math.sqrt(vocab / k))))
    divisors = [
        size for size in range(max(1, target // 2), 2 * target + 1) if vocab % size == 0
    ]
    if divisors:
        return min(divisors, key=lambda size: vocab // size + k * size)
    return target


def top_k_rows(values, k):
    """`tf.math.top_k(values, k)` for long rows, in two cheap passes.

    The row is cut into blocks; only the `k` blocks with the largest maxima
    can hold the row's `k` largest entries, so the top-k runs on the
    blockwise maxima and then on those `k` blocks. The blocks are kept in
    their order along the row, so ties resolve as in `tf.math.top_k` (lower
    index first) and the result is the same, values and indices.

    Args:
      values: [N, V] float32 with a static `V >= k`.
      k: Python int >= 1.

    Returns:
      `(values [N, k] descending, indices [N, k] int32)`.
    """
    vocab = int(values.shape[-1])
    size = _block_size(vocab, k)
    blocks = -(-vocab // size)
    if vocab < _BLOCKED_TOP_K_MIN_VOCAB or blocks <= k:
        return tf.math.top_k(values, k)
    rows = tf.shape(values)[0]
    if blocks * size != vocab:
        # -inf padding after the row never outranks a real entry.
        values = tf.pad(
            values, [[0, 0], [0, blocks * size - vocab]], constant_values=-np.inf
        )
    values = tf.reshape(values, [rows, blocks, size])
    _, best = tf.math.top_k(tf.reduce_max(values, axis=-1), k)
    best = tf.sort(best, axis=-1)
    candidates = tf.reshape(tf.gather(values, best, batch_dims=1), [rows, k * size])
    top, position = tf.math.top_k(candidates, k)
    block = tf.gather(best, position // size, batch_dims=1)
    return top, block * size + position % size


def _two_stage_applies(config, max_length):
    """Whether `_two_stage_successors` gives the full search's choice.

    It needs the default `choose_top_k`, and candidate scores that keep the
    order of their log-probabilities within a hypothesis. They do: all the
    candidates of a hypothesis share its length, so its penalty
    `((5 + n) / 6) ** alpha` with `n >= 1` is one factor >= 1 (alpha >= 0)
    or in (0, 1] (alpha < 0), and dividing by a positive number keeps the
    order, rounding included, for any real alpha, as long as the penalty
    neither overflows nor underflows (then `-inf / inf` and `0 / 0` give
    NaN). So alpha must be known when tracing, finite, and small enough for
    the longest possible hypothesis (`max_length`, or 2**31 when only known
    at run time): `|alpha| * log((6 + max_length) / 6) <= 80`.
    """
    if config.choose_successors_fn is not choose_top_k:
        return False
    alpha = tf.get_static_value(config.length_penalty_weight)
    if alpha is None or np.ndim(alpha) != 0:
        return False
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        return False
    if not math.isfinite(alpha):
        return False
    longest = tf.get_static_value(max_length)
    longest = 2**31 if longest is None else int(longest)
    return abs(alpha) * math.log((6.0 + longest) / 6.0) <= _MAX_LOG_PENALTY


def _full_successors(
    token_lp, log_probs, finished, new_lengths, stop_id, config, bonus=None
):
    """Scores all `K * V` extensions and lets `choose_successors_fn` pick.

    Args:
      token_lp: [B, K, V] float32 log-softmax of each hypothesis' logits.
      log_probs: [B, K] float32 total log-probability of each hypothesis.
      finished: [B, K] bool.
      new_lengths: [B, K] int32 lengths after one more step.
      stop_id: int32 scalar, the end token.
      config: A `BeamSearchConfig`.
      bonus: Optional [B, K] float32 added to the score of every extension
        of a hypothesis (the coverage penalty of the finished ones).

    Returns:
      `(scores, parents, word_ids, chosen_lp)`, each [B, K]: the successors'
      scores, parent slots, tokens and token log-probabilities.
    """
    batch_size = tf.shape(token_lp)[0]
    width = config.beam_width
    static_vocab = token_lp.shape[-1]
    vocab = tf.shape(token_lp)[-1] if static_vocab is None else int(static_vocab)
    # A finished hypothesis may only repeat the end token, for free.
    end_only = tf.where(tf.equal(tf.range(vocab), stop_id), 0.0, -np.inf)
    token_lp = tf.where(finished[:, :, None], end_only, token_lp)
    totals = log_probs[:, :, None] + token_lp  # [B, K, V]
    scores = hyp_score(totals, new_lengths[:, :, None], config)
    if bonus is not None:
        scores += bonus[:, :, None]
    scores = tf.reshape(scores, [batch_size, width * vocab])
    if config.choose_successors_fn is choose_top_k and static_vocab is not None:
        # The same choice as `choose_top_k`, ties included, for less work.
        top_scores, top_indices = top_k_rows(scores, width)
    else:
        top_scores, top_indices = config.choose_successors_fn(scores, config)
    top_indices = tf.cast(top_indices, tf.int32)
    parents = top_indices // vocab
    word_ids = top_indices % vocab
    chosen_lp = tf.gather(
        tf.reshape(token_lp, [batch_size, width * vocab]), top_indices, batch_dims=1
    )
    return tf.cast(top_scores, tf.float32), parents, word_ids, chosen_lp


def _two_stage_successors(
    token_lp, log_probs, finished, new_lengths, stop_id, config, bonus=None
):
    """`_full_successors` with `choose_top_k`, scoring only `K * K` candidates.

    A hypothesis' best `K` extensions are its `K` most likely tokens (all
    its candidates share its length penalty, see `_two_stage_applies`), so
    the `K` best of the sentence are among those `K * K`, ranked as the full
    search ranks them: by score, then by parent and token id. That holds
    for ties too. Candidates at `-inf` are offered as the full search would
    take them (lowest ids first): a finished hypothesis offers its end
    token and the lowest other ids, a hypothesis at `-inf` the ids
    `0, 1, ...`, an unfinished one its tokens as `top_k` ranks them (equal
    log-probabilities by id). Two different log-probabilities may give the
    same score after the addition and the penalty: if such a tie falls at
    the `K`-th token of an unfinished hypothesis (its `K + 1`-th token
    scores the same), its best `K` are not certain, and the step returns
    `cut_tie` so that the caller scores all candidates instead.

    Args: as `_full_successors`; `token_lp` needs a static `V`. A `bonus`
    is the same for all the extensions of a hypothesis, so it keeps their
    order.

    Returns:
      `((scores, parents, word_ids, chosen_lp), cut_tie)`: the successors as
      `_full_successors` gives them and a bool scalar.
    """
    batch_size = tf.shape(token_lp)[0]
    width = config.beam_width
    vocab = int(token_lp.shape[-1])
    per_hyp = min(width + _EXTRA_CANDIDATES, vocab)
    probe = per_hyp < vocab  # one token more, to detect a tie at the cut
    neg_inf = tf.constant(-np.inf, tf.float32)
    top_lp, top_ids = top_k_rows(tf.reshape(token_lp, [-1, vocab]), per_hyp + probe)
    top_lp = tf.reshape(top_lp, [batch_size, width, per_hyp + probe])
    top_ids = tf.reshape(top_ids, [batch_size, width, per_hyp + probe])
    lowest = tf.range(per_hyp)
    others = lowest[:-1] + tf.cast(lowest[:-1] >= stop_id, tf.int32)
    end_first = tf.concat([stop_id[None], others], axis=0)
    offer = tf.where(finished[:, :, None], end_first, top_ids[:, :, :per_hyp])
    offer = tf.where(tf.equal(log_probs, neg_inf)[:, :, None], lowest, offer)
    cand_lp = tf.gather(token_lp, offer, batch_dims=2)  # [B, K, K']
    end_lp = tf.where(tf.equal(offer, stop_id), 0.0, neg_inf)
    cand_lp = tf.where(finished[:, :, None], end_lp, cand_lp)
    scores = hyp_score(log_probs[:, :, None] + cand_lp, new_lengths[:, :, None], config)
    if bonus is not None:
        scores += bonus[:, :, None]

    # Visit the candidates in the order of their index in the full search's
    # [K * V] row, so that `top_k` resolves equal scores as it does there.
    flat_shape = [batch_size, width * per_hyp]
    full_index = tf.reshape(tf.range(width)[:, None] * vocab + offer, flat_shape)
    order = tf.argsort(full_index, axis=-1)
    sorted_scores = tf.gather(tf.reshape(scores, flat_shape), order, batch_dims=1)
    top_scores, position = tf.math.top_k(sorted_scores, width)
    position = tf.gather(order, position, batch_dims=1)
    parents = position // per_hyp
    word_ids = tf.gather(tf.reshape(offer, flat_shape), position, batch_dims=1)
    chosen_lp = tf.gather(tf.reshape(cand_lp, flat_shape), position, batch_dims=1)
    successors = (top_scores, parents, word_ids, chosen_lp)

    if not probe:  # every token of every hypothesis was offered
        return successors, tf.constant(False)
    left_out = hyp_score(log_probs + top_lp[:, :, per_hyp], new_lengths, config)
    if bonus is not None:
        left_out += bonus
    # The score of the K-th token: a hypothesis gives at most K successors.
    last_in = scores[:, :, width - 1]
    unfinished = tf.logical_and(tf.logical_not(finished), log_probs > neg_inf)
    tie = tf.logical_and(tf.equal(left_out, last_in), last_in > neg_inf)
    return successors, tf.reduce_any(tf.logical_and(unfinished, tie))
