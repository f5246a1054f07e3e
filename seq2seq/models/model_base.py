"""Base class of all models: optimizer parameters, optimizer and clipping.

`ModelBase` owns the `optimizer.*` parameters of the original toolkit and
turns them into a Keras optimizer (with the learning-rate schedule of
`seq2seq.training.utils`) and a global-norm gradient clipper. Everything
model-specific (embeddings, encoder, decoder, losses) lives in subclasses.

A subclass may also be a Keras layer or model: `class MyModel(ModelBase,
keras.Model)` (in that order). `ModelBase.__init__` initialises the Keras side
with the given name unless the subclass already called the Keras `__init__`.
"""

import inspect

import keras
import tensorflow as tf
from absl import logging

from seq2seq.configurable import (
    INT32_MAX,
    Configurable,
    constructor_args,
    locate_class,
)
from seq2seq.errors import ConfigError
from seq2seq.training import utils as training_utils

# The original's optimizer names (TF1 `OPTIMIZER_CLS_NAMES` plus a few), by
# lower-case name: (Keras class name, TF1 constructor defaults that differ
# from Keras's, applied unless optimizer.params sets them).
_NAMED_OPTIMIZERS = {
    "adam": ("Adam", {"epsilon": 1e-8}),
    "sgd": ("SGD", {}),
    "gradientdescent": ("SGD", {}),
    "momentum": ("SGD", {}),
    "adagrad": ("Adagrad", {}),
    "adadelta": ("Adadelta", {"epsilon": 1e-8}),
    "rmsprop": ("RMSprop", {"epsilon": 1e-10}),
    "ftrl": ("Ftrl", {}),
    "adamw": ("AdamW", {}),
}

# TF1 optimizer argument names -> Keras names (used when the Keras class
# takes the new name and not the old one).
_RENAMED_ARGS = {
    "beta1": "beta_1",
    "beta2": "beta_2",
    "use_nesterov": "nesterov",
    "decay": "rho",
}

# TF1 arguments with no Keras counterpart; dropped with a warning.
_DROPPED_ARGS = ("use_locking", "accum_name", "linear_name")

# What the summed training loss of an effective batch is divided by: its
# target tokens (the mean token loss, the original's) or its sentences
# (token losses summed per sentence, then averaged, as OpenNMT-tf).
LOSS_NORMALIZATIONS = ("tokens", "sentences")


def flatten_dict(nested, parent_key="", sep="."):
    """Flattens nested dicts (and namedtuples) into one dict of joined keys.

    Args:
      nested: A dict whose values may be dicts or namedtuples.
      parent_key: A prefix for every key.
      sep: The separator between a parent key and a child key.

    Returns:
      A new flat dict, e.g. `{"a": {"b": 3}}` -> `{"a.b": 3}`.
    """
    flat = {}
    for key, value in nested.items():
        full_key = f"{parent_key}{sep}{key}" if parent_key else str(key)
        if isinstance(value, tuple) and hasattr(value, "_asdict"):
            value = value._asdict()
        if isinstance(value, dict):
            flat.update(flatten_dict(value, full_key, sep=sep))
        else:
            flat[full_key] = value
    return flat


def _keras_optimizer_classes():
    """Keras optimizer classes that take a `learning_rate`, by lower-case name."""
    classes = {}
    for attr in dir(keras.optimizers):
        cls = getattr(keras.optimizers, attr)
        if (
            inspect.isclass(cls)
            and issubclass(cls, keras.optimizers.Optimizer)
            and cls is not keras.optimizers.Optimizer
            and "learning_rate" in inspect.signature(cls.__init__).parameters
        ):
            classes[attr.lower()] = cls
    return classes


