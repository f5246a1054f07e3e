"""The compiled update: gradients, accumulation, all-reduce, clipping, apply.

One `TrainStep` turns an *effective batch* (one or more micro-batches, see
`--effective_batch_size`) into at most one optimizer update:

1. Every micro-batch is split by rows over the replicas of the distribution
   strategy; each replica computes the gradient of its summed token losses
   divided by the token count of the *whole* effective batch (the
   `normalizer`; its sentence count with the model's `loss.normalize_by:
   sentences`). Summed over replicas and micro-batches this is exactly the
   gradient of the loss of one large batch, whatever the split.
2. Micro-batches before the last add their gradients into per-replica
   accumulators (`ON_READ` variables, never checkpointed: saves happen only
   between updates, when they are zero).
3. The last micro-batch adds the accumulators, sums the gradients over the
   replicas (one all-reduce), clips them by global norm (the same clip on
   every replica, since they all hold the summed gradient), and applies
   them when the loss and the norm are finite; otherwise nothing changes
   (see `apply_gradients_if`).

With `--mixed_precision float16` the objective is multiplied by a dynamic
loss scale (`DynamicLossScale`) before differentiation and the gradients are
divided by it before clipping; an overflow skips the update and halves the
scale. `jit_compile` compiles the forward and backward pass with XLA.

Metrics: the model's `forward` returns a dict of summable scalars
(`ForwardOutput.metrics`: `loss_sum`, `target_tokens` and any a model
adds). The step sums each over the micro-batches and all-reduces it over the
replicas with the gradients, and returns the totals as `outputs["metrics"]`;
`TrainSummaries` writes them. A new training metric is therefore a change
to the model's `forward` only.
"""

import functools

import tensorflow as tf

from seq2seq.data.copy_vocab import COPY_ID_KEYS
from seq2seq.rnn import cudnn_allowed
from seq2seq.tracing import xla_tracing
from seq2seq.training import fused_adam
from seq2seq.training.distribution import is_distributed

# Keys the compiled steps see; token strings stay on the host. Every batch
# has ID_KEYS; the copy keys are only present for a copy-attention decoder.
ID_KEYS = ("source_ids", "source_len", "target_ids", "target_len")
STEP_KEYS = ID_KEYS + COPY_ID_KEYS


def select_ids(features):
    """The id tensors of a batch (`STEP_KEYS` that are present)."""
    return {key: features[key] for key in STEP_KEYS if key in features}


def batch_tokens(features):
    """The number of predicted target positions of a host batch, as float:
    `sum(target_len - 1)` (words plus SEQUENCE_END), which is the model's
    `num_tokens` for that batch."""
    return float(tf.reduce_sum(features["target_len"] - 1).numpy())


def batch_sentences(features):
    """The number of sentences (rows) of a host batch, as float."""
    return float(features["target_len"].shape[0])


class DynamicLossScale:
    """A loss scale for float16 training that halves on overflow and doubles
    after `growth_steps` finite steps in a row.

    Keras's `LossScaleOptimizer` unscales inside `apply`, after any clipping a
    caller could do; this trainer clips the unscaled, all-reduced gradient
    itself, so it keeps the scale here. Its variables are checkpointed with
    the trainer (`loss_scale` in the checkpoint).

    Args:
      initial_scale: The first scale (a power of two).
      growth_steps: Finite steps in a row before the scale doubles.
    """

    def __init__(self, initial_scale=2.0**15, growth_steps=2000):
        self.growth_steps = int(growth_steps)
        self.scale = tf.Variable(
            float(initial_scale), trainable=False, dtype=tf.float32, name="scale"
        )
        self.good_steps = tf.Variable(
            0, trainable=False, dtype=tf.int64, name="good_steps"
        )

    def trackables(self):
        """A dict to put in a `tf.train.Checkpoint`."""
        return {"scale": self.scale, "good_steps": self.good_steps}

    def update(self, finite):
        """Adjusts the scale after a step whose gradients were `finite`."""

        def grow():
            self.good_steps.assign(0)
            return self.scale.assign(self.scale * 2.0)

        def count():
            self.good_steps.assign_add(1)
            return tf.identity(self.scale)

        def shrink():
            self.good_steps.assign(0)
            return self.scale.assign(tf.maximum(self.scale * 0.5, 1e-30))

        return tf.cond(
            finite,
            lambda: tf.cond(self.good_steps + 1 >= self.growth_steps, grow, count),
            shrink,
        )


