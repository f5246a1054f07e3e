"""Batch inference: load a trained model, decode an input pipeline, feed tasks.

`load_model` rebuilds the model from `train_options.json` (with optional
param overrides such as a beam width) and restores a checkpoint.
`Predictor` holds the compiled decode (and scoring) functions with a fixed
input signature, so every batch shape reuses one trace. `run_inference`
streams batches in input order through the tasks, showing progress on stderr.
"""

import os
import sys
import time

import numpy as np
import tensorflow as tf
from absl import logging

from seq2seq import run_dir
from seq2seq.configurable import ModeKeys, deep_merge, locate_class, maybe_load_yaml
from seq2seq.data import batching
from seq2seq.data.copy_vocab import extended_tokens
from seq2seq.data.input_pipeline import SEQUENCE_END
from seq2seq.errors import ConfigError, UserError
from seq2seq.inference import length_sorting, safe_paths
from seq2seq.run_dir import VOCAB_PARAMS, TrainOptions

_SOURCE_KEYS = ("source_ids", "source_len")
_TARGET_KEYS = ("target_ids", "target_len")
# Forced output starts (`target_prefix_files` of the input pipeline).
_PREFIX_KEYS = ("target_prefix_ids", "target_prefix_len")
# Present only for copy-attention models (see seq2seq.data.copy_vocab).
_COPY_SOURCE_KEYS = ("source_copy_ids", "source_oov_mask")
_COPY_TARGET_KEYS = ("target_copy_ids",)


def resolve_checkpoint(model_dir, checkpoint_path=None):
    """Returns the checkpoint prefix to restore.

    Args:
      model_dir: The training output directory.
      checkpoint_path: An explicit checkpoint prefix (or a directory holding
        checkpoints); `best` for the best checkpoint by the dev metric that
        training kept in `model_dir/best/` (see `best.json` there);
        `None` or `latest` for the latest one in `model_dir`. In a
        directory the newest intact checkpoint is taken: damaged ones
        (truncated or missing files) are skipped with a warning, as when
        training resumes (`run_dir.newest_intact`).

    Raises:
      UserError: No usable checkpoint.
    """
    if checkpoint_path == "best":
        return _best_checkpoint(model_dir)
    if checkpoint_path == "latest":
        checkpoint_path = None
    if checkpoint_path:
        if os.path.isdir(checkpoint_path):
            found = run_dir.newest_intact(checkpoint_path)
            if found:
                return found
        elif os.path.exists(checkpoint_path + ".index"):
            reason = run_dir.damage(checkpoint_path)
            if reason:
                raise run_dir.CheckpointDamagedError(
                    f"--checkpoint_path={checkpoint_path} is damaged ({reason}); "
                    "pass an older checkpoint, or the model directory to take "
                    "its newest intact one."
                )
            return checkpoint_path
        raise UserError(
            f"--checkpoint_path={checkpoint_path} is not a checkpoint: give a "
            "prefix such as model_dir/ckpt-1000 (the .index file must exist)."
        )
    found = run_dir.newest_intact(model_dir)
    if not found:
        raise UserError(
            f"no checkpoint in --model_dir={model_dir}; train a model there "
            "first or pass --checkpoint_path."
        )
    return found


def _best_checkpoint(model_dir):
    """The checkpoint in `model_dir/best/`, described by its `best.json`."""
    directory = run_dir.best_dir(model_dir or "")
    found = run_dir.newest_intact(directory)
    if not found:
        raise UserError(
            f"--checkpoint_path=best: no best checkpoint in {directory}; it is "
            "written when training evaluates on a dev set (--input_pipeline_dev). "
            "Use --checkpoint_path=latest or a checkpoint prefix instead."
        )
    state = run_dir.read_best(model_dir) or {}
    if state.get("metric") is not None:
        logging.info(
            "Best checkpoint %s: %s = %s at step %s",
            found,
            state.get("metric"),
            state.get("value"),
            state.get("step"),
        )
    return found


def load_train_options(model_dir):
    """Loads `train_options.json` from `model_dir` with clear errors."""
    if not model_dir:
        raise UserError("--model_dir is not set; point it at a training output_dir.")
    if not os.path.isdir(model_dir):
        raise UserError(
            f"--model_dir={model_dir} does not exist; point it at the --output_dir "
            "of a training run."
        )
    return TrainOptions.load(model_dir)


