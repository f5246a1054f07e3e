"""Constrained decoding: a forced target prefix per sentence, banned tokens,
a length limit per sentence.

Both constraints act on the `[N, V]` scores of a step before a strategy
chooses: a token that may not be produced gets `-inf`, and the scores of
the allowed tokens are left as they are.

- Target prefix: while `time < prefix_len[b]`, sentence `b` may only
  produce `prefix_ids[b, time]`; after that it decodes freely. Beam search
  then keeps a single live hypothesis per sentence during the prefix (the
  other slots stay at `-inf`, as before its first step) and spreads into
  `K` different hypotheses at the first free step, so the beam never holds
  `K` copies of one hypothesis. A prefix token is forced even if it is
  banned.
- Banned tokens: never produced. `SEQUENCE_END` cannot be banned (a
  sequence must be able to end).
- Length limit per sentence: sentence `b` produces at most `max_len[b]`
  tokens, `SEQUENCE_END` included; at step `max_len[b] - 1` only
  `SEQUENCE_END` is allowed. A model sets it from the source length
  (`inference.max_decode_length_ratio`, see
  `Seq2SeqModel.sentence_length_limits`), which stops a free-running
  decoder that repeats itself on a long input early, instead of at the
  batch's `max_decode_length`.

Scores stay the model's: the log-probability recorded for a step is the
model's full-vocabulary `log_softmax` of the chosen token, so a forced
token adds its own log-probability and the result's `log_probs` equal a
teacher-forced score of the output. Greedy decoding chooses among the
allowed tokens (a `RandomSampler` draws from the model's distribution
restricted to them); beam search ranks the allowed extensions.

`dynamic_decode(..., constraints=...)` takes a `DecodeConstraints` built by
`make_constraints`; a model builds it from its `inference.banned_tokens*`
params and the `target_prefix_ids` / `target_prefix_len` features:

| param | default | meaning |
| --- | --- | --- |
| `inference.banned_tokens` | `[]` | target tokens never to produce |
| `inference.banned_tokens_file` | `""` | a file with more of them, one per line |
"""

import collections
import os

import numpy as np
import tensorflow as tf

from seq2seq.errors import ConfigError

SEQUENCE_END = "SEQUENCE_END"


class DecodeConstraints(
    collections.namedtuple(
        "DecodeConstraints",
        ["prefix_ids", "prefix_len", "banned_ids", "max_len", "end_id"],
        defaults=(None, None),
    )
):
    """What a decoding may produce. Any field may be None (no constraint).

    Fields:
      prefix_ids: [N, P] int32 forced tokens of each row, `P >= 1` (padding
        after `prefix_len` is never read).
      prefix_len: [N] int32 number of forced tokens of each row.
      banned_ids: [M] int32 ids that are never produced.
      max_len: [N] int32 most tokens of each row, `SEQUENCE_END` included
        (with `end_id`).
      end_id: int32 scalar, the `SEQUENCE_END` id (with `max_len`).
    """


def default_params():
    """The model params of the banned tokens (none by default)."""
    return {"inference.banned_tokens": [], "inference.banned_tokens_file": ""}


def make_constraints(
    prefix_ids=None, prefix_len=None, banned_ids=None, max_len=None, end_id=None
):
    """Builds the constraints of a batch, or None when there are none.

    Args:
      prefix_ids: Optional [B, P] int forced target tokens (padded).
      prefix_len: [B] int number of forced tokens per sentence (with
        `prefix_ids`).
      banned_ids: Optional sequence of ints or [M] int tensor.
      max_len: Optional [B] int most tokens per sentence, `SEQUENCE_END`
        included; raised to `prefix_len + 1` where a prefix is longer.
      end_id: The `SEQUENCE_END` id (with `max_len`).

    Returns:
      A `DecodeConstraints` for `dynamic_decode`, or None.
    """
    if prefix_ids is not None:
        prefix_ids = tf.cast(prefix_ids, tf.int32)
        # One column more, so that the column read at any step exists even
        # when every prefix of the batch is empty (P = 0).
        prefix_ids = tf.pad(prefix_ids, [[0, 0], [0, 1]])
        prefix_len = tf.cast(prefix_len, tf.int32)
    if banned_ids is not None:
        if not isinstance(banned_ids, tf.Tensor) and len(banned_ids) == 0:
            banned_ids = None
        else:
            banned_ids = tf.reshape(tf.cast(banned_ids, tf.int32), [-1])
    if max_len is not None:
        if end_id is None:
            raise ValueError("make_constraints: max_len needs end_id")
        max_len = tf.maximum(tf.cast(max_len, tf.int32), 1)
        if prefix_len is not None:
            max_len = tf.maximum(max_len, prefix_len + 1)
        end_id = tf.cast(end_id, tf.int32)
    else:
        end_id = None
    if prefix_ids is None and banned_ids is None and max_len is None:
        return None
    return DecodeConstraints(prefix_ids, prefix_len, banned_ids, max_len, end_id)


