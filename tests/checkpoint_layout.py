"""What a model's checkpoints hold, for the tests that pin it.

Checkpoints (`tf.train.Checkpoint(model=..., optimizer=...)`) find a model
variable by its attribute path (`model/encoder/...`) and an optimizer slot by
the index of its variable in the model's variable order. A refactor that
renames an attribute or creates layers in another order breaks every saved
checkpoint, so the tests compare both against literal lists.
"""

import os
import re

import tensorflow as tf

# The attention decoder's part of a model (an RNN cell with one GRU layer,
# Bahdanau attention), shared by the text and image models.
GRU_CELL = "extended_multi_rnn_cell/layer/gru_cell"
ATTENTION_DECODER_WEIGHTS = [
    f"{GRU_CELL}/kernel",
    f"{GRU_CELL}/recurrent_kernel",
    f"{GRU_CELL}/bias",
    "attention/v_att",
    "att_keys/kernel",
    "att_keys/bias",
    "attention/att_query/kernel",
    "attention/att_query/bias",
    "attention_mix/kernel",
    "attention_mix/bias",
    "logits/kernel",
    "logits/bias",
]
ATTENTION_DECODER_KEYS = [
    "_decoder/attention/key_layer/_kernel",
    "_decoder/attention/key_layer/bias",
    "_decoder/attention/query_layer/_kernel",
    "_decoder/attention/query_layer/bias",
    "_decoder/attention/v_att",
    "_decoder/cell/cell_0/cell/bias",
    "_decoder/cell/cell_0/cell/kernel",
    "_decoder/cell/cell_0/cell/recurrent_kernel",
    "_decoder/logits_layer/_kernel",
    "_decoder/logits_layer/bias",
    "_decoder/mix_layer/_kernel",
    "_decoder/mix_layer/bias",
]

_PREFIX = "model/"
_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def weight_paths(model):
    """The paths of `model.weights`, in order.

    Keras makes layer names unique with a counter over the whole process
    (`gru_cell_3`); the `_<n>` suffixes are dropped so that the result does
    not depend on what was built before.
    """
    return [re.sub(r"_\d+(?=/|$)", "", v.path) for v in model.weights]


def checkpoint_keys(model, directory):
    """The sorted variable keys of `tf.train.Checkpoint(model=model)`.

    Args:
      model: A built model.
      directory: Where the checkpoint is written.

    Returns:
      The keys without the `model/` prefix and the `/.ATTRIBUTES/...` suffix
      (e.g. `encoder/cell/cell_0/cell/kernel`).
    """
    path = tf.train.Checkpoint(model=model).write(os.path.join(directory, "model"))
    keys = []
    for key, _ in tf.train.list_variables(path):
        if key == "_CHECKPOINTABLE_OBJECT_GRAPH":
            continue
        assert key.startswith(_PREFIX) and key.endswith(_SUFFIX), key
        keys.append(key[len(_PREFIX) : -len(_SUFFIX)])
    return sorted(keys)