def check_vocabularies(train_options, model_params=None, allow_change=False):
    """Refuses vocabulary files whose contents changed since training.

    `train_options.json` records the SHA-256 of every vocabulary file the
    model was trained with. The files the model would load now (the saved
    `vocab_source` / `vocab_target`, or those `model_params` gives instead)
    are hashed and compared as `bin/train.py` compares them when resuming
    (`TrainOptions.check_compatible`): by content, so a vocabulary that moved
    is fine and a reordered or edited one is not. Options saved without
    checksums are not checked.

    Args:
      train_options: The saved `TrainOptions`.
      model_params: The overrides that will be merged over the saved params.
      allow_change: Only log a warning when a vocabulary changed.

    Raises:
      UserError: A vocabulary changed and `allow_change` is false.
      DataError: A vocabulary file is missing.
    """
    if not train_options.vocab_checksums:
        return
    params = deep_merge(train_options.model_params, model_params or {})
    current = TrainOptions.from_model(train_options.model_class, params)
    differences = train_options.check_compatible(current, fields=("vocab_checksums",))
    if not differences:
        return
    summary = "; ".join(differences)
    if allow_change:
        logging.warning("Vocabulary changed since training: %s", summary)
        return
    raise UserError(
        f"{summary}. The model was trained with the vocabulary whose sha256 "
        "train_options.json records, so its token ids would map to the wrong "
        "tokens. Restore that file, or pass --allow_vocab_change to use the "
        "changed one deliberately."
    )


def training_pipeline_params(train_options):
    """The params of the training input pipeline `train_options` recorded
    (its merged config's `input_pipeline_train`), or `{}`."""
    config = train_options.resolved_config or {}
    pipeline = config.get("input_pipeline_train")
    if isinstance(pipeline, str):
        try:
            pipeline = maybe_load_yaml(pipeline, "input_pipeline_train")
        except ConfigError:
            pipeline = None
    params = pipeline.get("params") if isinstance(pipeline, dict) else None
    return params if isinstance(params, dict) else {}


def training_tokenizers(train_options):
    """The `(source, target)` SentencePiece models the model was trained
    with (the training pipeline's `source_tokenizer` / `target_tokenizer`),
    "" for a side split into words."""
    params = training_pipeline_params(train_options)
    return tuple(
        str(params.get(f"{side}_tokenizer") or "") for side in ("source", "target")
    )


def inherit_tokenizers(pipeline_def, train_options):
    """Gives an inference pipeline definition the training tokenizers it
    does not set itself, so raw text is split as in training.

    Args:
      pipeline_def: A `{class, params}` dict or YAML string.
      train_options: The saved `TrainOptions`.

    Returns:
      The definition (a new dict when something was added).
    """
    tokenizers = dict(zip(("source", "target"), training_tokenizers(train_options)))
    if not any(tokenizers.values()):
        return pipeline_def
    definition = maybe_load_yaml(pipeline_def, "--input_pipeline")
    if not isinstance(definition, dict):
        return pipeline_def
    params = dict(definition.get("params") or {})
    for side, path in tokenizers.items():
        if path and f"{side}_tokenizer" not in params:
            params[f"{side}_tokenizer"] = path
    return dict(definition, params=params)


def build_model(train_options, model_params=None, mode=ModeKeys.INFER):
    """Builds the model class of `train_options` with overrides merged in."""
    from seq2seq import models

    model_class = locate_class(
        train_options.model_class, ["seq2seq.models"], "model", base=models.ModelBase
    )
    params = deep_merge(train_options.model_params, model_params or {})
    return model_class(params, mode)


def dummy_features(model):
    """Preprocessed features of one source holding only `SEQUENCE_END`:
    `{"source_ids": [1, S], "source_len": [1]}`, plus the copy-attention
    source features of a model that copies."""
    tokens = tf.constant([[SEQUENCE_END]])
    features = model.preprocess(
        {"source_tokens": tokens, "source_len": tf.constant([1], tf.int32)}
    )
    keys = _SOURCE_KEYS + _COPY_SOURCE_KEYS
    return {k: features[k] for k in keys if k in features}


