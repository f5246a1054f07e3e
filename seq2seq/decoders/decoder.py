"""The Decoder base class: one step, and the training passes built on it.

A decoder maps one embedded token, its state and the encoder memory to a
distribution over the next token. It does not decide how a whole output is
produced: free-running decoding (`seq2seq.inference.dynamic_decode`, with a
strategy and a sampler) and the training passes below all drive the same
three methods that a subclass implements:

* `prepare_memory(encoder_output) -> memory`: what every step reads from
  the encoder, computed once per source batch (e.g. projected attention
  keys). A nest of tensors whose leaves start with the batch dimension, so
  a strategy may tile or reorder it.
* `initial_state(memory, cell_state=None, batch_size=None) -> state`: the
  state before the first target token (`cell_state` comes from a bridge);
  also a nest of batch-leading tensors, of any structure: beam search
  reorders whatever nest a decoder returns.
* `step(inputs, state, memory, training=None) -> (logits, new_state,
  attention)`: [B, E] embedded tokens in, [B, V] logits out, with [B, S]
  attention scores or None (`has_attention` says which). Each row is
  computed from its own inputs, state and memory rows only
  (`independent_rows`), so greedy decoding may step just the rows that
  have not finished.

On top of `step`, this class provides:

* `call(inputs, state, memory)`: teacher forcing over [B, T, E] targets,
  the same numbers as stepping; with a `sampling_probability`, scheduled
  sampling (Bengio et al., 2015), where each input after the first is, with
  that probability, the embedding of a token chosen from the decoder's own
  previous logits by the sampler its `scheduled_sampling.sampling`
  parameter names (`seq2seq.decoders.samplers`).
* `teacher_forced_features(inputs, state, memory)` and `project(features)`,
  which split teacher forcing before the output layer, so that a loss can
  project only the unpadded positions. By default the features are the
  stepped logits and `project` is the identity.

A subclass may override `teacher_forced_features` and `project` with a
faster whole-sequence pass (fused recurrence, a causal Transformer pass)
when tests show it gives the logits of stepping.
"""

import keras
import tensorflow as tf

from seq2seq.configurable import Configurable, is_training
from seq2seq.decoders import scheduled_sampling
from seq2seq.decoders.samplers import get_sampler
from seq2seq.layers import loop_dropout
from seq2seq.layers.composite import CompositeLayer
from seq2seq.rnn_cell import time_steps
from seq2seq.tracing import tracing_for_xla


def batch_size_of(nest):
    """The batch size of the first tensor leaf of a nest ([B, ...] leaves).

    Returns:
      A Python int when known statically, else a scalar int32 tensor.

    Raises:
      ValueError: The nest has no tensor leaf of rank >= 1.
    """
    for leaf in tf.nest.flatten(nest):
        if leaf is not None:
            leaf = tf.convert_to_tensor(leaf)
            if leaf.shape.rank:
                static = leaf.shape[0]
                return static if static is not None else tf.shape(leaf)[0]
    raise ValueError("cannot infer the batch size: pass batch_size explicitly")


def is_scalar(value):
    """Whether `value` is a Python int or a rank-0 tensor (a batch size
    passed where a cell state is expected)."""
    if isinstance(value, int):
        return True
    return tf.is_tensor(value) and value.shape.rank == 0