def replica_rows(features, context):
    """The rows of a global batch that the replica of `context` trains on.

    Rows are split into `num_replicas_in_sync` contiguous slices of
    `ceil(B / R)` rows (the last ones may be shorter or empty).

    Args:
      features: Dict of `[B, ...]` tensors.
      context: The `tf.distribute.ReplicaContext`.

    Returns:
      Dict of `[B_r, ...]` tensors.
    """
    replicas = context.num_replicas_in_sync
    if replicas == 1:
        return features
    batch = tf.shape(features["source_len"])[0]
    size = (batch + replicas - 1) // replicas
    replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
    start = tf.minimum(replica * size, batch)
    end = tf.minimum(start + size, batch)
    return {key: value[start:end] for key, value in features.items()}


def step_seed(base_seed, step, micro_step=None):
    """The [2] int32 seed of one train step's random draws: `(base_seed,
    step)`, with the micro-batch index (gradient accumulation) and the replica
    id (under `tf.distribute`) folded in so that each draws differently."""
    seed = tf.stack([tf.constant(base_seed, tf.int32), tf.cast(step, tf.int32)], axis=0)
    if micro_step is not None:
        seed = tf.random.experimental.stateless_fold_in(seed, micro_step)
    context = tf.distribute.get_replica_context()
    if context is not None and tf.distribute.has_strategy():
        replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
        seed = tf.random.experimental.stateless_fold_in(seed, replica)
    return seed


def apply_gradients_if(
    optimizer,
    gradients,
    variables,
    condition,
    reduced=False,
    on_decision=None,
    apply_fn=None,
):
    """Applies the gradients only when `condition` holds.

    The decision is a `tf.cond` in the compiled step: when `condition` is
    false nothing is updated, the optimizer's step counter included. Under
    `tf.distribute` (called in a replica context) the condition is first
    reduced over the replicas (all must hold), and the `tf.cond` runs in the
    cross-replica context (the optimizer's update cannot sit in a
    replica-context `tf.cond`), as Keras's `LossScaleOptimizer` does.

    Args:
      optimizer: A Keras optimizer (already built).
      gradients: A list of gradients (or None), one per variable.
      variables: The variables.
      condition: A scalar bool tensor.
      reduced: Under `tf.distribute`: the gradients are already summed over
        the replicas (then they are applied as they are); otherwise the
        optimizer sums them.
      on_decision: Optional `fn(condition)` run once (in the cross-replica
        context under a strategy) with the final condition, e.g. a loss
        scale update.
      apply_fn: Optional `fn(gradients, variables)` applying the update in
        place of `optimizer.apply_gradients` (outside `tf.distribute`
        only), e.g. `fused_adam.apply_gradients` bound to the optimizer.

    Returns:
      Whether the update was applied, a scalar bool tensor.
    """
    context = tf.distribute.get_replica_context()
    distributed = context is not None and tf.distribute.has_strategy()
    if not distributed:

        def apply():
            if apply_fn is not None:
                apply_fn(gradients, variables)
            else:
                optimizer.apply_gradients(zip(gradients, variables))
            return tf.constant(True)

        return _apply_if(condition, apply, on_decision)

    bad = 1.0 - tf.cast(condition, tf.float32)
    condition = tf.equal(context.all_reduce(tf.distribute.ReduceOp.SUM, bad), 0.0)

    def cross_replica(distribution, condition, gradients, variables):
        # Every replica holds the same reduced condition.
        condition = distribution.experimental_local_results(condition)[0]

        def apply_replica(grads, variables):
            if reduced:
                # Keras sums the gradients over the replicas again; each
                # replica's share of the (identical) summed gradient makes
                # that sum the summed gradient itself.
                share = 1.0 / distribution.num_replicas_in_sync
                grads = [None if g is None else scale(g, share) for g in grads]
            optimizer.apply_gradients(zip(grads, variables))

        def apply():
            distribution.extended.call_for_each_replica(
                apply_replica, args=(gradients, variables)
            )
            return tf.constant(True)

        return _apply_if(condition, apply, on_decision)

    return context.merge_call(cross_replica, args=(condition, gradients, variables))


def _apply_if(condition, apply, on_decision=None):
    """Runs `apply()` (returning True) when `condition` holds, then
    `on_decision(condition)` if given; returns whether it was applied."""
    applied = tf.cond(condition, apply, lambda: tf.constant(False))
    if on_decision is not None:
        with tf.control_dependencies([applied]):
            on_decision(condition)
    return applied