def create_variables(model, features=None):
    """Runs `model.infer` eagerly for one step, so that the model's
    variables exist before a checkpoint is restored into them.

    Args:
      model: The model.
      features: Optional preprocessed batch whose first example is decoded
        (any model); `dummy_features(model)` when None (text models).
    """
    if features is None:
        features = dummy_features(model)
    else:
        features = {
            key: value[:1] if getattr(value, "shape", None) else value
            for key, value in features.items()
        }
    model.infer(features, max_length=1)


def restore_model(model, checkpoint_path):
    """Restores the model's variables from a training checkpoint.

    The model's variables must exist (call the model once first). A list
    of checkpoints restores the members of an ensemble
    (`seq2seq.models.ensemble.EnsembleModel`), one each, in order.

    Raises:
      UserError: The checkpoint was written by a different model, or its
        files are damaged.
    """
    if isinstance(checkpoint_path, (list, tuple)):
        for member, path in zip(model.members, checkpoint_path, strict=True):
            restore_model(member, path)
        return

    def restore():
        status = tf.train.Checkpoint(model=model).read(checkpoint_path)
        # Training checkpoints also hold the optimizer and data iterator.
        status.expect_partial()
        status.assert_existing_objects_matched()

    run_dir.restore_checkpoint(
        checkpoint_path,
        restore,
        "train_options.json and --model_params",
        "Check that --model_params only changes inference settings.",
    )
    logging.info("Restored model from %s", checkpoint_path)


def make_dataset(model, pipeline, batch_size):
    """Batched, preprocessed features in input order (no shuffling, no
    bucketing, the last batch may be smaller).

    Sources and targets are cut to the model's `*.max_seq_len` while the
    lines are split: `preprocess` would cut their ids there and the tasks
    trim the tokens to the cut lengths, so nothing past them is ever used.
    """
    return _preprocessed(model, _batched(model, pipeline, batch_size))


def make_sorted_dataset(model, pipeline, batch_size, sort_window):
    """Like `make_dataset`, but each window of `sort_window` inputs is
    batched in order of source length (see `length_sorting`).

    Returns:
      A dataset of `(features, positions)`: the preprocessed batch and the
      [B] int64 input positions of its rows; None when the examples have no
      `source_len` to sort by (e.g. images).
    """
    limits = _length_limits(model)
    examples = pipeline.make_dataset(
        max_source_len=limits["max_source_len"],
        max_target_len=limits["max_target_len"],
    )
    if "source_len" not in examples.element_spec:
        return None
    batches = _batched(
        model, length_sorting.sort_windows(examples, sort_window), batch_size
    )

    @tf.autograph.experimental.do_not_convert
    def split(features):
        features = dict(features)
        return features, features.pop(length_sorting.INDEX_KEY)

    return _preprocessed(model, batches.map(split))


def _length_limits(model):
    params = model.params
    return {
        "max_source_len": params.get("source.max_seq_len"),
        "max_target_len": params.get("target.max_seq_len"),
    }


def _batched(model, source, batch_size):
    """`source` (a pipeline or a dataset of examples) in padded batches."""
    return batching.create_input_fn(
        source,
        batch_size=batch_size,
        allow_smaller_final_batch=True,
        **_length_limits(model),
    )


def _preprocessed(model, batches):
    """Maps `model.preprocess` over `batches` (of features, or of
    `(features, extra)` pairs whose `extra` passes through)."""

    @tf.autograph.experimental.do_not_convert
    def apply(features, *extra):
        features = model.preprocess(features)
        return (features, *extra) if extra else features

    dataset = batches.map(apply, num_parallel_calls=tf.data.AUTOTUNE)
    return batching.read_once(dataset.prefetch(tf.data.AUTOTUNE))


def _strings(array):
    """A numpy array of UTF-8 bytes -> object array of str."""
    flat = [b.decode("utf-8", errors="replace") for b in array.reshape(-1)]
    return np.array(flat, dtype=object).reshape(array.shape)


