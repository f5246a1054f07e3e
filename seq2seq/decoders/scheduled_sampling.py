"""Scheduled sampling (Bengio et al., 2015): how often the decoder reads its
own prediction instead of the reference token during training.

Bengio et al. define `epsilon_i`, the probability of feeding the *reference*
token at training step `i`, and let it decay over training. This module uses
the complementary quantity

    p(step) = probability of feeding the model's own previous prediction
            = probability_max * (1 - epsilon(s))

where `probability_max` is the `probability` parameter (the largest value
the schedule reaches) and `s` counts steps from `start_step`, frozen at
`end_step` when that is set:

    s = min(max(step - start_step, 0), end_step - start_step)

Before `start_step`, `p` is 0 (pure teacher forcing). The schedules:

| type | `p(step)` | Bengio's `epsilon(s)` |
| --- | --- | --- |
| `none` | `0` | `1` |
| `constant` | `probability` | `1 - probability` (constant) |
| `linear` | `probability * s / (end_step - start_step)` | linear decay from 1 to `1 - probability` |
| `exponential` | `probability * (1 - k ** s)`, `0 < k < 1` | `k ** s` |
| `inverse_sigmoid` | `probability * (1 - k / (k + exp(s / k)))`, `k >= 1` | `k / (k + exp(s / k))` |

`linear` needs `end_step > start_step` (it reaches `probability` there and
stays); `exponential` and `inverse_sigmoid` approach `probability`
asymptotically and use `end_step` (when > 0) only to freeze the schedule.
The inverse sigmoid is evaluated as `sigmoid(s / k - log k)`, which is the
same number without overflowing `exp` for large steps; its midpoint
(`p = probability / 2`) is at `s = k * log(k)`.

Every function here is pure and works on Python numbers as well as on
scalar tensors, so the trainer can compute `p` from the global step inside
or outside a compiled step without retracing.

The schedule is a decoder parameter (`decoder.params.scheduled_sampling.*`)
and the sampling pass is `Decoder.call`, so this module sits with the
decoders; `seq2seq.training.scheduled_sampling` re-exports it.
"""

import math

import tensorflow as tf

from seq2seq.decoders.samplers import SAMPLERS
from seq2seq.errors import ConfigError

SCHEDULE_TYPES = ("none", "constant", "linear", "exponential", "inverse_sigmoid")

# The decoder parameters (flat dotted keys) and their defaults.
PARAM_PREFIX = "scheduled_sampling."


def default_params():
    """The `scheduled_sampling.*` decoder parameters and their defaults.

    `type: none` keeps pure teacher forcing. `probability` is the largest
    probability the schedule reaches (0.25, a conservative cap: feeding the
    model's own tokens most of the time makes the training signal noisy).
    `k` has no default because its meaning depends on the schedule (a decay
    base below 1 for `exponential`, a horizon of at least 1 for
    `inverse_sigmoid`). `end_step: 0` means no end. `sampling` names the sampler that picks
    the fed token (`seq2seq.decoders.samplers.SAMPLERS`): `sample` draws it
    from the model's distribution, `argmax` feeds the most likely token.
    """
    return {
        "scheduled_sampling.type": "none",
        "scheduled_sampling.probability": 0.25,
        "scheduled_sampling.k": 0.0,
        "scheduled_sampling.start_step": 0,
        "scheduled_sampling.end_step": 0,
        "scheduled_sampling.sampling": "sample",
    }