def resolve_optimizer_class(name):
    """Finds the Keras optimizer class for an `optimizer.name`.

    Args:
      name: An original name (`Adam`, `SGD`, `Momentum`, `Adagrad`,
        `Adadelta`, `RMSProp`, `Ftrl`, `AdamW`), any `keras.optimizers` class
        name (case-insensitive), or a dotted path to an optimizer class.

    Returns:
      A tuple `(cls, tf1_defaults)`: the class and a dict of constructor
      defaults of the original's TF1 optimizer that differ from Keras's.

    Raises:
      ConfigError: No optimizer of that name.
    """
    key = str(name).lower()
    keras_classes = _keras_optimizer_classes()
    if key in _NAMED_OPTIMIZERS:
        class_name, defaults = _NAMED_OPTIMIZERS[key]
        return getattr(keras.optimizers, class_name), dict(defaults)
    if key in keras_classes:
        return keras_classes[key], {}
    if "." in str(name):
        cls = locate_class(name, what="optimizer", base=keras.optimizers.Optimizer)
        return cls, {}
    known = sorted(
        {v[0] for v in _NAMED_OPTIMIZERS.values()}
        | {"Momentum", "RMSProp"}
        | {cls.__name__ for cls in keras_classes.values()}
    )
    raise ConfigError(
        f"optimizer.name: unknown optimizer '{name}'. Valid names "
        f"(case-insensitive): {', '.join(known)}, or a dotted path to a Keras "
        "optimizer class."
    )


def optimizer_kwargs(name, cls, params, tf1_defaults=None):
    """Translates `optimizer.params` into keyword arguments for `cls`.

    TF1 argument names are renamed to their Keras names (`beta1` ->
    `beta_1`, `use_nesterov` -> `nesterov`, RMSProp's `decay` -> `rho`);
    `use_locking` and other TF1-only arguments are dropped with a warning.

    Args:
      name: The `optimizer.name` (for messages and the Momentum check).
      cls: The Keras optimizer class.
      params: The `optimizer.params` dict.
      tf1_defaults: Defaults to add unless `params` sets them.

    Returns:
      A dict of keyword arguments (without `learning_rate`).

    Raises:
      ConfigError: An argument `cls` does not take, a learning rate in
        `params`, or `Momentum` without a `momentum`.
    """
    valid = constructor_args(cls, exclude=("learning_rate",))
    kwargs = {}
    for arg, value in (params or {}).items():
        if arg in ("learning_rate", "lr"):
            raise ConfigError(
                f"optimizer.params.{arg}: set the learning rate with "
                "optimizer.learning_rate (and optimizer.lr_* for decay) instead."
            )
        if arg in _DROPPED_ARGS and arg not in valid:
            logging.warning(
                "optimizer.params.%s has no Keras equivalent and is ignored.", arg
            )
            continue
        renamed = _RENAMED_ARGS.get(arg)
        if arg not in valid and renamed in valid:
            arg = renamed
        if arg not in valid:
            raise ConfigError(
                f"optimizer.params: '{arg}' is not an argument of "
                f"keras.optimizers.{cls.__name__} (optimizer.name: {name}). "
                f"Valid arguments: {', '.join(valid)}."
            )
        kwargs[arg] = value
    if str(name).lower() == "momentum" and "momentum" not in kwargs:
        raise ConfigError(
            "optimizer.name Momentum needs optimizer.params.momentum "
            "(e.g. {momentum: 0.9}), as TF1's MomentumOptimizer did."
        )
    for arg, value in (tf1_defaults or {}).items():
        if arg in valid:
            kwargs.setdefault(arg, value)
    return kwargs


def _keras_initialized(layer):
    """Whether `keras.layers.Layer.__init__` already ran on `layer`."""
    state = vars(layer)
    return "built" in state or "_inbound_nodes" in state


