"""A warning when a vocabulary misses most of the training tokens.

A vocabulary built from another corpus, or with another tokenization, maps
most tokens to UNK, and training then runs without complaint on a task it
cannot learn. `UnknownTokenRate` counts the UNK share of the source and
target tokens of the first few training batches (on the host, from the
batches the training loop already holds; nothing is counted afterwards, so
steady-state training is not slowed) and logs one warning per side whose
share is above `WARN_ABOVE`.

Special tokens (`SEQUENCE_START`, `SEQUENCE_END`) and padding are not counted.
"""

import numpy as np
from absl import logging

# Batches counted before the rates are reported.
BATCHES_COUNTED = 4

# An UNK share above this is reported.
WARN_ABOVE = 0.1


class UnknownTokenRate:
    """Counts UNK ids in the first batches and warns when there are many.

    Args:
      model: A `Seq2SeqModel`; each side with a `{side}_vocab_info` is
        counted (an image model has only the target side).
      batches: How many batches to count.
      warn_above: The UNK share (0 to 1) above which a side is reported.
    """

    def __init__(self, model, batches=BATCHES_COUNTED, warn_above=WARN_ABOVE):
        self.batches = batches
        self.warn_above = warn_above
        self._seen = 0
        self._sides = []
        for side in ("source", "target"):
            info = getattr(model, f"{side}_vocab_info", None)
            if info is not None:
                self._sides.append((side, info))
        self._counts = {side: [0, 0] for side, _ in self._sides}

    @property
    def done(self):
        """Whether the counted batches are all seen (and reported)."""
        return self._seen >= self.batches

    def observe(self, features):
        """Counts one preprocessed batch; calls `report` after the last one.

        Args:
          features: A batch with `{side}_ids` [B, L] and `{side}_len` [B]
            (sides missing from it are skipped).

        Returns:
          The rates of `report` once `done`, else `None`.
        """
        if self.done:
            return None
        for side, info in self._sides:
            if f"{side}_ids" not in features:
                continue
            ids = np.asarray(features[f"{side}_ids"])
            lengths = np.asarray(features[f"{side}_len"])
            inside = np.arange(ids.shape[1])[None, :] < lengths[:, None]
            special = info.special_vocab
            words = inside & (ids != special.SEQUENCE_START)
            words &= ids != special.SEQUENCE_END
            self._counts[side][0] += int(np.sum(words & (ids == special.UNK)))
            self._counts[side][1] += int(np.sum(words))
        self._seen += 1
        return self.report() if self.done else None

    def report(self):
        """Logs a warning for each side with a high UNK share (also when
        fewer batches than `batches` were seen, e.g. in a short run).

        Returns:
          `{side: UNK share}` for the sides with counted tokens.
        """
        rates = {}
        for side, info in self._sides:
            unknown, total = self._counts[side]
            if not total:
                continue
            rates[side] = unknown / total
            if rates[side] > self.warn_above:
                logging.warning(
                    "%.0f%% of the %s tokens in the first %d training batches "
                    "(%d of %d) are not in the vocabulary %s and train as UNK. "
                    "Was it built from this corpus, with the same delimiter? "
                    "Build one with bin/tools/generate_vocab.py.",
                    100 * rates[side],
                    side,
                    self._seen,
                    unknown,
                    total,
                    info.path,
                )
        return rates