def _tokens_from_ids(id_to_token, ids, lengths, oov_tokens=None):
    """[..., T] ids and [...] lengths -> [..., T] str tokens, "" past each
    length. With copy attention, `oov_tokens` [B, O] are the source OOV
    words of each sentence (ids [B, T] or [B, N, T]) that ids >= V stand
    for."""
    if oov_tokens is not None:
        oov_tokens = np.asarray(oov_tokens, dtype=object)
        flat = ids.reshape((-1, ids.shape[-1]))
        # Each sentence's words serve its N hypotheses (rows b * N + n).
        per_sentence = flat.shape[0] // max(oov_tokens.shape[0], 1)
        rows = np.repeat(oov_tokens, per_sentence, axis=0)
        tokens = extended_tokens(id_to_token, flat, rows).reshape(ids.shape)
    else:
        tokens = id_to_token[ids].astype(object)
    positions = np.arange(ids.shape[-1])
    tokens[positions >= lengths[..., None]] = ""
    return tokens


def _source_padding_id(model):
    """The id batching gives padded source positions (that of "")."""
    table = getattr(model, "source_vocab_table", None)
    if table is None:
        return 0
    return tf.cast(table.lookup(tf.constant("")), tf.int32)


class Predictor:
    """Compiled decoding (and optional scoring) of preprocessed batches.

    Decoding is one `tf.function` with a fixed input signature (the
    dataset's, every dimension free), traced once for every batch shape.
    With `jit_compile` the decoding loops (greedy or beam search) are
    compiled with XLA, which compiles once per distinct `[B, S]` input
    shape; the source ids (and forced target prefixes) are then padded
    (with masked positions) to a multiple of `source_pad_multiple` tokens to
    keep the number of shapes, and so of compilations, small. The attention
    scores returned are cut back to the unpadded source length.

    Args:
      model: A `Seq2SeqModel` (its variables may be built lazily).
      element_spec: The dataset's element spec, giving the input signature.
      with_scores: Also compile teacher-forced scoring of the targets.
      jit_compile: Compile the decoding loops with XLA.
      source_pad_multiple: With `jit_compile`, pad the source length to a
        multiple of this many tokens (1: no padding).
      n_best: With N >= 1, also decode the N best hypotheses of each
        sentence (`nbest.*` predictions; beam search only).
    """

    def __init__(
        self,
        model,
        element_spec,
        with_scores=False,
        jit_compile=False,
        source_pad_multiple=8,
        n_best=0,
    ):
        self.model = model
        self.n_best = int(n_best or 0)
        self.jit_compile = bool(jit_compile)
        self.source_pad_multiple = max(int(source_pad_multiple or 1), 1)
        self._source_keys = _SOURCE_KEYS + tuple(
            k for k in _COPY_SOURCE_KEYS if k in element_spec
        )
        self._target_keys = _TARGET_KEYS + tuple(
            k for k in _COPY_TARGET_KEYS if k in element_spec
        )
        self._infer_keys = self._source_keys
        if all(k in element_spec for k in _PREFIX_KEYS):
            self._infer_keys += _PREFIX_KEYS
        source_spec = {k: element_spec[k] for k in self._infer_keys}
        self._infer = tf.function(
            self._decode, input_signature=[source_spec], autograph=False
        )
        self._score = None
        if with_scores:
            missing = [k for k in _TARGET_KEYS if k not in element_spec]
            if missing:
                raise UserError(
                    "a task scores targets but --input_pipeline has no target "
                    "files; add target_files to its params."
                )
            keys = self._source_keys + self._target_keys
            score_spec = {k: element_spec[k] for k in keys}
            self._score = tf.function(
                model.score, input_signature=[score_spec], autograph=False
            )

    def _decode(self, features):
        """`model.infer` on [B, S] `source_ids` and [B] `source_len` (and
        [B, P] `target_prefix_ids`, [B] `target_prefix_len`)."""
        features = dict(features)
        width = tf.shape(features["source_ids"])[1]
        multiple = self.source_pad_multiple
        if self.jit_compile and multiple > 1:
            padding = (multiple - width % multiple) % multiple
            features["source_ids"] = tf.pad(
                features["source_ids"],
                [[0, 0], [0, padding]],
                constant_values=_source_padding_id(self.model),
            )
            if "source_copy_ids" in features:
                # Masked positions: any id in range will do.
                features["source_copy_ids"] = tf.pad(
                    features["source_copy_ids"], [[0, 0], [0, padding]]
                )
            if "target_prefix_ids" in features:
                prefix = features["target_prefix_ids"]
                padding = (multiple - tf.shape(prefix)[1] % multiple) % multiple
                features["target_prefix_ids"] = tf.pad(prefix, [[0, 0], [0, padding]])
        extra = {"n_best": self.n_best} if self.n_best else {}
        predictions = self.model.infer(features, jit_compile=self.jit_compile, **extra)
        if self.jit_compile:
            for key in ("attention_scores", "nbest.attention_scores"):
                if key in predictions:
                    predictions[key] = predictions[key][..., :width]
        return predictions

    def __call__(self, features):
        """Runs one batch; returns the numpy predictions dict tasks consume."""
        outputs = self._infer({k: features[k] for k in self._infer_keys})
        outputs = {k: v.numpy() for k, v in outputs.items()}
        oov_tokens = features.get("source_oov_tokens")
        predictions = {
            "source_tokens": _strings(features["source_tokens"].numpy()),
            "source_len": features["source_len"].numpy(),
            "predicted_tokens": _tokens_from_ids(
                self.model.target_id_to_token,
                outputs["predicted_ids"],
                outputs["predicted_len"],
                None if oov_tokens is None else oov_tokens.numpy(),
            ),
        }
        predictions.update(outputs)
        if "nbest.predicted_ids" in outputs:
            predictions["nbest.predicted_tokens"] = _tokens_from_ids(
                self.model.target_id_to_token,
                outputs["nbest.predicted_ids"],
                outputs["nbest.predicted_len"],
                None if oov_tokens is None else oov_tokens.numpy(),
            )
        if self._score is not None:
            keys = self._source_keys + self._target_keys
            scores = self._score({k: features[k] for k in keys})
            predictions.update({k: v.numpy() for k, v in scores.items()})
            predictions["target_tokens"] = _strings(features["target_tokens"].numpy())
            predictions["target_len"] = features["target_len"].numpy()
        return predictions


