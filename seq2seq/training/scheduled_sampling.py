"""Scheduled sampling, as the trainer sees it.

The schedule belongs to the decoders (`decoder.params.scheduled_sampling.*`,
`seq2seq.decoders.scheduled_sampling`); this module re-exports it for the
training code and for scripts that import it from here.
"""

from seq2seq.decoders.scheduled_sampling import (
    PARAM_PREFIX,
    SCHEDULE_TYPES,
    constant,
    default_params,
    exponential,
    inverse_sigmoid,
    linear,
    sampling_probability,
    schedule_config,
    step_seeds,
)

__all__ = [
    "PARAM_PREFIX",
    "SCHEDULE_TYPES",
    "constant",
    "default_params",
    "exponential",
    "inverse_sigmoid",
    "linear",
    "sampling_probability",
    "schedule_config",
    "step_seeds",
]