def tile_constraints(constraints, multiplier):
    """Repeats the per-sentence fields for `multiplier` adjacent rows each.

    Beam search decodes `K` rows per sentence (see `tile_batch`); its
    reordering keeps rows within their sentence, so the tiled prefixes and
    limits stay aligned with the rows.

    Args:
      constraints: A `DecodeConstraints` with [B, ...] fields, or None.
      multiplier: Python int, rows per sentence.

    Returns:
      The constraints with [B * multiplier, ...] per-sentence fields, or
      None.
    """
    if constraints is None or multiplier == 1:
        return constraints
    return _map_rows(lambda rows: tf.repeat(rows, multiplier, axis=0), constraints)


def gather_constraints(constraints, rows):
    """The constraints of some rows: `rows` [A] int32 indices into the N rows
    of a `DecodeConstraints` (or None, returned as it is)."""
    if constraints is None:
        return constraints
    return _map_rows(lambda values: tf.gather(values, rows), constraints)


def _map_rows(fn, constraints):
    """`fn` applied to the per-row fields (prefixes, limits) that are set."""
    fields = ("prefix_ids", "prefix_len", "max_len")
    return constraints._replace(
        **{
            name: fn(getattr(constraints, name))
            for name in fields
            if getattr(constraints, name) is not None
        }
    )


def constrain_scores(constraints, time, scores):
    """Sets the scores of the tokens a step may not produce to `-inf`.

    Args:
      constraints: A `DecodeConstraints` with [N, ...] fields.
      time: int32 scalar, the step (the prefix token `time` is forced).
      scores: [N, V] float logits or log-probabilities of the step.

    Returns:
      [N, V] scores: unchanged where allowed, `-inf` elsewhere.
    """
    neg_inf = tf.constant(-np.inf, scores.dtype)
    token_ids = tf.range(tf.shape(scores)[-1], dtype=tf.int32)
    constrained = scores
    if constraints.banned_ids is not None:
        banned = tf.reduce_any(
            tf.equal(token_ids[:, None], constraints.banned_ids[None, :]), axis=1
        )
        constrained = tf.where(banned[None, :], neg_inf, constrained)
    if constraints.prefix_ids is not None:
        column = tf.minimum(time, tf.shape(constraints.prefix_ids)[1] - 1)
        forced = tf.gather(constraints.prefix_ids, column, axis=1)  # [N]
        only_forced = tf.where(
            tf.equal(token_ids[None, :], forced[:, None]), scores, neg_inf
        )
        forcing = time < constraints.prefix_len
        constrained = tf.where(forcing[:, None], only_forced, constrained)
    if constraints.max_len is not None:
        only_end = tf.where(
            tf.equal(token_ids[None, :], constraints.end_id), scores, neg_inf
        )
        at_limit = time >= constraints.max_len - 1
        constrained = tf.where(at_limit[:, None], only_end, constrained)
    return constrained


def select_constrained(constraints, sampler, logits, time):
    """A sampler's choice among the allowed tokens, with its model log-prob.

    Args:
      constraints: A `DecodeConstraints` with [N, ...] fields.
      sampler: A `Sampler`.
      logits: [N, V] float32 logits of the step.
      time: int32 scalar, the step.

    Returns:
      `(ids [N] int32, log_probs [N] float32)`: the chosen tokens and their
      log-probabilities under the model's unconstrained distribution.
    """
    ids, _ = sampler.select(constrain_scores(constraints, time, logits), time)
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    return ids, tf.gather(log_probs, ids, axis=1, batch_dims=1)


def _read_token_file(path):
    """The tokens of a banned-tokens file, as `(token, line number)` pairs."""
    if not os.path.isfile(path):
        raise ConfigError(
            f"model_params: inference.banned_tokens_file {path} does not exist; "
            "give a file with one target token per line."
        )
    with open(path, encoding="utf-8") as handle:
        return [
            (line.strip(), number)
            for number, line in enumerate(handle, 1)
            if line.strip()
        ]


def banned_token_ids(params, id_to_token):
    """The target ids of `inference.banned_tokens` and the tokens of
    `inference.banned_tokens_file`.

    Args:
      params: A model's params (flat dotted keys).
      id_to_token: Sequence of the target tokens by id, specials included.

    Returns:
      A sorted list of distinct ints (empty: nothing is banned).

    Raises:
      ConfigError: A token outside the target vocabulary, `SEQUENCE_END`, or
        a missing file; the message names the token and the key.
    """
    ids = {str(token): index for index, token in enumerate(id_to_token)}
    vocab = params.get("vocab_target") or "the target vocabulary"
    named = [
        (str(token), "inference.banned_tokens")
        for token in params.get("inference.banned_tokens") or []
    ]
    path = params.get("inference.banned_tokens_file") or ""
    if path:
        named += [
            (token, f"inference.banned_tokens_file ({path}, line {number})")
            for token, number in _read_token_file(path)
        ]
    banned = set()
    for token, where in named:
        if token == SEQUENCE_END:
            raise ConfigError(
                f"model_params: {where}: {SEQUENCE_END} cannot be banned, every "
                "output must be able to end; remove it."
            )
        if token not in ids:
            raise ConfigError(
                f"model_params: {where}: {token!r} is not a token of the target "
                f"vocabulary ({vocab}); list only tokens of that file (or UNK)."
            )
        banned.add(ids[token])
    return sorted(banned)