class Progress:
    """A progress line on stderr: sentences done / total and sentences/s."""

    def __init__(self, total=None, stream=None, min_interval=0.5):
        self.total = total
        self.stream = stream or sys.stderr
        self.done = 0
        self.start = time.time()
        self._last = 0.0
        self._shown = None
        self._interactive = getattr(self.stream, "isatty", lambda: False)()
        self.min_interval = min_interval if self._interactive else 10.0

    def _line(self):
        rate = self.done / max(time.time() - self.start, 1e-9)
        if self.total:
            width = 30
            filled = int(width * min(self.done / self.total, 1.0))
            bar = "#" * filled + "." * (width - filled)
            return f"[{bar}] {self.done}/{self.total} sentences, {rate:.1f} sent/s"
        return f"{self.done} sentences, {rate:.1f} sent/s"

    def update(self, count):
        self.done += count
        now = time.time()
        if now - self._last >= self.min_interval:
            self._last = now
            end = "\r" if self._interactive else "\n"
            self.stream.write(self._line() + end)
            self.stream.flush()
            self._shown = self.done

    def close(self):
        if self._interactive or self._shown != self.done:
            self.stream.write(self._line() + "\n")
            self.stream.flush()


def run_inference(
    model,
    pipeline,
    tasks,
    batch_size=32,
    checkpoint_path=None,
    progress=True,
    jit_compile=False,
    protected_paths=(),
    sort_window=length_sorting.DEFAULT_WINDOW,
):
    """Decodes every example of `pipeline` and feeds the tasks in input order.

    Before any task begins, tasks whose output would write over an input
    (the pipeline's files, the model's vocabularies, a task's own input,
    `protected_paths`) or over a file of a training run are refused.

    Args:
      model: A `Seq2SeqModel` in infer mode.
      pipeline: An `InputPipeline` (shuffle off, one epoch).
      tasks: `InferenceTask` objects.
      batch_size: Sentences per batch.
      checkpoint_path: Checkpoint to restore after the variables are built
        (a list for an ensemble, see `restore_model`); `None` to use the
        model's current weights.
      progress: Show a progress line on stderr.
      jit_compile: Compile the decoding loops with XLA (see `Predictor`).
      protected_paths: Further files that are read and must not be written
        (e.g. the config file).
      sort_window: Decode each window of this many inputs in batches sorted
        by source length (see `length_sorting`); the tasks still get the
        predictions in input order. 0 or 1 (and inputs without a source
        length, such as images): batches in input order.

    Returns:
      The number of sentences decoded.

    Raises:
      UserError: A task's output is an input or a file of a training run.
    """
    pipeline.check()
    check_task_outputs(model, pipeline, tasks, protected_paths)
    n_best = check_n_best(model, tasks)
    dataset = None
    if sort_window is not None and sort_window > 1:
        dataset = make_sorted_dataset(model, pipeline, batch_size, sort_window)
    sorting = dataset is not None
    if sorting:
        features_spec = dataset.element_spec[0]
        order = length_sorting.InputOrder(batch_size)
    else:
        dataset = make_dataset(model, pipeline, batch_size)
        features_spec = dataset.element_spec
        dataset = ((features, None) for features in dataset)
    with_scores = any(getattr(task, "needs_scores", False) for task in tasks)
    predictor = Predictor(
        model,
        features_spec,
        with_scores=with_scores,
        jit_compile=jit_compile,
        n_best=n_best if n_best > 1 else 0,
    )
    meter = Progress(getattr(pipeline, "num_examples", None)) if progress else None
    restored = checkpoint_path is None
    for task in tasks:
        task.begin()
    count = 0

    def feed(batches):
        for predictions in batches:
            for task in tasks:
                task.process_batch(predictions)

    for features, positions in dataset:
        if not restored:
            # Eagerly, so that the decoding function is traced once, after
            # the restore (a tf.function that creates variables is traced
            # twice, and would decode this batch with untrained weights).
            create_variables(model, features)
            restore_model(model, checkpoint_path)
            restored = True
        predictions = predictor(features)
        feed(order.add(positions.numpy(), predictions) if sorting else [predictions])
        size = len(predictions["source_len"])
        count += size
        if meter:
            meter.update(size)
    if sorting:
        feed(order.flush())
    if meter:
        meter.close()
    for task in tasks:
        task.end()
    return count


