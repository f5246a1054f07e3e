"""The decoding strategies by name, and how a model's params choose one.

`inference.strategy` names a strategy of `STRATEGIES`; left empty (the
default) it is `beam_search` when `inference.beam_search.beam_width` > 1
and `greedy` otherwise, as in the original. A new strategy is a
`DecodingStrategy` subclass (`seq2seq.inference.dynamic_decode`) in its own
module, added here under its name; it reads its own settings from the
params in `from_params`.
"""

from seq2seq.errors import ConfigError
from seq2seq.inference.beam_search import BeamSearch
from seq2seq.inference.decoding import GreedySearch

STRATEGIES = {"greedy": GreedySearch, "beam_search": BeamSearch}


def strategy_name(params, beam_width=None):
    """The strategy the params choose.

    Args:
      params: A model's params (flat dotted keys).
      beam_width: A beam width that overrides the params' for one call: it
        then chooses alone (`beam_search` when > 1, else `greedy`).

    Returns:
      A key of `STRATEGIES`.

    Raises:
      ConfigError: An unknown `inference.strategy`, or a negative beam
        width (its type is checked with the other params).
    """
    if beam_width:
        return "beam_search" if beam_width > 1 else "greedy"
    width = params.get("inference.beam_search.beam_width") or 0
    if width < 0:
        raise ConfigError(
            "model_params: inference.beam_search.beam_width must be >= 0 (0 or "
            f"1: greedy search), got {width}."
        )
    name = params.get("inference.strategy") or ""
    if not name:
        return "beam_search" if width > 1 else "greedy"
    if name not in STRATEGIES:
        raise ConfigError(
            f"model_params: unknown inference.strategy {name!r}; use one of "
            f"{', '.join(sorted(STRATEGIES))}, or leave it empty to choose by "
            "inference.beam_search.beam_width."
        )
    return name


def create_strategy(params, vocab_size, end_id, beam_width=None, n_best=1):
    """Builds the strategy the params choose (see `strategy_name`).

    Args:
      params: A model's params.
      vocab_size: Number of output classes.
      end_id: The SEQUENCE_END id.
      beam_width: Optional beam width overriding the params' for one call.
      n_best: Hypotheses per sentence the caller will read.

    Returns:
      A `DecodingStrategy`.
    """
    name = strategy_name(params, beam_width)
    return STRATEGIES[name].from_params(
        params,
        vocab_size=vocab_size,
        end_id=end_id,
        beam_width=beam_width,
        n_best=n_best,
    )
