"""Samplers for free-running decoding, and how a model's params choose one.

The samplers themselves (`ArgmaxSampler`, `RandomSampler`, the `SAMPLERS`
registry) live in `seq2seq.decoders.samplers`, below both users: the
decoding strategies here and scheduled sampling in the decoders' training
pass. This module re-exports them and reads the `inference.sampler` and
`inference.sampling.*` params:

| param | default | meaning |
| --- | --- | --- |
| `inference.sampler` | `argmax` | `argmax`, or `sample` / `random` (keys of `SAMPLERS`) |
| `inference.sampling.temperature` | `1.0` | softmax temperature of `sample` |
| `inference.sampling.top_k` | `0` | draw among the k most likely tokens (0: all) |
| `inference.sampling.top_p` | `1.0` | draw within the nucleus of this mass (1: all) |
| `inference.sampling.seed` | `null` | an int makes the draws reproducible |
"""

from seq2seq.decoders.samplers import (
    SAMPLERS,
    ArgmaxSampler,
    RandomSampler,
    Sampler,
    argmax_log_prob,
    get_sampler,
)
from seq2seq.errors import ConfigError

__all__ = [
    "SAMPLERS",
    "ArgmaxSampler",
    "RandomSampler",
    "Sampler",
    "argmax_log_prob",
    "default_params",
    "get_sampler",
    "sampler_from_params",
]


def default_params():
    """The model params that choose the sampler, with today's behaviour
    (argmax) as the default."""
    return {
        "inference.sampler": "argmax",
        "inference.sampling.temperature": 1.0,
        "inference.sampling.top_k": 0,
        "inference.sampling.top_p": 1.0,
        "inference.sampling.seed": None,
    }


def sampler_from_params(params):
    """The sampler named by `inference.sampler`, set up from
    `inference.sampling.*`.

    Raises:
      ConfigError: An unknown sampler or a setting out of range, naming the
        key.
    """
    try:
        return get_sampler(
            params["inference.sampler"],
            where="inference.sampler",
            temperature=params["inference.sampling.temperature"],
            top_k=params["inference.sampling.top_k"],
            top_p=params["inference.sampling.top_p"],
            seed=params["inference.sampling.seed"],
        )
    except ConfigError as error:
        message = str(error)
        if message.startswith("sampling."):
            message = f"inference.{message}"
        raise ConfigError(f"model_params: {message}") from None