def check_n_best(model, tasks):
    """The largest `n_best` the tasks ask for, checked against the model.

    Args:
      model: The model (its strategy and beam width are read).
      tasks: `InferenceTask` objects; those with an `n_best` attribute
        (`DecodeText`) want that many hypotheses per input.

    Returns:
      The largest `n_best` (1 when no task wants more than the best).

    Raises:
      ConfigError: A task wants more than one hypothesis without beam search,
        or more than the beam width.
    """
    n_best, task = max(
        ((int(getattr(task, "n_best", 1) or 1), task) for task in tasks),
        key=lambda pair: pair[0],
        default=(1, None),
    )
    if n_best <= 1:
        return 1
    what = f"{type(task).__name__}: n_best"
    if not model.use_beam_search:
        raise ConfigError(
            f"{what} is {n_best}, which needs beam search; add --model_params "
            f"'inference.beam_search.beam_width: {n_best}' (or wider), or set "
            "n_best: 1."
        )
    width = model.beam_search_config().beam_width
    if n_best > width:
        raise ConfigError(
            f"{what} is {n_best}, more than inference.beam_search.beam_width "
            f"{width}; lower n_best or raise the beam width to {n_best} or more."
        )
    return n_best


def check_task_outputs(model, pipeline, tasks, protected_paths=()):
    """Refuses tasks whose output would write over a file that is read.

    Args:
      model: The model (its `vocab_source` / `vocab_target` params are read).
      pipeline: A checked `InputPipeline`.
      tasks: `InferenceTask` objects.
      protected_paths: Further input files.

    Raises:
      UserError: An output is one of the inputs, or a file of a training
        run (see `safe_paths.check_outputs`).
    """
    inputs = list(pipeline.input_files())
    for member in getattr(model, "members", [model]):
        inputs += [member.params.get(key) for key in VOCAB_PARAMS]
        inputs.append(member.params.get("inference.banned_tokens_file") or None)
    inputs += list(protected_paths)
    for task in tasks:
        inputs += task.input_paths()
    outputs = [output for task in tasks for output in task.output_paths()]
    safe_paths.check_outputs(outputs, [p for p in inputs if isinstance(p, str)])
