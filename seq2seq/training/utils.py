"""Training helpers: learning-rate decay schedules and saved training options.

Learning rate
  `LearningRateDecay` is a Keras `LearningRateSchedule` that implements the
  original toolkit's `optimizer.lr_*` parameters: the rate stays at
  `optimizer.learning_rate` before `start_decay_at`, decays as a function of
  `step - start_decay_at`, stops changing after `stop_decay_at` and never goes
  below `min_learning_rate`. `make_learning_rate` turns those parameters into
  the value a Keras optimizer takes (a float when there is no decay), and
  `create_learning_rate_decay_fn` keeps the original function-style API.

Training options
  `TrainOptions` is what `bin/train.py` writes to `train_options.json` in the
  model directory so that `bin/infer.py` (or a restarted training run) can
  rebuild the same model and check that it is fed the same vocabularies.
"""

import hashlib
import json
import math
import os

import keras
import tensorflow as tf

from seq2seq.errors import ConfigError, DataError, UserError

# ---------------------------------------------------------------------------
# Learning-rate decay
# ---------------------------------------------------------------------------

# Decay types that divide the step count into `decay_steps` periods and so
# honour `staircase`.
_PERIODIC_DECAYS = ("exponential_decay", "inverse_time_decay", "natural_exp_decay")
_OTHER_DECAYS = ("polynomial_decay", "cosine_decay", "noam", "rsqrt_warmup")
DECAY_TYPES = _PERIODIC_DECAYS + _OTHER_DECAYS

# End value of polynomial decay when no minimum learning rate is given
# (the default `end_learning_rate` of TF1's `tf.train.polynomial_decay`).
_POLYNOMIAL_DEFAULT_END = 1e-4


def _check_decay_args(decay_type, decay_steps):
    if decay_type not in DECAY_TYPES:
        raise ConfigError(
            f"optimizer.lr_decay_type: unknown decay type '{decay_type}'. "
            f"Valid types: {', '.join(DECAY_TYPES)}, or '' for no decay."
        )
    if not decay_steps or decay_steps <= 0:
        raise ConfigError(
            f"optimizer.lr_decay_steps must be a positive number of steps for "
            f"lr_decay_type '{decay_type}', got {decay_steps!r}."
        )


