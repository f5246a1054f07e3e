"""DumpBeams: saves the beam search trace of every example for inspection."""

import numpy as np
from absl import logging

from seq2seq.errors import ConfigError, DataError
from seq2seq.tasks.inference_task import (
    BEAM_KEYS,
    InferenceTask,
    make_parent_dirs,
    unbatch,
)

# Names in the written file, in the order of `BEAM_KEYS`.
FILE_KEYS = tuple(key.split(".", 1)[1] for key in BEAM_KEYS)


def _object_array(items):
    """A 1-D object array holding `items` as they are (no broadcasting)."""
    result = np.empty(len(items), dtype=object)
    for index, item in enumerate(items):
        result[index] = item
    return result


class DumpBeams(InferenceTask):
    """Writes the beam search trace of each example to a `.npz` file.

    The file has the original's keys `predicted_ids`, `beam_parent_ids`,
    `scores` and `log_probs`. Each is a 1-D object array with one entry per
    example, in input order; entry i is example i's `[T, K]` array, cut to
    the `T` steps its search ran (K is the beam width):

        data = np.load(path, allow_pickle=True)
        data["predicted_ids"][i]    # [T, K] int32 token ids
        data["beam_parent_ids"][i]  # [T, K] int32 beam of the previous step
        data["scores"][i]           # [T, K] float32 ranking scores
        data["log_probs"][i]        # [T, K] float32 log-prob of each token

    `bin/tools/generate_beam_viz.py` draws these traces as trees.

    Params:
      file: The file to write (required), used exactly as given (no `.npz`
        is appended); its directory is created if needed.
    """

    def __init__(self, params):
        super().__init__(params)
        if not self.params["file"]:
            raise ConfigError(
                "DumpBeams: file is required; set it to the .npz file to write, "
                "e.g. file: /tmp/beams.npz."
            )
        self._traces = {key: [] for key in FILE_KEYS}

    @staticmethod
    def default_params():
        return {"file": ""}

    def output_paths(self):
        return [("DumpBeams: file", self.params["file"])]

    def begin(self):
        make_parent_dirs(self.params["file"], "DumpBeams: file")

    def process_batch(self, predictions):
        missing = [key for key in BEAM_KEYS if key not in predictions]
        if missing:
            raise ConfigError(
                "DumpBeams: the predictions have no beam search trace ("
                f"{missing[0]} is missing); decode with beam search by setting "
                "inference.beam_search.beam_width > 1 in --model_params."
            )
        for example in unbatch(predictions):
            for key, file_key in zip(BEAM_KEYS, FILE_KEYS):
                self._traces[file_key].append(np.asarray(example[key]))

    def end(self):
        path = self.params["file"]
        arrays = {key: _object_array(items) for key, items in self._traces.items()}
        make_parent_dirs(path, "DumpBeams: file")
        try:
            with open(path, "wb") as handle:
                np.savez(handle, **arrays)
        except OSError as err:
            raise DataError(
                f"DumpBeams: cannot write {path}: {err.strerror}. "
                "Choose a writable file."
            ) from None
        logging.info(
            "DumpBeams: wrote %d beam traces to %s",
            len(self._traces[FILE_KEYS[0]]),
            path,
        )