class ModelBase(Configurable):
    """Abstract base class for models: optimizer, learning rate, clipping and
    the normalization of the training loss (`loss.normalize_by`).

    Args:
      params: The user's params dict (merged over `default_params()`).
      mode: `train`, `eval` or `infer`.
      name: The model's name (also the Keras name when the subclass is a
        Keras model).
    """

    def __init__(self, params, mode, name="model"):
        if isinstance(self, keras.layers.Layer) and not _keras_initialized(self):
            # Cooperative: the next class after Configurable is the Keras base.
            super(Configurable, self).__init__(name=name)
        Configurable.__init__(self, params, mode)
        if not isinstance(self, keras.layers.Layer):
            self.name = name
        normalize_by = self.params["loss.normalize_by"]
        if normalize_by not in LOSS_NORMALIZATIONS:
            raise ConfigError(
                "model_params: loss.normalize_by must be 'tokens' (the mean "
                "token loss, the original's) or 'sentences' (each sentence's "
                f"summed token loss, averaged), got {normalize_by!r}."
            )

    @staticmethod
    def default_params():
        """The `optimizer.*` parameters, with the original's defaults, and
        `loss.normalize_by`.

        `loss.normalize_by: tokens` (the original's) trains on the mean token
        loss of each batch; `sentences` on the token losses summed per
        sentence and averaged over the sentences (OpenNMT-tf's training
        loss), which weighs long sentences more and makes the gradients
        about mean-target-length times larger, so that Adam's `epsilon` and
        `clip_gradients` act as they do in OpenNMT-tf. Reported and
        evaluation losses stay per token either way.
        """
        return {
            "loss.normalize_by": "tokens",
            "optimizer.name": "Adam",
            "optimizer.learning_rate": 1e-4,
            "optimizer.params": {},
            "optimizer.lr_decay_type": "",
            "optimizer.lr_decay_steps": 100,
            "optimizer.lr_decay_rate": 0.99,
            "optimizer.lr_start_decay_at": 0,
            "optimizer.lr_stop_decay_at": INT32_MAX,
            "optimizer.lr_min_learning_rate": 1e-12,
            "optimizer.lr_staircase": False,
            "optimizer.clip_gradients": 5.0,
            "optimizer.sync_replicas": 0,
            "optimizer.sync_replicas_to_aggregate": 0,
        }

    def initialize_from_files(self):
        """Loads pretrained values (e.g. word vectors) into fresh variables.

        The trainer calls it once, at the first start of a run, after the
        variables are built and only when no checkpoint was restored. The
        base model has nothing to load.
        """

    def create_learning_rate(self):
        """The optimizer's learning rate: a float, or a `LearningRateDecay`.

        Raises:
          ConfigError: An unknown `optimizer.lr_decay_type`.
        """
        p = self.params
        return training_utils.make_learning_rate(
            p["optimizer.learning_rate"],
            decay_type=p["optimizer.lr_decay_type"] or None,
            decay_steps=p["optimizer.lr_decay_steps"],
            decay_rate=p["optimizer.lr_decay_rate"],
            start_decay_at=p["optimizer.lr_start_decay_at"],
            stop_decay_at=p["optimizer.lr_stop_decay_at"],
            min_learning_rate=p["optimizer.lr_min_learning_rate"],
            staircase=p["optimizer.lr_staircase"],
        )

    def create_optimizer(self):
        """Creates the Keras optimizer described by `optimizer.*`.

        Returns:
          A `keras.optimizers.Optimizer` whose learning rate is
          `create_learning_rate()`.

        Raises:
          ConfigError: An unknown optimizer name, an invalid entry in
            `optimizer.params`, or an invalid decay setting.
        """
        name = self.params["optimizer.name"]
        cls, tf1_defaults = resolve_optimizer_class(name)
        kwargs = optimizer_kwargs(
            name, cls, self.params["optimizer.params"], tf1_defaults
        )
        if self.params["optimizer.sync_replicas"] > 0:
            logging.info(
                "optimizer.sync_replicas=%d is ignored: tf.distribute "
                "synchronises replicas (all-reduce of gradients every step).",
                self.params["optimizer.sync_replicas"],
            )
        learning_rate = self.create_learning_rate()
        try:
            return cls(learning_rate=learning_rate, **kwargs)
        except (TypeError, ValueError) as err:
            raise ConfigError(
                f"optimizer {name}: invalid optimizer.params {kwargs}: {err}"
            ) from None

    def clip_gradients(self, grads):
        """Clips gradients by their global norm (`optimizer.clip_gradients`).

        Args:
          grads: A list of gradient tensors (entries may be `None` or
            `tf.IndexedSlices`).

        Returns:
          A tuple `(clipped_grads, global_norm)`: the list of clipped
          gradients (unchanged when `optimizer.clip_gradients <= 0`) and the
          float32 global norm of the gradients before clipping.
        """
        grads = list(grads)
        max_norm = self.params["optimizer.clip_gradients"]
        if max_norm and max_norm > 0:
            clipped, global_norm = tf.clip_by_global_norm(grads, max_norm)
            return list(clipped), global_norm
        return grads, tf.linalg.global_norm(grads)

    def batch_size(self, features, labels):
        """The batch size of a batch of examples."""
        raise NotImplementedError
