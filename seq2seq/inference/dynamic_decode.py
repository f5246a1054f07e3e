"""The one free-running decoding loop, and what strategies build on.

`dynamic_decode(decoder, strategy, sampler, ...)` embeds the previous
tokens, calls `decoder.step`, and hands the logits to a `DecodingStrategy`,
which chooses the next tokens (with the sampler, or by its own rule),
reorders the decoder state if it keeps several hypotheses, says what to
record for the step and when it is done. The loop owns everything else,
once for every strategy: the `tf.while_loop` (traceable inside
`tf.function` with a dynamic batch size and length limit), the first step
that always runs (so that an empty batch still stacks its arrays), the
per-step `TensorArray`s, the attention collection, and the optional XLA
compilation. Optional `DecodeConstraints` (forced target prefixes, banned
tokens; `seq2seq.inference.constraints`) reach the strategy's `step`
through its `DecodeEnv`, one row per decoder row.

The nest helpers (`tile_batch`, `gather_batch`, `scatter_batch`,
`where_batch`, `split_beams`, `merge_beams`, `gather_beams`) treat any state
or memory structure whose tensor leaves start with the batch dimension;
rank-0 leaves (step counters and the like) pass through untouched. They are
how a strategy handles a decoder state without knowing its structure.
"""

import tensorflow as tf

from seq2seq.decoders.samplers import ArgmaxSampler
from seq2seq.errors import ConfigError
from seq2seq.inference.constraints import gather_constraints, tile_constraints
from seq2seq.tracing import TraceSwitch

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


def scatter_batch(nest, indices, updates):
    """Writes `updates` into the batch entries `indices` of every leaf.

    The inverse of `gather_batch` for the selected entries: `leaf[indices]
    = update` along axis 0, other entries unchanged. Rank-0 leaves take the
    value in `updates`.

    Args:
      nest: A nest of [B, ...] tensors.
      indices: [N] int32 distinct indices into the batch.
      updates: A nest with the same structure, [N, ...] leaves.

    Returns:
      The same structure with [B, ...] leaves.
    """

    def scatter(full, part):
        full = tf.convert_to_tensor(full)
        part = tf.convert_to_tensor(part)
        if part.shape.rank == 0:
            return part
        if any(dim == 0 for dim in full.shape[1:]):
            # No element to write, and the scatter refuses an empty tensor.
            return full
        return tf.tensor_scatter_nd_update(full, indices[:, None], part)

    return tf.nest.map_structure(scatter, nest, updates)


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


# ------------------------------------------------------------------- XLA

_JIT_DEFAULT = TraceSwitch()


def default_jit_compile(enabled):
    """Sets `jit_compile` for decoding called with `jit_compile=None`.

    The loop reads it when it is traced, so a `tf.function` that calls a
    model's `infer` must be traced inside the block:

        with decoding.default_jit_compile(True):
            concrete = tf.function(model.infer).get_concrete_function(spec)

    Args:
      enabled: Whether the decoding loops are compiled with XLA.

    Returns:
      A context manager.
    """
    return _JIT_DEFAULT.set(enabled)


def resolve_jit_compile(jit_compile):
    """`jit_compile`, or the `default_jit_compile` in effect when None."""
    if jit_compile is None:
        return _JIT_DEFAULT.value
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


# ------------------------------------------------------------- the loop