@keras.saving.register_keras_serializable(package="seq2seq")
class LearningRateDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate at a given training step, following `optimizer.lr_*`.

    With `s = min(step, stop_decay_at) - start_decay_at`, `lr0 =
    learning_rate`, `N = decay_steps` and `r = decay_rate`, the decayed rate is

    * `exponential_decay`: `lr0 * r ** (s / N)`
    * `inverse_time_decay`: `lr0 / (1 + r * s / N)`
    * `natural_exp_decay`: `lr0 * exp(-r * s / N)`
    * `polynomial_decay`: `(lr0 - end) * (1 - min(s, N) / N) + end`, a linear
      decay to `end = min_learning_rate` (or 1e-4 when that is unset) that is
      reached after `N` steps.
    * `cosine_decay`: `end + (lr0 - end) * 0.5 * (1 + cos(pi * min(s, N) / N))`
      with `end = min_learning_rate` (or 0 when unset).
    * `noam` / `rsqrt_warmup`: `lr0 * min((s + 1) / N, sqrt(N / (s + 1)))`:
      a linear warm-up over `N` steps to the peak `lr0`, then `1/sqrt(step)`.

    `staircase` replaces `s / N` by `floor(s / N)` in the first three. Before
    `start_decay_at` the rate is the constant `lr0`; the result is never below
    `min_learning_rate` when that is set (non-zero).

    Args:
      learning_rate: The initial (for warm-up types: peak) rate, a float.
      decay_type: One of `DECAY_TYPES`.
      decay_steps: `N` above; a positive number.
      decay_rate: `r` above; required by the first three types, unused by
        the others.
      start_decay_at: The step at which decay starts.
      stop_decay_at: The step after which the rate no longer changes.
      min_learning_rate: A floor for the rate; `None` or 0 for none.
      staircase: Whether periodic decays change the rate only every `N` steps.

    Raises:
      ConfigError: An unknown `decay_type` or a non-positive `decay_steps`.
    """

    def __init__(
        self,
        learning_rate,
        decay_type,
        decay_steps,
        decay_rate=None,
        start_decay_at=0,
        stop_decay_at=1e9,
        min_learning_rate=None,
        staircase=False,
    ):
        super().__init__()
        _check_decay_args(decay_type, decay_steps)
        if decay_rate is None and decay_type in _PERIODIC_DECAYS:
            raise ConfigError(
                f"optimizer.lr_decay_rate must be set for lr_decay_type "
                f"'{decay_type}'."
            )
        self.learning_rate = float(learning_rate)
        self.decay_type = decay_type
        self.decay_steps = decay_steps
        self.decay_rate = None if decay_rate is None else float(decay_rate)
        self.start_decay_at = int(start_decay_at)
        self.stop_decay_at = int(stop_decay_at)
        self.min_learning_rate = float(min_learning_rate) if min_learning_rate else None
        self.staircase = bool(staircase)

    def _decayed(self, steps):
        """The decayed rate after `steps` (a float32 tensor >= 0) decay steps."""
        lr0 = tf.constant(self.learning_rate, tf.float32)
        period = tf.constant(float(self.decay_steps), tf.float32)
        kind = self.decay_type
        if kind in _PERIODIC_DECAYS:
            rate = tf.constant(self.decay_rate, tf.float32)
            progress = steps / period
            if self.staircase:
                progress = tf.floor(progress)
            if kind == "exponential_decay":
                return lr0 * tf.pow(rate, progress)
            if kind == "inverse_time_decay":
                return lr0 / (1.0 + rate * progress)
            return lr0 * tf.exp(-rate * progress)
        if kind == "polynomial_decay":
            end = self.min_learning_rate or _POLYNOMIAL_DEFAULT_END
            remaining = 1.0 - tf.minimum(steps, period) / period
            return (lr0 - end) * remaining + end
        if kind == "cosine_decay":
            end = self.min_learning_rate or 0.0
            progress = tf.minimum(steps, period) / period
            cosine = 0.5 * (1.0 + tf.cos(math.pi * progress))
            return end + (lr0 - end) * cosine
        # noam / rsqrt_warmup
        count = steps + 1.0
        return lr0 * tf.minimum(count / period, tf.sqrt(period / count))

    def __call__(self, step):
        """Returns the learning rate at `step` as a float32 scalar tensor.

        Args:
          step: The global step (a Python int or an integer/float tensor,
            e.g. `optimizer.iterations`).
        """
        with tf.name_scope("learning_rate_decay"):
            step = tf.cast(step, tf.int64)
            start = tf.constant(self.start_decay_at, tf.int64)
            stop = tf.constant(self.stop_decay_at, tf.int64)
            steps = tf.maximum(tf.minimum(step, stop) - start, 0)
            decayed = self._decayed(tf.cast(steps, tf.float32))
            lr = tf.where(
                step < start,
                tf.constant(self.learning_rate, tf.float32),
                decayed,
            )
            if self.min_learning_rate:
                lr = tf.maximum(lr, self.min_learning_rate)
            return lr

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "decay_type": self.decay_type,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "start_decay_at": self.start_decay_at,
            "stop_decay_at": self.stop_decay_at,
            "min_learning_rate": self.min_learning_rate,
            "staircase": self.staircase,
        }


def create_learning_rate_decay_fn(
    decay_type,
    decay_steps,
    decay_rate,
    start_decay_at=0,
    stop_decay_at=1e9,
    min_learning_rate=None,
    staircase=False,
):
    """Creates a function that decays the learning rate (the original's API).

    Args:
      decay_type: One of `DECAY_TYPES`; `None` or `""` means no decay.
      decay_steps: See `LearningRateDecay`.
      decay_rate: See `LearningRateDecay`.
      start_decay_at: See `LearningRateDecay`.
      stop_decay_at: See `LearningRateDecay`.
      min_learning_rate: See `LearningRateDecay`.
      staircase: See `LearningRateDecay`.

    Returns:
      `decay_fn(learning_rate, global_step) -> float32 scalar tensor`, or
      `None` when `decay_type` is empty.

    Raises:
      ConfigError: An unknown `decay_type` or a non-positive `decay_steps`.
    """
    if not decay_type:
        return None
    _check_decay_args(decay_type, decay_steps)

    def decay_fn(learning_rate, global_step):
        schedule = LearningRateDecay(
            learning_rate,
            decay_type,
            decay_steps,
            decay_rate,
            start_decay_at=start_decay_at,
            stop_decay_at=stop_decay_at,
            min_learning_rate=min_learning_rate,
            staircase=staircase,
        )
        return schedule(global_step)

    return decay_fn


def make_learning_rate(learning_rate, decay_type=None, **decay_kwargs):
    """The `learning_rate` argument for a Keras optimizer.

    Args:
      learning_rate: The base learning rate, a float.
      decay_type: A decay type of `DECAY_TYPES`; `None` or `""` for none.
      **decay_kwargs: The other arguments of `LearningRateDecay`
        (`decay_steps`, `decay_rate`, `start_decay_at`, `stop_decay_at`,
        `min_learning_rate`, `staircase`).

    Returns:
      `float(learning_rate)` when there is no decay, else a
      `LearningRateDecay`.
    """
    if not decay_type:
        return float(learning_rate)
    return LearningRateDecay(learning_rate, decay_type, **decay_kwargs)


# ---------------------------------------------------------------------------
# Training options
# ---------------------------------------------------------------------------

TRAIN_OPTIONS_FILENAME = "train_options.json"


def file_sha256(path):
    """The hex SHA-256 digest of a file's bytes.

    Raises:
      DataError: The file does not exist.
    """
    if not tf.io.gfile.exists(path):
        raise DataError(f"file not found: {path}. Check the path in the config.")
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as handle:
        while True:
            chunk = handle.read(1 << 20)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def vocab_checksums(paths):
    """Maps each non-empty path in `paths` to `file_sha256(path)`."""
    return {path: file_sha256(path) for path in paths if path}


def _json_default(value):
    """Makes numpy scalars/arrays and sets JSON-serialisable."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable: {value!r}")