class TrainStep:
    """The compiled update of one effective batch.

    Args:
      model: A `Seq2SeqModel` (variables built).
      optimizer: Its Keras optimizer (built).
      element_spec: The training dataset's `element_spec` (only `ID_KEYS`
        are used); every dimension may be None.
      strategy: The `tf.distribute.Strategy` the variables were created in.
      accumulation_steps: Micro-batches per update (>= 1).
      loss_scale: A `DynamicLossScale` (float16), or None.
      jit_compile: Compile forward and backward with XLA.
      seed: Base seed of scheduled sampling's stateless draws.
      dense_gradients: Make the embedding gradients dense before clipping
        and the update. None: only when accumulating (accumulators are
        dense). Embedding gradients otherwise stay IndexedSlices with one
        row per token occurrence, whose Adam update (Keras's, and
        `fused_adam`'s) takes the first moment from the summed rows and the
        second from the summed squares of the occurrences; on the toy
        reverse task that learns much faster than dense Adam (final loss
        0.13-0.16 against 0.62-1.22 after 1500 steps, 3 seeds), so it is the
        default. With dense gradients the global norm is that of the summed
        rows, and accumulated or replicated updates equal one large batch on
        one device exactly (with dense gradients there too).
      fused_optimizer: Apply a plain Adam's update with
        `fused_adam.apply_gradients` (the same update and variables, one
        kernel per variable) where `fused_adam.supports` the optimizer and
        training is not distributed; otherwise `optimizer.apply_gradients`.
      batch_size: The rows of a full batch with fixed-size batching, or None
        (token batching). A full batch then runs a second compiled update
        (`update_full`, `accumulate_full`) traced with that leading
        dimension, so that the graph optimizer folds the shape arithmetic of
        every step of the model's loops (4-14% less CPU time per step of
        nmt_small on the real corpus, docs/performance.md); the other
        batches (the last of a bucket or of an epoch) run `update`, whose
        dimensions are all unknown. Ignored under a distribution strategy
        and with `jit_compile` (XLA compiles each shape anyway).
    """

    def __init__(
        self,
        model,
        optimizer,
        element_spec,
        strategy=None,
        accumulation_steps=1,
        loss_scale=None,
        jit_compile=False,
        seed=0,
        dense_gradients=None,
        fused_optimizer=False,
        batch_size=None,
    ):
        self.model = model
        self.optimizer = optimizer
        self.strategy = strategy or tf.distribute.get_strategy()
        self.accumulation_steps = max(1, int(accumulation_steps))
        self.distributed = is_distributed(self.strategy)
        if dense_gradients is None:
            dense_gradients = self.accumulation_steps > 1 or self.distributed
        self.dense_gradients = bool(dense_gradients)
        self.fused_optimizer = (
            bool(fused_optimizer)
            and not self.distributed
            and fused_adam.supports(optimizer)
        )
        self.loss_scale = loss_scale
        self.jit_compile = bool(jit_compile)
        self.seed = int(seed or 0)
        self.uses_sampling = getattr(model, "scheduled_sampling", None) is not None
        params = getattr(model, "params", None) or {}
        self.normalize_by = params.get("loss.normalize_by", "tokens")
        spec = {k: element_spec[k] for k in STEP_KEYS if k in element_spec}
        signature = [
            spec,
            tf.TensorSpec([], tf.float32),  # normalizer
            tf.TensorSpec([], tf.float32),  # sampling probability
            tf.TensorSpec([], tf.int32),  # micro-batch index
        ]
        self._gradients = (
            tf.function(self._xla_replica_gradients, jit_compile=True, autograph=False)
            if self.jit_compile
            else self._replica_gradients
        )
        self._accumulators = None
        if self.accumulation_steps > 1:
            with self.strategy.scope():
                self._accumulators = [
                    tf.Variable(
                        tf.zeros(v.shape, v.dtype),
                        trainable=False,
                        synchronization=tf.VariableSynchronization.ON_READ,
                        aggregation=tf.VariableAggregation.SUM,
                        name="grad_accumulator",
                    )
                    for v in model.trainable_variables
                ]
        self._signature = signature
        self._update_with_gradients = None
        self.update = tf.function(
            self._update, input_signature=signature, autograph=False
        )
        self.accumulate = tf.function(
            self._accumulate, input_signature=signature, autograph=False
        )
        self.batch_size = None
        self.update_full = self.accumulate_full = None
        if batch_size and not self.distributed and not self.jit_compile:
            self.batch_size = int(batch_size)
            full = [
                {
                    key: tf.TensorSpec([self.batch_size, *value.shape[1:]], value.dtype)
                    for key, value in spec.items()
                },
                *signature[1:],
            ]
            self.update_full = tf.function(
                self._update, input_signature=full, autograph=False
            )
            self.accumulate_full = tf.function(
                self._accumulate, input_signature=full, autograph=False
            )

    # ----------------------------------------------------------- replica

    def _replica_gradients(self, features, normalizer, probability, micro_step):
        """Gradients of this replica's share of the effective-batch mean loss.

        Returns:
          `(metrics, gradients)`: the replica's summable metrics (a dict of
          float32 scalars, with `loss_sum`, its summed token loss) and the
          gradients of `loss_sum / normalizer` (times the loss scale with
          float16), one per trainable variable.
        """
        model = self.model
        kwargs = {}
        if self.uses_sampling:
            micro = micro_step if self.accumulation_steps > 1 else None
            kwargs = {
                "sampling_probability": probability,
                "seed": step_seed(self.seed, self.optimizer.iterations, micro),
            }
        with tf.GradientTape() as tape:
            output = model.forward(features, training=True, **kwargs)
            objective = output.loss_sum / tf.maximum(normalizer, 1.0)
            if self.loss_scale is not None:
                objective = objective * self.loss_scale.scale
        variables = model.trainable_variables
        gradients = tape.gradient(objective, variables)
        if self.dense_gradients:
            gradients = [
                None if g is None else tf.convert_to_tensor(g) for g in gradients
            ]
        metrics = {k: tf.cast(v, tf.float32) for k, v in output.metrics.items()}
        return metrics, gradients

    def _xla_replica_gradients(self, *args):
        """`_replica_gradients` traced for XLA, which has no cuDNN kernels
        (the model's recurrences are traced with `use_cudnn` off) and cannot
        compile every control flow (see `xla_tracing`)."""
        with cudnn_allowed(self.model, False), xla_tracing():
            return self._replica_gradients(*args)

    def _local_batch(self, features):
        context = tf.distribute.get_replica_context()
        return replica_rows(features, context) if self.distributed else features

    def _replica_accumulate(self, features, normalizer, probability, micro_step):
        metrics, gradients = self._gradients(
            self._local_batch(features), normalizer, probability, micro_step
        )
        updates = [
            acc.assign_add(g)
            for acc, g in zip(self._accumulators, gradients)
            if g is not None
        ]
        with tf.control_dependencies(updates):
            return {k: tf.identity(v) for k, v in metrics.items()}

    def _replica_update(
        self, features, normalizer, probability, micro_step, with_gradients=False
    ):
        model, optimizer = self.model, self.optimizer
        variables = model.trainable_variables
        metrics, gradients = self._gradients(
            self._local_batch(features), normalizer, probability, micro_step
        )
        if self._accumulators is not None:
            gradients = [
                g + acc.read_value() if g is not None else None
                for g, acc in zip(gradients, self._accumulators)
            ]
        if self.loss_scale is not None:
            inverse = 1.0 / self.loss_scale.scale
            gradients = [None if g is None else scale(g, inverse) for g in gradients]
        if self.distributed:
            context = tf.distribute.get_replica_context()
            present = [g for g in gradients if g is not None]
            summed = iter(context.all_reduce(tf.distribute.ReduceOp.SUM, present))
            gradients = [None if g is None else next(summed) for g in gradients]
            metrics = context.all_reduce(tf.distribute.ReduceOp.SUM, metrics)
        loss_sum = metrics["loss_sum"]
        clipped, global_norm = model.clip_gradients(gradients, variables)
        clipped_norm = tf.linalg.global_norm(clipped)
        finite = tf.logical_and(
            tf.math.is_finite(loss_sum), tf.math.is_finite(global_norm)
        )
        on_decision = None
        if self.loss_scale is not None:
            on_decision = self.loss_scale.update
        apply_fn = None
        if self.fused_optimizer:
            apply_fn = functools.partial(fused_adam.apply_gradients, optimizer)
        applied = apply_gradients_if(
            optimizer,
            clipped,
            variables,
            finite,
            reduced=self.distributed,
            on_decision=on_decision,
            apply_fn=apply_fn,
        )
        if self._accumulators is not None:
            with tf.control_dependencies([applied]):
                resets = [acc.assign(tf.zeros_like(acc)) for acc in self._accumulators]
            with tf.control_dependencies(resets):
                applied = tf.identity(applied)
        outputs = {
            "metrics": metrics,
            "global_norm": global_norm,
            "clipped_norm": clipped_norm,
            "applied": applied,
        }
        if with_gradients:
            outputs["gradients"] = gradient_values(clipped, variables)
        return outputs

    # ------------------------------------------------------ cross-replica

    def _first(self, value):
        return self.strategy.experimental_local_results(value)[0]

    def _accumulate(self, features, normalizer, probability, micro_step):
        per_replica = self.strategy.run(
            self._replica_accumulate,
            args=(features, normalizer, probability, micro_step),
        )
        return {
            key: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
            for key, value in per_replica.items()
        }

    def _update(self, features, normalizer, probability, micro_step, gradients=False):
        per_replica = self.strategy.run(
            functools.partial(self._replica_update, with_gradients=gradients),
            args=(features, normalizer, probability, micro_step),
        )
        # After the all-reduce every replica holds the same values.
        return tf.nest.map_structure(self._first, per_replica)

    # ------------------------------------------------------------- host

    def _full(self, batch):
        """Whether `batch` runs the updates traced for full batches."""
        return (
            self.batch_size is not None
            and batch["source_ids"].shape[0] == self.batch_size
        )

    def __call__(self, batches, sampling_probability=0.0, gradients=False):
        """Runs one update on `batches` (a list of `accumulation_steps` host
        batches, or one batch).

        `gradients=True` (for summary steps) runs a second compiled update
        that also returns the clipped gradients (`gradient_values`), so the
        usual update computes nothing more.

        Returns:
          A dict: `loss` (mean token loss of the effective batch), `loss_sum`,
          `num_tokens`, `metrics` (the model's summable metrics, summed over
          the effective batch), `global_norm` (before clipping),
          `clipped_norm`, `applied` (bool tensor), `sampling_probability`,
          `loss_scale` with float16, and `gradients` when asked for.
        """
        if isinstance(batches, dict):
            batches = [batches]
        if len(batches) != self.accumulation_steps:
            raise ValueError(
                f"expected {self.accumulation_steps} micro-batches, got {len(batches)}"
            )
        num_tokens = sum(batch_tokens(b) for b in batches)
        normalizer = num_tokens
        if self.normalize_by == "sentences":
            normalizer = sum(batch_sentences(b) for b in batches)
        normalizer_t = tf.constant(normalizer, tf.float32)
        probability = tf.cast(sampling_probability, tf.float32)
        accumulated = {}
        for index, batch in enumerate(batches[:-1]):
            accumulate = self.accumulate_full if self._full(batch) else self.accumulate
            metrics = accumulate(
                select_ids(batch), normalizer_t, probability, tf.constant(index)
            )
            for key, value in metrics.items():
                accumulated[key] = accumulated.get(key, 0.0) + float(value)
        update = self.update_full if self._full(batches[-1]) else self.update
        if gradients:
            if self._update_with_gradients is None:
                self._update_with_gradients = tf.function(
                    functools.partial(self._update, gradients=True),
                    input_signature=self._signature,
                    autograph=False,
                )
            update = self._update_with_gradients
        outputs = update(
            select_ids(batches[-1]),
            normalizer_t,
            probability,
            tf.constant(len(batches) - 1),
        )
        outputs = dict(outputs)
        outputs["metrics"] = {
            key: value + accumulated[key] if key in accumulated else value
            for key, value in outputs["metrics"].items()
        }
        outputs["loss_sum"] = outputs["metrics"]["loss_sum"]
        outputs["num_tokens"] = tf.constant(num_tokens, tf.float32)
        outputs["loss"] = outputs["loss_sum"] / max(num_tokens, 1.0)
        outputs["sampling_probability"] = probability
        if self.loss_scale is not None:
            outputs["loss_scale"] = self.loss_scale.scale
        return outputs


def variable_name(variable):
    """A variable's summary name: its Keras path (`seq2seq/source_embedding`)
    or, for a plain `tf.Variable`, its name without the `:0`."""
    name = getattr(variable, "path", None) or variable.name
    return name.split(":")[0]


def gradient_values(gradients, variables):
    """`{variable name: gradient values}` for the summaries of a step.

    Args:
      gradients: One gradient (dense, `tf.IndexedSlices` or None) per
        variable.
      variables: The variables.

    Returns:
      A dict of float32 tensors: a dense gradient as it is, an
      `IndexedSlices` as its `values` (one row per token occurrence, as the
      original's `optimize_loss` summarised them); variables without a
      gradient are left out.
    """
    result = {}
    for gradient, variable in zip(gradients, variables):
        if gradient is None:
            continue
        if isinstance(gradient, tf.IndexedSlices):
            gradient = gradient.values
        result[variable_name(variable)] = tf.cast(gradient, tf.float32)
    return result


def scale(gradient, factor):
    """`gradient * factor` for a dense tensor or `tf.IndexedSlices`."""
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(
            gradient.values * factor, gradient.indices, gradient.dense_shape
        )
    return gradient * factor