class DecodingStrategy:
    """How `dynamic_decode` turns each step's logits into the next inputs.

    A strategy keeps its own loop state (a nest of tensors, e.g. which
    sequences have finished and their scores), may keep several hypotheses
    per sentence (by tiling the decoder state and memory in `initialize`),
    and records per-step tensors under the names of `step_outputs`. A new
    strategy is a subclass in its own module, registered in
    `seq2seq.inference.strategies.STRATEGIES`.
    """

    # Name -> dtype of the [N, ...] tensors recorded at every step.
    step_outputs = {}

    # Decoder rows per sentence (`N / B`): how per-sentence constraints are
    # tiled.
    rows_per_sentence = 1

    @classmethod
    def from_params(cls, params, vocab_size, end_id, beam_width=None, n_best=1):
        """Builds the strategy from a model's `inference.*` params.

        Args:
          params: The model's params (flat dotted keys).
          vocab_size: Number of output classes.
          end_id: The SEQUENCE_END id.
          beam_width: The beam width in effect (the params' or an override).
          n_best: Hypotheses per sentence the caller will read (beam search
            may stop early only once that many are settled).
        """
        del params, vocab_size, end_id, beam_width, n_best
        return cls()

    def check_sampler(self, sampler):
        """Raises a ConfigError when the strategy cannot use `sampler`."""
        del sampler

    def initialize(self, start_ids, state, memory, max_length):
        """The inputs of the loop (traced inside it).

        Args:
          start_ids: [B] int32 first tokens.
          state: The decoder's initial state for the B sentences.
          memory: The decoder's memory for the B sentences.
          max_length: The step limit as given to `dynamic_decode` (a Python
            int when compiling with XLA).

        Returns:
          `(ids [N] int32, state, memory, search_state)`: the first tokens,
          state and memory as the decoder will see them (N rows, e.g.
          `B * K`), and the strategy's loop state.
        """
        raise NotImplementedError

    def finished(self, search_state):
        """Bool scalar: whether decoding may stop before the limit."""
        raise NotImplementedError

    def active_sentences(self, search_state):
        """[B] bool: the sentences that a step still changes, or None (the
        default): all of them.

        A step must leave an inactive sentence as it is: the same tokens,
        decoder state (all its `rows_per_sentence` rows) and search state,
        and step outputs equal to `idle_outputs`. When a strategy names its
        active sentences and the decoder's `independent_rows` is true, the
        loop runs the step (the decoder and the strategy's choice) on the
        active sentences' rows only, outside XLA (see
        `step_active_sentences`): decoding then stops paying for the
        sentences that have ended.
        """
        del search_state
        return None

    def idle_outputs(self, ids, search_state, env):
        """The step outputs of sentences a step leaves as they are.

        Args:
          ids: [N] int32 tokens the step started from.
          search_state: The strategy's loop state.
          env: The `DecodeEnv`.

        Returns:
          A dict of [B, ...] tensors for some names of `step_outputs`, for
          every sentence (the loop keeps the active sentences' own); the
          other outputs, attention included, are zeros.
        """
        del ids, search_state, env
        return {}

    def step(self, time, logits, state, new_state, attention, search_state, env):
        """Chooses the next tokens.

        Args:
          time: int32 scalar, the step.
          logits: [N, V] float32 logits of the step.
          state: The decoder state the step started from.
          new_state: The decoder state `step` returned.
          attention: [N, S] attention scores of the step, or None.
          search_state: The strategy's loop state.
          env: A `DecodeEnv` (end id, sampler, constraints).

        Returns:
          `(ids [N] int32, state, search_state, outputs)`: the next tokens,
          the decoder state for the next step, the loop state and a dict of
          the step's outputs (the names of `step_outputs`, and `attention`:
          [N', S] float32 or None).
        """
        raise NotImplementedError

    def finalize(self, steps, search_state, num_steps, env):
        """The result of decoding, outside the (compiled) loop.

        Args:
          steps: Dict of [T, ...] stacked step outputs (`attention` only for
            decoders with attention).
          search_state: The final loop state.
          num_steps: int32 scalar `T`, the steps run (at least 1).
          env: A `DecodeEnv`; its `nonempty` is 0 for an empty batch and 1
            otherwise (`T * nonempty` steps are kept).

        Returns:
          The strategy's result.
        """
        raise NotImplementedError

    def predictions(self, result):
        """A model's prediction dict for a result of `finalize`."""
        raise NotImplementedError

    def nbest_predictions(self, result, n_best):
        """The `n_best` best hypotheses per sentence as `nbest.*` predictions
        (see `BeamSearch.nbest_predictions`); only strategies that keep
        several hypotheses have them.

        Raises:
          ConfigError: This strategy keeps one hypothesis per sentence.
        """
        del result
        raise ConfigError(
            f"n_best {n_best} needs beam search: set "
            f"inference.beam_search.beam_width >= {n_best} in --model_params."
        )


class DecodeEnv:
    """What a strategy's `step` and `finalize` read besides its own state.

    Attributes:
      end_id: int32 scalar tensor, the id that ends a sequence.
      sampler: The `Sampler` choosing tokens.
      nonempty: int32 scalar: 0 for an empty batch, else 1 (an empty batch
        still runs one step; its results keep `T = 0`).
      constraints: A `DecodeConstraints` with one row per decoder row
        (`seq2seq.inference.constraints`), or None: what a step may produce.
    """

    def __init__(self, end_id, sampler, nonempty=None, constraints=None):
        self.end_id = end_id
        self.sampler = sampler
        self.nonempty = nonempty
        self.constraints = constraints


# `step_active_sentences` steps a multiple of this many sentences: each
# distinct batch size costs cached kernels (oneDNN's, per matmul shape), and
# with every count from 1 to 32 a greedy decoding process grew by about
# 250 MB.
ACTIVE_SENTENCE_MULTIPLE = 8


