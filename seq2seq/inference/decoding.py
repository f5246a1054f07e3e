"""Decoding strategies: free-running generation driven by `decoder.step`.

A strategy owns the loop over time, the choice of the next token and the
stopping rule; the decoder only maps `(inputs, state, memory)` to
`(logits, new_state, attention)`. Any decoder with that `step` (an RNN
decoder, an attention decoder, a Transformer decoder whose state is its
key/value cache) works with every strategy here.

All loops are `tf.while_loop`s, so the strategies can be traced inside
`tf.function` with a dynamic batch size and length limit.

The nest helpers (`tile_batch`, `gather_batch`, `where_batch`,
`split_beams`, `merge_beams`, `gather_beams`) treat any state or memory
structure whose tensor leaves start with the batch dimension; rank-0 leaves
(step counters and the like) are passed through untouched. Beam search is
meant to be built from them next to `greedy_decode`.
"""

import collections
import contextlib
import threading

import tensorflow as tf

from seq2seq.errors import ConfigError

SAMPLING_MODES = ("argmax", "sample")


class DecodeResult(
    collections.namedtuple(
        "DecodeResult", ["ids", "lengths", "log_probs", "step_log_probs", "attention"]
    )
):
    """Output of a decoding strategy.

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


# ----------------------------------------------------------------- nests


def _map_batch_leaves(fn, nest):
    """Applies `fn` to every tensor leaf of rank >= 1; others pass through."""

    def apply(leaf):
        leaf = tf.convert_to_tensor(leaf)
        if leaf.shape.rank == 0:
            return leaf
        return fn(leaf)

    return tf.nest.map_structure(apply, nest)


def tile_batch(nest, multiplier):
    """Repeats every batch entry `multiplier` times, keeping copies adjacent.

    `[a, b]` with multiplier 3 becomes `[a, a, a, b, b, b]`: the layout that
    beam search uses for `[B * K, ...]` tensors.

    Args:
      nest: A nest of [B, ...] tensors.
      multiplier: Python int.

    Returns:
      The same structure with [B * multiplier, ...] leaves.
    """
    return _map_batch_leaves(lambda t: tf.repeat(t, multiplier, axis=0), nest)


def gather_batch(nest, indices):
    """Selects batch entries of every leaf: `leaf[indices]` along axis 0.

    Args:
      nest: A nest of [B, ...] tensors.
      indices: [N] int indices into the batch.

    Returns:
      The same structure with [N, ...] leaves.
    """
    return _map_batch_leaves(lambda t: tf.gather(t, indices, axis=0), nest)


def where_batch(condition, x, y):
    """Per batch entry, takes the leaf of `x` where `condition`, else of `y`.

    Args:
      condition: [B] bool.
      x: A nest of [B, ...] tensors.
      y: A nest with the same structure, shapes and dtypes as `x`.

    Returns:
      The selected nest.
    """

    def select(a, b):
        a = tf.convert_to_tensor(a)
        b = tf.convert_to_tensor(b)
        if b.shape.rank == 0:
            return b
        mask = tf.reshape(condition, [-1] + [1] * (b.shape.rank - 1))
        return tf.where(mask, a, b)

    return tf.nest.map_structure(select, x, y)


def split_beams(tensor, beam_width):
    """[B * K, ...] -> [B, K, ...]."""
    shape = tf.shape(tensor)
    new_shape = tf.concat([[-1, beam_width], shape[1:]], axis=0)
    return tf.reshape(tensor, new_shape)


def merge_beams(tensor):
    """[B, K, ...] -> [B * K, ...]."""
    shape = tf.shape(tensor)
    new_shape = tf.concat([[shape[0] * shape[1]], shape[2:]], axis=0)
    return tf.reshape(tensor, new_shape)


def gather_beams(nest, parent_ids, beam_width):
    """Reorders the beams of every leaf of a flattened-beam nest.

    Args:
      nest: A nest of [B * K, ...] tensors (beams of an entry adjacent).
      parent_ids: [B, K] int indices in `[0, K)`: the new beam `k` of entry
        `b` copies the old beam `parent_ids[b, k]` of the same entry.
      beam_width: K, a Python int.

    Returns:
      The reordered nest, [B * K, ...] leaves.
    """
    parent_ids = tf.cast(parent_ids, tf.int32)
    offsets = tf.range(tf.shape(parent_ids)[0]) * beam_width
    flat = tf.reshape(parent_ids + offsets[:, None], [-1])
    return gather_batch(nest, flat)


# -------------------------------------------------------------- sampling


def _check_sampling(sampling, temperature):
    if sampling not in SAMPLING_MODES:
        raise ConfigError(
            f"unknown sampling mode {sampling!r}; use one of "
            f"{', '.join(SAMPLING_MODES)}."
        )
    if sampling == "sample" and not temperature > 0:
        raise ConfigError(f"sampling temperature must be > 0, got {temperature!r}.")


def select_ids(log_probs, sampling="argmax", temperature=1.0, seed=None, step=0):
    """Chooses one token per row.

    Args:
      log_probs: [B, V] float32 log-probabilities.
      sampling: `argmax` (most likely token) or `sample` (draw from
        `softmax(log_probs / temperature)`).
      temperature: Sampling temperature, > 0.
      seed: Optional int; with a seed, draws are stateless and depend only
        on `(seed, step)`, so runs are reproducible.
      step: The decoding step (int or scalar tensor), mixed into the seed.

    Returns:
      [B] int32 token ids.
    """
    if sampling == "argmax":
        return tf.argmax(log_probs, axis=-1, output_type=tf.int32)
    logits = log_probs / tf.cast(temperature, log_probs.dtype)
    if seed is None:
        draws = tf.random.categorical(logits, 1, dtype=tf.int32)
    else:
        pair = tf.stack([tf.cast(seed, tf.int32), tf.cast(step, tf.int32)])
        draws = tf.random.stateless_categorical(logits, 1, seed=pair, dtype=tf.int32)
    return draws[:, 0]


def argmax_log_prob(logits, ids):
    """The log-probability of each row's most likely token, from its logits.

    `log_softmax(logits)[b, ids[b]]` without the [B, V] log-softmax: at the
    row's maximum it is `-log(sum(exp(logits - max)))`, which is how the
    log-softmax kernel computes it (the same value, bit for bit, on CPU and
    under XLA; `logit - reduce_logsumexp` differs in the last bit).

    Args:
      logits: [B, V] float32.
      ids: [B] int32 argmax of each row.

    Returns:
      [B] float32 log-probabilities (<= 0).
    """
    best = tf.gather(logits, ids, axis=1, batch_dims=1)
    return -tf.math.log(tf.reduce_sum(tf.exp(logits - best[:, None]), axis=-1))


# ------------------------------------------------------------------- XLA

_JIT_DEFAULT = threading.local()


@contextlib.contextmanager
def default_jit_compile(enabled):
    """Sets `jit_compile` for strategies called with `jit_compile=None`.

    The strategies read it when they are traced, so a `tf.function` that
    calls a model's `infer` must be traced inside the block:

        with decoding.default_jit_compile(True):
            concrete = tf.function(model.infer).get_concrete_function(spec)

    Args:
      enabled: Whether the decoding loops are compiled with XLA.

    Yields:
      Nothing.
    """
    previous = getattr(_JIT_DEFAULT, "value", False)
    _JIT_DEFAULT.value = bool(enabled)
    try:
        yield
    finally:
        _JIT_DEFAULT.value = previous


def resolve_jit_compile(jit_compile):
    """`jit_compile`, or the `default_jit_compile` in effect when None."""
    if jit_compile is None:
        return getattr(_JIT_DEFAULT, "value", False)
    return bool(jit_compile)


def static_max_length(max_length):
    """The decode length limit as a Python int, as XLA needs it.

    Args:
      max_length: An int or a scalar tensor whose value is known when the
        graph is built.

    Returns:
      The int.

    Raises:
      ValueError: The value is only known at run time.
    """
    value = tf.get_static_value(max_length)
    if value is None:
        raise ValueError(
            "jit_compile decoding needs a max_length known when tracing (a "
            f"Python int or a constant), got {max_length!r}"
        )
    return int(value)


def run_decode_loop(loop_fn, args, jit_compile):
    """Calls `loop_fn(*args)`, compiled with XLA when `jit_compile`.

    The compiled function is made once per trace of the caller, so inside
    a `tf.function` XLA compiles it once per distinct input shape.
    """
    if not jit_compile:
        return loop_fn(*args)
    return tf.function(loop_fn, jit_compile=True, autograph=False)(*args)


def collect_steps(array, num_steps, jit_compile):
    """The `num_steps` first elements of a per-step `TensorArray`, stacked.

    Under XLA the array has its static size and is stacked whole (the
    caller slices it to `num_steps` outside the compiled loop); otherwise
    only the written elements are gathered.
    """
    if jit_compile:
        return array.stack()
    return array.gather(tf.range(num_steps))


# ------------------------------------------------------------ strategies


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
    """Generates one sequence per batch entry, one token at a time.

    At each step the previous token is embedded, `decoder.step` gives the
    next distribution, and a token is chosen (`argmax`, or drawn with
    `sample`). A sequence finishes when it emits `end_id`; from then on it
    emits `end_id`, adds nothing to its score and keeps its state. The loop
    stops when every sequence has finished or after `max_length` steps. An
    empty batch (B = 0) gives empty results with `T = 0`.

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
      sampling: `argmax` or `sample`.
      temperature: Softmax temperature for `sample`.
      seed: Optional int for reproducible sampling.
      jit_compile: Compile the decoding loop with XLA (once per input
        shape); `max_length` must then be known when tracing. None: the
        `default_jit_compile` in effect (off by default).

    Returns:
      A `DecodeResult`. Log-probabilities are those of the model (without
      the temperature).

    Raises:
      ConfigError: An unknown sampling mode or a non-positive temperature.
      ValueError: `jit_compile` with a `max_length` known only at run time.
    """
    _check_sampling(sampling, temperature)
    jit_compile = resolve_jit_compile(jit_compile)
    if max_length is None:
        max_length = decoder.max_decode_length
    if jit_compile:
        max_length = static_max_length(max_length)
    start_ids = tf.cast(tf.convert_to_tensor(start_ids), tf.int32)
    saw_attention = []

    def loop(start_ids, state, memory):
        limit = tf.cast(max_length, tf.int32)
        stop_id = tf.cast(end_id, tf.int32)
        batch_size = tf.shape(start_ids)[0]

        def cond(step, prev_ids, state, finished, *_):
            del prev_ids, state
            # The first step always runs, so that an empty batch still
            # gives the arrays an element to gather.
            return tf.logical_and(
                step < limit,
                tf.logical_or(
                    tf.equal(step, 0), tf.logical_not(tf.reduce_all(finished))
                ),
            )

        def body(
            step, prev_ids, state, finished, lengths, scores, ids_ta, lp_ta, att_ta
        ):
            logits, new_state, attention = decoder.step(
                embedding_fn(prev_ids), state, memory, training=False
            )
            logits = tf.cast(logits, tf.float32)
            if sampling == "argmax":
                ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
                chosen = argmax_log_prob(logits, ids)
            else:
                log_probs = tf.nn.log_softmax(logits, axis=-1)
                ids = select_ids(log_probs, sampling, temperature, seed, step)
                chosen = tf.gather(log_probs, ids, axis=1, batch_dims=1)
            ids = tf.where(finished, stop_id, ids)
            chosen = tf.where(finished, 0.0, chosen)
            lengths = lengths + tf.cast(tf.logical_not(finished), tf.int32)
            scores = scores + chosen
            new_state = where_batch(finished, state, new_state)
            ids_ta = ids_ta.write(step, ids)
            lp_ta = lp_ta.write(step, chosen)
            if attention is not None:
                saw_attention.append(True)
                attention = tf.cast(attention, tf.float32)
                attention = tf.where(finished[:, None], 0.0, attention)
                att_ta = att_ta.write(step, attention)
            finished = tf.logical_or(finished, tf.equal(ids, stop_id))
            return (
                step + 1,
                ids,
                new_state,
                finished,
                lengths,
                scores,
                ids_ta,
                lp_ta,
                att_ta,
            )

        loop_vars = (
            tf.constant(0, tf.int32),
            start_ids,
            state,
            tf.zeros([batch_size], tf.bool),
            tf.zeros([batch_size], tf.int32),
            tf.zeros([batch_size], tf.float32),
            tf.TensorArray(tf.int32, size=limit),
            tf.TensorArray(tf.float32, size=limit),
            tf.TensorArray(tf.float32, size=limit),
        )
        outputs = tf.while_loop(cond, body, loop_vars, maximum_iterations=limit)
        num_steps, _, _, _, lengths, scores, ids_ta, lp_ta, att_ta = outputs
        results = {
            "num_steps": num_steps,
            "lengths": lengths,
            "scores": scores,
            "ids": collect_steps(ids_ta, num_steps, jit_compile),
            "step_log_probs": collect_steps(lp_ta, num_steps, jit_compile),
        }
        if saw_attention:
            results["attention"] = collect_steps(att_ta, num_steps, jit_compile)
        return results

    results = run_decode_loop(loop, (start_ids, state, memory), jit_compile)
    # T = 0 for an empty batch, which still ran one step.
    num_steps = results["num_steps"] * tf.minimum(tf.shape(start_ids)[0], 1)
    ids = tf.transpose(results["ids"][:num_steps])
    step_log_probs = tf.transpose(results["step_log_probs"][:num_steps])
    attention = None
    if "attention" in results:
        attention = tf.transpose(results["attention"][:num_steps], [1, 0, 2])
    return DecodeResult(
        ids, results["lengths"], results["scores"], step_log_probs, attention
    )