# Model params that may change when training is resumed from a checkpoint:
# they affect neither the variables nor their meaning. Matched as prefixes of
# the top-level model_params keys.
RESTART_SAFE_PARAMS = (
    "optimizer.learning_rate",
    "optimizer.lr_",
    "optimizer.clip_gradients",
    "optimizer.clip_embed_gradients",
    "optimizer.sync_replicas",
    "inference.",
    "loss.",
    "source.max_seq_len",
    "target.max_seq_len",
)

# model_params keys holding vocabulary paths; compared by content instead
# when both sides recorded vocabulary checksums.
VOCAB_PARAMS = ("vocab_source", "vocab_target")


def _diff(saved, new, prefix, out, skip=()):
    """Appends one line per differing leaf of two nested dicts to `out`.

    Top-level keys starting with any prefix in `skip` are not compared.
    """
    if isinstance(saved, dict) and isinstance(new, dict):
        for key in sorted(set(saved) | set(new), key=str):
            if any(str(key).startswith(start) for start in skip):
                continue
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in new:
                out.append(f"{where}: {saved[key]!r} (saved) is missing now")
            elif key not in saved:
                out.append(f"{where}: missing (saved) != {new[key]!r} (now)")
            else:
                _diff(saved[key], new[key], where, out)
        return
    if isinstance(saved, (list, tuple)) and isinstance(new, (list, tuple)):
        saved, new = list(saved), list(new)
    if saved != new:
        out.append(f"{prefix}: {saved!r} (saved) != {new!r} (now)")


