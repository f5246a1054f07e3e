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
# The dtype each array is written with.
FILE_DTYPES = {
    "predicted_ids": np.int32,
    "beam_parent_ids": np.int32,
    "scores": np.float32,
    "log_probs": np.float32,
}
# The array of the number of steps each example's search ran.
LENGTHS_KEY = "lengths"
# What fills the steps past an example's length.
INT_PADDING = -1
FLOAT_PADDING = np.nan


def pad_traces(items, dtype):
    """Stacks per-example `[T_i, K]` arrays into one dense `[N, T, K]` array.

    Args:
      items: N arrays `[T_i, K_i]` (the beam width K_i is normally the same
        for all).
      dtype: The dtype of the result.

    Returns:
      `[N, max T_i, max K_i]` of `dtype`; entries past an example's own
      shape are `INT_PADDING` (integer dtypes) or `FLOAT_PADDING` (floats).
    """
    steps = max((item.shape[0] for item in items), default=0)
    beams = max((item.shape[1] for item in items), default=0)
    fill = INT_PADDING if np.issubdtype(dtype, np.integer) else FLOAT_PADDING
    result = np.full((len(items), steps, beams), fill, dtype=dtype)
    for index, item in enumerate(items):
        result[index, : item.shape[0], : item.shape[1]] = item
    return result


class DumpBeams(InferenceTask):
    """Writes the beam search trace of each example to a `.npz` file.

    The file holds plain numeric arrays only (no pickled objects), so it is
    read with numpy's default `allow_pickle=False`. With N examples in
    input order, T the most steps any search ran and K the beam width:

        with np.load(path) as data:
            steps = data["lengths"][i]          # T_i, the steps example i ran
            data["predicted_ids"][i, :steps]    # [T_i, K] int32 token ids
            data["beam_parent_ids"][i, :steps]  # [T_i, K] int32 beam of step t-1
            data["scores"][i, :steps]           # [T_i, K] float32 scores
            data["log_probs"][i, :steps]        # [T_i, K] float32 log-probs

    Each of `predicted_ids`, `beam_parent_ids`, `scores` and `log_probs` is
    `[N, T, K]`; `lengths` is `[N]` int32. Steps past `lengths[i]` are padding:
    -1 in the integer arrays and NaN in the float ones.
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
        arrays = {
            key: pad_traces(items, FILE_DTYPES[key])
            for key, items in self._traces.items()
        }
        arrays[LENGTHS_KEY] = np.array(
            [item.shape[0] for item in self._traces[FILE_KEYS[0]]], np.int32
        )
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