class Decoder(Configurable, CompositeLayer):
    """Abstract base of every decoder; see the module docstring.

    Params:
      max_decode_length: Longest output of free-running decoding (100); read
        by the decoding strategies when no other limit is given.
      scheduled_sampling.*: Scheduled sampling during training: `type`
        (none, constant, linear, exponential, inverse_sigmoid),
        `probability`, `k`, `start_step`, `end_step`, `sampling` (a sampler
        name: sample or argmax); see `seq2seq.decoders.scheduled_sampling`.
        The default `type: none` is pure teacher forcing.

    Args:
      params: Parameter overrides (dict).
      mode: `train`, `eval` or `infer`.
      vocab_size: Number of output classes (logits per step).
      name: Keras layer name.

    Attributes:
      vocab_size: Number of output classes.
      has_attention: Whether `step` returns attention scores (a class
        attribute).
      independent_rows: Whether `step` computes each batch row from that
        row's inputs, state and memory alone, so that it may be run on any
        subset of rows (a class attribute; True for every decoder here).
      scheduled_sampling: The validated schedule (a dict, see
        `scheduled_sampling.schedule_config`).
    """

    has_attention = False
    independent_rows = True

    def __init__(self, params, mode, vocab_size, name="decoder"):
        keras.layers.Layer.__init__(self, name=name)
        Configurable.__init__(self, params, mode)
        self.vocab_size = int(vocab_size)
        # Validated now so that a bad schedule fails before training starts;
        # kept out of Keras tracking (a plain dict of settings).
        object.__setattr__(
            self,
            "scheduled_sampling",
            scheduled_sampling.schedule_config(self.params, type(self).__name__),
        )

    @staticmethod
    def default_params():
        params = {"max_decode_length": 100}
        params.update(scheduled_sampling.default_params())
        return params

    @property
    def max_decode_length(self):
        """The `max_decode_length` parameter."""
        return self.params["max_decode_length"]

    def num_classes(self, memory):
        """The number of classes `step` scores: `vocab_size`, unless the
        memory extends the vocabulary (copy attention)."""
        del memory
        return self.vocab_size

    @property
    def cell_state_size(self):
        """The structure (an int or nest of ints) of the `cell_state` that a
        bridge builds for `initial_state`; None when the decoder takes
        none."""
        return None

    # ------------------------------------------------------- the contract

    def prepare_memory(self, encoder_output):
        """Computes what every step reads from the encoder, once per batch.

        Args:
          encoder_output: An `EncoderOutput` (`outputs` [B, S, D],
            `final_state`, `attention_values` [B, S, Dv],
            `attention_values_length` [B]).

        Returns:
          A nest of batch-leading tensors. A decoder with attention that
          beam search's coverage penalty should work with returns a dict
          holding `values` [B, S, ...] and `lengths` [B] (the real source
          positions), as the attention decoders here do.
        """
        raise NotImplementedError

    def initial_state(self, memory, cell_state=None, batch_size=None):
        """The decoder state before the first target token.

        Args:
          memory: The result of `prepare_memory`.
          cell_state: An initial cell state from a bridge (structure of
            `cell_state_size`), or None. A scalar here is taken as
            `batch_size`.
          batch_size: The batch size when it cannot be read from `memory`.

        Returns:
          A nest of batch-leading tensors.
        """
        raise NotImplementedError

    def step(self, inputs, state, memory, training=None):
        """Runs one decoding step.

        Args:
          inputs: [B, E] embedded previous tokens.
          state: The decoder state (from `initial_state` or a previous step).
          memory: The result of `prepare_memory`.
          training: Whether dropout is active.

        Returns:
          `(logits [B, V] float32, new_state, attention [B, S] float32 or
          None)`.
        """
        raise NotImplementedError

    # ---------------------------------------------------- teacher forcing

    def teacher_forced_features(self, inputs, state, memory, training=None):
        """Teacher forcing up to (not including) the output layers.

        `project(features)` gives the logits of `call` without scheduled
        sampling. By default `step` runs over the time axis in a
        `tf.while_loop` and the features are its logits.

        Args:
          inputs: [B, T, E] embedded target tokens.
          state: The decoder state from `initial_state`.
          memory: The result of `prepare_memory`.
          training: Whether dropout is active.

        Returns:
          `(features [B, T, F], attention [B, T, S] float32 or None)`.
        """
        return self.run_steps(
            inputs,
            state,
            lambda step_input, state, time: self.step(
                step_input, state, memory, training=training
            ),
            training=training,
        )

    def projection_row_multiple(self, training):
        """A loss pads the [N, F] rows it gives `project(..., training)` to a
        multiple of this (1: not at all): a bfloat16 output layer keeps
        memory for every row count it meets
        (`seq2seq.layers.output_projection`)."""
        layer = getattr(self, "logits_layer", None)
        return layer.row_multiple(training) if hasattr(layer, "row_multiple") else 1

    def fused_output(self, training=None):
        """`(hidden_fn, layer)` such that `project(x, training) ==
        layer(hidden_fn(x))`, where `layer` is an `OutputProjection` whose
        `rows @ kernel + bias` (its product in `layer.product_dtype`) a
        training loss may compute itself, with its cross-entropy
        (`losses.linear_cross_entropy_sum`); None when the output layers are
        not of that form, or not training."""
        del training
        return None

    def _fused_logits_layer(self, hidden_fn, training):
        """What `fused_output` returns for a decoder whose `project(x,
        training)` is `self.logits_layer(hidden_fn(x))` in training:
        `(hidden_fn, self.logits_layer)` when training with an affine
        logits layer, else None."""
        if not is_training(training, self.mode):
            return None
        if not self.logits_layer.is_affine(training=True):
            return None
        return hidden_fn, self.logits_layer

    def project(self, features, training=None):
        """Output layers: [..., F] features -> [..., V] logits (float32).
        The identity unless `teacher_forced_features` is overridden;
        `training` says whether dropout in the output layers is active."""
        del training
        return features

    def teacher_forced(self, inputs, state, memory, training=None):
        """`(logits [B, T, V], attention [B, T, S] or None)` of teacher
        forcing: `project` of `teacher_forced_features`."""
        features, attention = self.teacher_forced_features(
            inputs, state, memory, training=training
        )
        return self.project(features, training=training), attention

    def call(
        self,
        inputs,
        state=None,
        memory=None,
        training=None,
        sampling_probability=None,
        embedding_fn=None,
        seed=None,
    ):
        """Decoding of whole target sequences: teacher forcing, or scheduled
        sampling.

        Without `sampling_probability`, the same numbers as calling `step`
        on `inputs[:, t]` for t = 0, 1, ... and stacking.

        With it, the input of step `t > 0` is, independently for each
        sequence and step with that probability, the embedding of the token
        the sampler named by `scheduled_sampling.sampling` chooses from the
        logits of step `t - 1` (no gradient flows through the choice)
        instead of `inputs[:, t]`. The first input is always `inputs[:, 0]`
        (the start token). A probability of exactly 0 runs the teacher-
        forced pass, so it gives the same numbers as passing none (inside
        `seq2seq.tracing.xla_tracing` the sampling pass runs, with the same numbers up to
        rounding).

        Args:
          inputs: [B, T, E] embedded target tokens.
          state: The decoder state from `initial_state`.
          memory: The result of `prepare_memory`.
          training: Whether dropout is active.
          sampling_probability: Optional float scalar (tensor) in [0, 1]:
            the probability of feeding the model's own prediction. None
            (the default) is pure teacher forcing.
          embedding_fn: Maps [B] int32 ids to [B, E] embeddings; required
            with `sampling_probability`.
          seed: Optional [2] int tensor; the coin flips and draws are
            stateless functions of `(seed, t)`, so a step is reproducible
            and safe under `tf.function` and `tf.distribute`. Zeros if None.

        Returns:
          `(logits [B, T, V] float32, attention [B, T, S] float32 or None)`.
        """
        if sampling_probability is None:
            return self.teacher_forced(inputs, state, memory, training=training)
        if embedding_fn is None:
            raise ValueError("scheduled sampling needs an embedding_fn")
        probability = tf.cast(sampling_probability, tf.float32)
        if seed is None:
            seed = tf.zeros([2], tf.int32)

        def sampled():
            return self.scheduled_sampling_pass(
                inputs, state, memory, probability, embedding_fn, seed, training
            )

        def forced():
            return self.teacher_forced(inputs, state, memory, training=training)

        if tracing_for_xla():
            return sampled()
        if not self.has_attention:
            # tf.cond branches must return tensors only.
            logits = tf.cond(
                probability > 0.0, lambda: sampled()[0], lambda: forced()[0]
            )
            return logits, None
        return tf.cond(probability > 0.0, sampled, forced)

    # -------------------------------------------------- scheduled sampling

    def sampling_state(self, state, memory, num_steps):
        """The state that the scheduled-sampling pass starts from.

        `state` itself by default; a decoder whose state must be sized to
        the number of steps (a key/value cache) makes a fresh one.

        Args:
          state: The state given to `call`.
          memory: The result of `prepare_memory`.
          num_steps: Scalar int tensor, the number of steps `T`.

        Returns:
          A decoder state.
        """
        del memory, num_steps
        return state

    def scheduled_sampling_pass(
        self, inputs, state, memory, probability, embedding_fn, seed, training=None
    ):
        """Scheduled sampling over `step`; see `call`.

        Args:
          inputs: [B, T, E] embedded target tokens.
          state: The decoder state from `initial_state`.
          memory: The result of `prepare_memory`.
          probability: float32 scalar, the chance of feeding the prediction.
          embedding_fn: Maps [B] int32 ids to [B, E] embeddings.
          seed: [2] int tensor.
          training: Whether dropout is active.

        Returns:
          `(logits [B, T, V] float32, attention [B, T, S] float32 or None)`.
        """
        inputs = tf.convert_to_tensor(inputs)
        batch_size = tf.shape(inputs)[0]
        state = self.sampling_state(state, memory, tf.shape(inputs)[1])
        sampler = get_sampler(
            self.scheduled_sampling["sampling"],
            where=f"{type(self).__name__} scheduled_sampling.sampling",
        )

        def step_fn(truth, state, time, prev_logits):
            coin_seed, draw_seed = scheduled_sampling.step_seeds(seed, time)
            coins = tf.random.stateless_uniform([batch_size], seed=coin_seed)
            feed_own = tf.logical_and(coins < probability, time > 0)
            # The choice of token carries no gradient.
            ids, _ = sampler.select(tf.stop_gradient(prev_logits), time, draw_seed)
            own = tf.cast(embedding_fn(ids), truth.dtype)
            step_input = tf.where(feed_own[:, None], own, truth)
            return self.step(step_input, state, memory, training=training)

        start_logits = tf.zeros([batch_size, self.num_classes(memory)], tf.float32)
        return self.run_steps(
            inputs, state, step_fn, feedback=start_logits, training=training
        )

    # ------------------------------------------------------------- loops

    def run_steps(
        self, inputs, state, step_fn, dtype=tf.float32, feedback=None, training=None
    ):
        """Runs `step_fn` over the time axis of `inputs` in a `tf.while_loop`.

        With `training` in mode `train`, the body is traced under
        `loop_dropout.seeded_step`: the dropout of the layers `step_fn` calls
        draws stateless masks keyed by a seed drawn before the loop and the
        step, so that a seed fixes them.

        Args:
          inputs: [B, T, X] per-step inputs of `step_fn`.
          state: The initial decoder state.
          step_fn: `(step_input [B, X], state, time) -> (outputs [B, F],
            new_state, attention [B, S] or None)`; with `feedback` it also
            takes the previous step's outputs as a fourth argument.
          dtype: The dtype the outputs are stacked in (float32 for logits,
            the compute dtype for features).
          feedback: None, or the [B, F] `dtype` "previous outputs" given to
            the first step; each step's outputs go to the next.
          training: Whether dropout is active.

        Returns:
          `(outputs [B, T, F] dtype, attention [B, T, S] float32 or None)`.

        Raises:
          ValueError: `step_fn` returns attention when `has_attention` is
            false, or the other way round.
        """
        inputs = tf.convert_to_tensor(inputs)
        num_steps = tf.shape(inputs)[1]
        step_inputs = time_steps(inputs)
        # One TensorArray for the outputs and, for attention decoders, one
        # for the scores (an unwritten array would break gradients under XLA).
        arrays = [tf.TensorArray(dtype, size=num_steps)]
        if self.has_attention:
            arrays.append(tf.TensorArray(tf.float32, size=num_steps))

        seed = None
        if is_training(training, self.mode):
            seed = loop_dropout.loop_seed()

        def body(time, state, arrays, *previous):
            with loop_dropout.seeded_step(seed, time):
                outputs, new_state, attention = step_fn(
                    step_inputs.read(time), state, time, *previous
                )
            if (attention is not None) != self.has_attention:
                raise ValueError(
                    f"{type(self).__name__}.has_attention is "
                    f"{self.has_attention} but its step returns "
                    f"{'no ' if attention is None else ''}attention"
                )
            outputs = tf.cast(outputs, dtype)
            values = [outputs]
            if attention is not None:
                values.append(tf.cast(attention, tf.float32))
            arrays = [array.write(time, v) for array, v in zip(arrays, values)]
            carried = (outputs,) if previous else ()
            return (time + 1, new_state, arrays) + carried

        loop_vars = (tf.constant(0), state, arrays)
        if feedback is not None:
            loop_vars += (tf.cast(feedback, dtype),)
        results = tf.while_loop(
            lambda time, *_: time < num_steps,
            body,
            loop_vars,
            maximum_iterations=num_steps,
        )
        arrays = results[2]
        outputs = tf.transpose(arrays[0].stack(), [1, 0, 2])
        attention = None
        if self.has_attention:
            attention = tf.transpose(arrays[1].stack(), [1, 0, 2])
        return outputs, attention