def schedule_config(params, owner="decoder.params"):
    """Extracts and validates the schedule from a decoder's params.

    Args:
      params: A dict holding the `scheduled_sampling.*` keys (missing keys
        take their defaults).
      owner: Where the params come from, for error messages.

    Returns:
      A dict with keys `type`, `probability`, `k`, `start_step`,
      `end_step`, `sampling` (prefix removed).

    Raises:
      ConfigError: An unknown type or sampling mode, a probability outside
        [0, 1], a `k` that does not fit the schedule, or a `linear` schedule
        without `end_step > start_step`.
    """
    config = {
        key[len(PARAM_PREFIX) :]: value for key, value in default_params().items()
    }
    for key in config:
        if PARAM_PREFIX + key in params:
            config[key] = params[PARAM_PREFIX + key]
    where = f"{owner}: scheduled_sampling"
    kind = str(config["type"]).lower()
    config["type"] = kind
    if kind not in SCHEDULE_TYPES:
        raise ConfigError(
            f"{where}.type '{config['type']}' is unknown; use one of "
            f"{', '.join(SCHEDULE_TYPES)}."
        )
    if config["sampling"] not in SAMPLERS:
        raise ConfigError(
            f"{where}.sampling '{config['sampling']}' is unknown; use one of "
            f"{', '.join(sorted(SAMPLERS))} (the samplers of "
            "seq2seq.decoders.samplers)."
        )
    probability = float(config["probability"])
    if not 0.0 <= probability <= 1.0:
        raise ConfigError(
            f"{where}.probability must be in [0, 1], got {probability}; it is "
            "the largest probability of feeding the model's own prediction."
        )
    start, end = int(config["start_step"]), int(config["end_step"])
    if start < 0 or end < 0:
        raise ConfigError(f"{where}.start_step and .end_step must be >= 0.")
    if end and end <= start and kind != "none":
        raise ConfigError(
            f"{where}.end_step ({end}) must be greater than .start_step ({start}), "
            "or 0 for no end."
        )
    k = float(config["k"])
    if kind == "linear" and not end:
        raise ConfigError(
            f"{where}.type linear needs .end_step, the step at which the "
            "probability reaches scheduled_sampling.probability."
        )
    if kind == "exponential" and not 0.0 < k < 1.0:
        raise ConfigError(
            f"{where}.type exponential needs 0 < .k < 1 (got {k}): the "
            "teacher-forcing probability decays as k ** step, e.g. k: 0.999 "
            "reaches half of .probability after about 700 steps."
        )
    if kind == "inverse_sigmoid" and not k >= 1.0:
        raise ConfigError(
            f"{where}.type inverse_sigmoid needs .k >= 1 (got {k}): the "
            "probability is half of .probability at step k * ln(k), e.g. "
            "k: 100 at step 460, k: 1000 at step 6900."
        )
    config.update(probability=probability, k=k, start_step=start, end_step=end)
    return config


def _steps_into_schedule(step, start_step, end_step):
    """`s`: steps since `start_step`, frozen at `end_step` (0 = no end)."""
    s = tf.maximum(tf.cast(step, tf.float32) - float(start_step), 0.0)
    if end_step:
        s = tf.minimum(s, float(end_step - start_step))
    return s


def _started(step, start_step):
    return tf.cast(tf.cast(step, tf.float32) >= float(start_step), tf.float32)


def constant(step, probability, start_step=0, end_step=0):
    """`p = probability` from `start_step` on, 0 before."""
    del end_step
    return probability * _started(step, start_step)


def linear(step, probability, start_step, end_step):
    """`p` rises linearly from 0 at `start_step` to `probability` at
    `end_step` and stays there."""
    if end_step <= start_step:
        raise ValueError("linear schedule needs end_step > start_step")
    s = _steps_into_schedule(step, start_step, end_step)
    return probability * s / float(end_step - start_step)


def exponential(step, probability, k, start_step=0, end_step=0):
    """`p = probability * (1 - k ** s)` with `0 < k < 1`."""
    s = _steps_into_schedule(step, start_step, end_step)
    return probability * (1.0 - tf.pow(float(k), s)) * _started(step, start_step)


def inverse_sigmoid(step, probability, k, start_step=0, end_step=0):
    """`p = probability * (1 - k / (k + exp(s / k)))` with `k >= 1`."""
    s = _steps_into_schedule(step, start_step, end_step)
    value = tf.sigmoid(s / float(k) - math.log(k))
    return probability * value * _started(step, start_step)


def sampling_probability(config, step):
    """`p(step)` of a validated schedule.

    Args:
      config: The dict from `schedule_config` (or None for no schedule).
      step: The global step: a Python int or a scalar integer tensor.

    Returns:
      A float32 scalar tensor in [0, probability].
    """
    if config is None or config["type"] == "none":
        return tf.zeros([], tf.float32)
    kind = config["type"]
    args = dict(
        probability=config["probability"],
        start_step=config["start_step"],
        end_step=config["end_step"],
    )
    if kind == "constant":
        value = constant(step, **args)
    elif kind == "linear":
        value = linear(step, **args)
    elif kind == "exponential":
        value = exponential(step, k=config["k"], **args)
    else:
        value = inverse_sigmoid(step, k=config["k"], **args)
    return tf.cast(value, tf.float32)


def step_seeds(seed, time):
    """Two independent stateless seeds for decoding step `time`.

    Args:
      seed: A [2] int tensor (e.g. `(tf_random_seed, global_step)`).
      time: The decoding step, a scalar int tensor.

    Returns:
      `(coin_seed, sample_seed)`, each a [2] int32 tensor: one for the
      feed-the-prediction coin flips, one for drawing the fed token.
    """
    base = tf.random.experimental.stateless_fold_in(
        tf.cast(seed, tf.int32), tf.cast(time, tf.int32)
    )
    return (
        tf.random.experimental.stateless_fold_in(base, 0),
        tf.random.experimental.stateless_fold_in(base, 1),
    )