def sentence_rows(sentences, rows_per_sentence):
    """[A * R] int32 decoder rows of the sentences `sentences` ([A] int32),
    `R = rows_per_sentence` adjacent rows per sentence."""
    if rows_per_sentence == 1:
        return sentences
    offsets = tf.range(rows_per_sentence, dtype=sentences.dtype)
    return tf.reshape(sentences[:, None] * rows_per_sentence + offsets, [-1])


def step_active_sentences(
    step_fn, strategy, active, time, ids, state, memory, search, env
):
    """Runs a whole decoding step on the rows of the `active` sentences only.

    Once fewer sentences are active than the B sentences rounded down to a
    multiple of `ACTIVE_SENTENCE_MULTIPLE`, `step_fn` (the decoder's step
    and the strategy's choice) runs on the rows of the A active sentences,
    gathered (with inactive ones up to that multiple), and the active
    sentences' results are scattered back: an inactive sentence keeps its
    tokens, decoder state and search state, and records the strategy's
    `idle_outputs` (zeros for the others). Otherwise it is one plain step.
    Needs a dynamic batch size, so not for XLA.

    Args:
      step_fn: `(time, ids, state, memory, search, env) -> (ids,
        new_state, search, outputs)` for any number of sentences.
      strategy: The `DecodingStrategy` (its `rows_per_sentence` R and
        `idle_outputs`).
      active: [B] bool.
      time: int32 scalar, the step.
      ids: [N] int32 tokens of the step, `N = B * R`.
      state, memory: [N, ...] nests: the decoder state and memory.
      search: [B, ...] nest: the strategy's loop state.
      env: The `DecodeEnv` of the N rows.

    Returns:
      `step_fn`'s results for the B sentences.
    """
    width = strategy.rows_per_sentence

    def all_sentences():
        return step_fn(time, ids, state, memory, search, env)

    count = tf.reduce_sum(tf.cast(active, tf.int32))
    num_sentences = tf.shape(active)[0]
    multiple = ACTIVE_SENTENCE_MULTIPLE
    # Sentences stepped: the active ones, then inactive ones up to a
    # multiple; only the active sentences' results are kept.
    stepped = tf.minimum(num_sentences, -(-count // multiple) * multiple)

    def some_sentences():
        order = tf.argsort(tf.cast(tf.logical_not(active), tf.int32), stable=True)
        sentences = tf.cast(order[:stepped], tf.int32)
        rows = sentence_rows(sentences, width)
        sub_env = DecodeEnv(
            env.end_id,
            env.sampler,
            env.nonempty,
            gather_constraints(env.constraints, rows),
        )
        new_ids, new_state, new_search, outputs = step_fn(
            time,
            tf.gather(ids, rows),
            gather_batch(state, rows),
            gather_batch(memory, rows),
            gather_batch(search, sentences),
            sub_env,
        )
        kept_rows = tf.range(count * width)
        new_ids, new_state = gather_batch((new_ids, new_state), kept_rows)
        new_search = gather_batch(new_search, tf.range(count))
        sentences = sentences[:count]
        rows = rows[: count * width]
        idle = strategy.idle_outputs(ids, search, env)
        full = {}
        for name, value in outputs.items():
            if value is not None:
                if name in idle:
                    base = idle[name]
                else:
                    shape = tf.concat([[num_sentences], tf.shape(value)[1:]], 0)
                    base = tf.zeros(shape, value.dtype)
                value = scatter_batch(base, sentences, value[:count])
            full[name] = value
        return (
            scatter_batch(ids, rows, new_ids),
            scatter_batch(state, rows, new_state),
            scatter_batch(search, sentences, new_search),
            full,
        )

    return tf.cond(tf.equal(stepped, num_sentences), all_sentences, some_sentences)


def dynamic_decode(
    decoder,
    strategy,
    sampler,
    embedding_fn,
    start_ids,
    end_id,
    state,
    memory,
    max_length=None,
    jit_compile=None,
    constraints=None,
):
    """Free-running decoding of a batch, driving `decoder.step`.

    Every step embeds the previous tokens, runs the decoder and lets the
    strategy choose the next tokens. The loop stops when the strategy says
    every sequence has finished, or after `max_length` steps; the first step
    always runs. An empty batch (B = 0) gives empty results with `T = 0`.

    Args:
      decoder: An object with `step(inputs [N, E], state, memory, training)
        -> (logits [N, V], new_state, attention [N, S] or None)` and, if
        `max_length` is None, `max_decode_length` (a `Decoder` has both).
        With a true `independent_rows` attribute, greedy and beam search
        step only the rows of the sentences that have not finished (see
        `step_active_sentences`).
      strategy: A `DecodingStrategy` (e.g. `GreedySearch`, `BeamSearch`).
      sampler: A `Sampler` for the strategies that sample (None: argmax).
      embedding_fn: Maps [N] int32 ids to [N, E] embeddings.
      start_ids: [B] int ids fed at the first step (SEQUENCE_START).
      end_id: Int id that ends a sequence (SEQUENCE_END).
      state: The decoder's initial state for the B sentences.
      memory: The decoder's memory for the B sentences (`prepare_memory`).
      max_length: Most steps to run (int or scalar tensor, >= 1); the
        decoder's `max_decode_length` when None.
      jit_compile: Compile the loop with XLA (once per input shape);
        `max_length` must then be known when tracing. None: the
        `default_jit_compile` in effect (off by default).
      constraints: Optional `DecodeConstraints` for the B sentences (see
        `seq2seq.inference.constraints.make_constraints`): forced target
        prefixes and banned tokens.

    Returns:
      The strategy's result (`DecodeResult`, `BeamSearchResult`).

    Raises:
      ConfigError: The strategy cannot use the sampler.
      ValueError: `jit_compile` with a `max_length` known only at run time.
    """
    sampler = ArgmaxSampler() if sampler is None else sampler
    strategy.check_sampler(sampler)
    jit_compile = resolve_jit_compile(jit_compile)
    if max_length is None:
        max_length = decoder.max_decode_length
    if jit_compile:
        max_length = static_max_length(max_length)
    start_ids = tf.cast(tf.convert_to_tensor(start_ids), tf.int32)
    saw_attention = []

    def loop(start_ids, state, memory, constraints):
        limit = tf.cast(max_length, tf.int32)
        ids, state, memory, search = strategy.initialize(
            start_ids, state, memory, max_length
        )
        constraints = tile_constraints(constraints, strategy.rows_per_sentence)
        env = DecodeEnv(tf.cast(end_id, tf.int32), sampler, constraints=constraints)
        arrays = {
            name: tf.TensorArray(dtype, size=limit)
            for name, dtype in strategy.step_outputs.items()
        }
        # Always allocated: whether the decoder gives attention is only
        # known once its step is traced.
        arrays["attention"] = tf.TensorArray(tf.float32, size=limit)

        def cond(time, ids, state, search, arrays):
            del ids, state, arrays
            # The first step always runs, so that an empty batch still
            # gives the arrays an element to gather.
            return tf.logical_and(
                time < limit,
                tf.logical_or(
                    tf.equal(time, 0), tf.logical_not(strategy.finished(search))
                ),
            )

        def step_fn(time, ids, state, memory, search, env):
            logits, new_state, attention = decoder.step(
                embedding_fn(ids), state, memory, training=False
            )
            logits = tf.cast(logits, tf.float32)
            return strategy.step(time, logits, state, new_state, attention, search, env)

        def body(time, ids, state, search, arrays):
            active = None
            if not jit_compile and getattr(decoder, "independent_rows", False):
                active = strategy.active_sentences(search)
            if active is None:
                ids, new_state, search, outputs = step_fn(
                    time, ids, state, memory, search, env
                )
            else:
                ids, new_state, search, outputs = step_active_sentences(
                    step_fn, strategy, active, time, ids, state, memory, search, env
                )
            arrays = dict(arrays)
            for name, value in outputs.items():
                if value is None:
                    continue
                if name == "attention":
                    saw_attention.append(True)
                arrays[name] = arrays[name].write(time, value)
            return time + 1, ids, new_state, search, arrays

        loop_vars = (tf.constant(0, tf.int32), ids, state, search, arrays)
        num_steps, _, _, search, arrays = tf.while_loop(
            cond, body, loop_vars, maximum_iterations=limit
        )
        steps = {
            name: collect_steps(array, num_steps, jit_compile)
            for name, array in arrays.items()
            if name != "attention" or saw_attention
        }
        return num_steps, search, steps

    num_steps, search, steps = run_decode_loop(
        loop, (start_ids, state, memory, constraints), jit_compile
    )
    steps = {name: value[:num_steps] for name, value in steps.items()}
    env = DecodeEnv(
        tf.cast(end_id, tf.int32), sampler, tf.minimum(tf.shape(start_ids)[0], 1)
    )
    return strategy.finalize(steps, search, num_steps, env)