def _short_repr(value, limit=60):
    """`repr(value)`, cut to about `limit` characters for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class TrainOptions:
    """The options a model was trained with, saved next to its checkpoints.

    Args:
      model_class: Name of the model class (short or dotted).
      model_params: The model's params dict as given by the user.
      vocab_checksums: Optional `{path: sha256}` of the vocabulary files.
      resolved_config: Optional dict of the fully merged configuration, kept
        for reference (not compared by default).
      **extra: Any further JSON-serialisable fields to keep.
    """

    def __init__(
        self,
        model_class,
        model_params,
        vocab_checksums=None,
        resolved_config=None,
        **extra,
    ):
        self._model_class = model_class
        self._model_params = model_params if model_params is not None else {}
        self._vocab_checksums = dict(vocab_checksums or {})
        self._resolved_config = resolved_config
        self._extra = dict(extra)

    @property
    def model_class(self):
        """The model class name."""
        return self._model_class

    @property
    def model_params(self):
        """The model parameters dict."""
        return self._model_params

    @property
    def vocab_checksums(self):
        """`{path: sha256}` of the vocabularies (empty if not recorded)."""
        return self._vocab_checksums

    @property
    def resolved_config(self):
        """The merged configuration dict, or `None`."""
        return self._resolved_config

    @property
    def extra(self):
        """Further fields, a dict."""
        return self._extra

    @staticmethod
    def path(model_dir):
        """The path of the options file in `model_dir`."""
        return os.path.join(model_dir, TRAIN_OPTIONS_FILENAME)

    def to_dict(self):
        """The options as a JSON-ready dict."""
        result = {"model_class": self.model_class, "model_params": self.model_params}
        if self.vocab_checksums:
            result["vocab_checksums"] = self.vocab_checksums
        if self.resolved_config is not None:
            result["resolved_config"] = self.resolved_config
        result.update(self.extra)
        return result

    @classmethod
    def from_model(cls, model_class, model_params, resolved_config=None, **extra):
        """Options for a new run, with checksums of the model's vocabularies.

        Args:
          model_class: The model class name.
          model_params: The model params dict (`None` for `{}`); the files
            named by its `vocab_source` / `vocab_target` keys are hashed.
          resolved_config: Optional merged configuration to keep.
          **extra: Further fields.

        Raises:
          DataError: A vocabulary file named in `model_params` is missing.
        """
        model_params = dict(model_params or {})
        paths = [model_params.get(key) for key in VOCAB_PARAMS]
        return cls(
            model_class,
            model_params,
            vocab_checksums=vocab_checksums(p for p in paths if isinstance(p, str)),
            resolved_config=resolved_config,
            **extra,
        )

    @classmethod
    def from_dict(cls, options, source="train options"):
        """Builds options from a dict as written by `to_dict`.

        Raises:
          UserError: `options` is not a dict, has no `model_class`, or
            `model_class`, `model_params` or `vocab_checksums` has the
            wrong type.
        """
        if not isinstance(options, dict) or "model_class" not in options:
            raise UserError(
                f"{source}: expected a JSON object with a 'model_class' field. "
                "Point --model_dir at a directory written by bin/train.py."
            )
        for key, kind, what in (
            ("model_class", str, "a string (the model class name)"),
            ("model_params", dict, "a JSON object of model parameters"),
            ("vocab_checksums", dict, "a JSON object of vocabulary checksums"),
        ):
            value = options.get(key)
            if value is None and key != "model_class":
                continue
            if not isinstance(value, kind) or (key == "model_class" and not value):
                raise UserError(
                    f"{source}: '{key}' must be {what}, got {_short_repr(value)}. "
                    "Restore the file written by bin/train.py."
                )
        options = dict(options)
        return cls(
            model_class=options.pop("model_class"),
            model_params=options.pop("model_params", None),
            vocab_checksums=options.pop("vocab_checksums", None),
            resolved_config=options.pop("resolved_config", None),
            **options,
        )

    def dump(self, model_dir):
        """Writes `train_options.json` (pretty JSON) into `model_dir`.

        The file is written under a temporary name and then renamed, so an
        existing file is never left half-written.
        """
        tf.io.gfile.makedirs(model_dir)
        text = json.dumps(
            self.to_dict(), indent=2, sort_keys=True, default=_json_default
        )
        path = TrainOptions.path(model_dir)
        tmp_path = path + ".tmp"
        with tf.io.gfile.GFile(tmp_path, "w") as handle:
            handle.write(text + "\n")
        tf.io.gfile.rename(tmp_path, path, overwrite=True)

    @classmethod
    def load(cls, model_dir):
        """Reads `train_options.json` from `model_dir`.

        Raises:
          UserError: The file is missing, not valid JSON or lacks fields.
        """
        path = TrainOptions.path(model_dir)
        if not tf.io.gfile.exists(path):
            raise UserError(
                f"{path} not found. Point --model_dir at the --output_dir of a "
                "training run (it writes that file)."
            )
        try:
            with tf.io.gfile.GFile(path, "r") as handle:
                options = json.loads(handle.read())
        except (ValueError, UnicodeDecodeError) as err:
            raise UserError(
                f"{path} is not valid JSON ({err}). Restore it or delete it and "
                "pass --model and --model_params explicitly."
            ) from None
        return cls.from_dict(options, source=path)

    def check_compatible(
        self,
        other,
        fields=("model_class", "model_params", "vocab_checksums"),
        ignore_params=RESTART_SAFE_PARAMS,
    ):
        """Lists how `other` (the new run) differs from these (saved) options.

        Vocabulary checksums are compared by content: a vocabulary that moved
        to a new path with the same checksum is compatible, one at the same
        path with a different checksum is not. Checksums missing on either
        side are not compared. When both sides have checksums, the vocabulary
        paths in `model_params` (`vocab_source`, `vocab_target`) are not
        compared as strings.

        Args:
          other: The `TrainOptions` of the new run.
          fields: Which fields to compare: any of `model_class`,
            `model_params`, `vocab_checksums`, `resolved_config`, or the name
            of an extra field.
          ignore_params: Prefixes of top-level `model_params` keys that may
            differ (by default the learning rate, decay, clipping, inference
            and length-limit settings). Pass `()` to compare every key.

        Returns:
          A list of one-line descriptions, empty when compatible.
        """
        saved_all, new_all = self.to_dict(), other.to_dict()
        skip = tuple(ignore_params)
        if self.vocab_checksums and other.vocab_checksums:
            skip += VOCAB_PARAMS
        differences = []
        for field in fields:
            saved, new = saved_all.get(field), new_all.get(field)
            if field == "vocab_checksums":
                differences.extend(_vocab_differences(saved or {}, new or {}))
            elif field == "model_params":
                _diff(saved or {}, new or {}, field, differences, skip)
            else:
                _diff(saved, new, field, differences)
        return differences

    def differences(self, other, **kwargs):
        """Same as `check_compatible`."""
        return self.check_compatible(other, **kwargs)


def _vocab_differences(saved, new):
    if not saved or not new:
        return []
    differences = []
    for path in sorted(set(saved) & set(new)):
        if saved[path] != new[path]:
            differences.append(
                f"vocabulary {path} changed: sha256 {saved[path][:12]}... (saved) "
                f"!= {new[path][:12]}... (now)"
            )
    if not differences and sorted(saved.values()) != sorted(new.values()):
        differences.append(
            f"vocabularies differ: saved {sorted(saved)} != now {sorted(new)} "
            "(different file contents)"
        )
    return differences
