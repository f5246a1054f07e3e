"""OpenNMT-tf 2.32 model definition closest to `example_configs/nmt_small.yml`.

This file runs in the separate OpenNMT-tf virtual environment (TensorFlow
2.13, tf.keras 2), never in this project's environment. It is an ordinary
OpenNMT-tf custom model file, so besides `opennmt_runner.py` it also works
with OpenNMT-tf's own command line:

    onmt-main --model benchmarks/opennmt_model.py --config data.yml train

What is matched with our `nmt_small` (see `compare_opennmt.py`, which prints
the list of differences next to its table):

- source and target word embeddings of 128 (`WordEmbedder`), not shared;
- a bidirectional GRU encoder of 128 units *per direction*, outputs of the
  two directions concatenated (256). OpenNMT-tf's `RNNEncoder` gives
  `num_units` to each direction (its `ConcatReducer` then concatenates), as
  our `BidirectionalRNNEncoder` does, so 128 here;
- one GRU decoder layer of 128 units with attention over the encoder
  outputs and input feeding, starting from zeros (`ZeroBridge`, as ours);
- GRU cells as TF1's `GRUCell` (`reset_after=False`, the reset gate applied
  before the recurrent matmul), kernels initialised uniform in
  [-0.04, 0.04] as our `init_scale`;
- dropout 0.2 on the *inputs* of every cell (keep probability 0.8), drawn
  anew at every step: OpenNMT-tf's own `dropout` argument drops cell
  *outputs*, so it is set to 0 and the cells are wrapped in
  `opennmt.layers.RNNCellWrapper(input_dropout=0.2)` instead.

The attention is `tfa.seq2seq.LuongAttention` (multiplicative, the nearest
to our `AttentionLayerDot`); `attention="bahdanau"` selects the additive
`BahdanauAttention` instead.

`NMTSmallDefaults` is the same architecture (embeddings of 128, a
bidirectional GRU encoder of 128 per direction, one attentional GRU decoder
layer of 128 with Luong attention and input feeding, zero bridge) with
OpenNMT-tf's own choices everywhere else, as a user of OpenNMT-tf would get
them: Keras's `GRUCell` as it comes (`reset_after=True`, Glorot-uniform
kernels, orthogonal recurrent kernels, zero biases), dropout 0.2 on the
embeddings (`WordEmbedder(dropout=...)`) and OpenNMT-tf's own layer
dropout 0.2 on the outputs of the encoder and decoder layers instead of
input dropout in the cells. `real_corpus_compare.py` trains it with length
buckets of width 2 (`length_bucket_width=2`, OpenNMT-tf's usual setting).
"""

import opennmt
import tensorflow as tf
import tensorflow_addons as tfa

EMBEDDING_DIM = 128
NUM_UNITS = 128
INPUT_DROPOUT = 0.2
INIT_SCALE = 0.04

_ATTENTION = {
    "luong": tfa.seq2seq.LuongAttention,
    "bahdanau": tfa.seq2seq.BahdanauAttention,
}


def gru_cell(num_units, input_dropout=INPUT_DROPOUT, init_scale=INIT_SCALE):
    """A TF1-style GRU cell with dropout on its inputs.

    Args:
      num_units: The cell size.
      input_dropout: The probability to drop each input unit (training only).
      init_scale: Kernels start uniform in `[-init_scale, init_scale]`.

    Returns:
      An `opennmt.layers.RNNCellWrapper` around a `tf.keras.layers.GRUCell`.
    """
    initializer = tf.keras.initializers.RandomUniform(-init_scale, init_scale)
    cell = tf.keras.layers.GRUCell(
        num_units,
        reset_after=False,
        kernel_initializer=initializer,
        recurrent_initializer=initializer,
    )
    return opennmt.layers.RNNCellWrapper(cell, input_dropout=input_dropout)


class NMTSmall(opennmt.models.SequenceToSequence):
    """The `nmt_small` architecture in OpenNMT-tf's building blocks.

    Args:
      attention: `luong` (multiplicative, default) or `bahdanau` (additive).
      input_dropout: Dropout probability on every cell's inputs.
    """

    def __init__(self, attention="luong", input_dropout=INPUT_DROPOUT):
        if attention not in _ATTENTION:
            raise ValueError(
                f"attention must be one of {sorted(_ATTENTION)}, got {attention!r}"
            )

        def make_cell(num_units):
            return gru_cell(num_units, input_dropout=input_dropout)

        super().__init__(
            source_inputter=opennmt.inputters.WordEmbedder(
                embedding_size=EMBEDDING_DIM
            ),
            target_inputter=opennmt.inputters.WordEmbedder(
                embedding_size=EMBEDDING_DIM
            ),
            encoder=opennmt.encoders.RNNEncoder(
                num_layers=1,
                num_units=NUM_UNITS,
                bidirectional=True,
                dropout=0.0,
                reducer=opennmt.layers.ConcatReducer(),
                cell_class=make_cell,
            ),
            decoder=opennmt.decoders.AttentionalRNNDecoder(
                num_layers=1,
                num_units=NUM_UNITS,
                bridge_class=opennmt.layers.ZeroBridge,
                attention_mechanism_class=_ATTENTION[attention],
                cell_class=make_cell,
                dropout=0.0,
            ),
        )


class NMTSmallDefaults(opennmt.models.SequenceToSequence):
    """The `nmt_small` architecture with OpenNMT-tf's own defaults.

    Args:
      dropout: Dropout probability on the embeddings and on the outputs of
        the encoder and decoder layers.
    """

    def __init__(self, dropout=INPUT_DROPOUT):
        super().__init__(
            source_inputter=opennmt.inputters.WordEmbedder(
                embedding_size=EMBEDDING_DIM, dropout=dropout
            ),
            target_inputter=opennmt.inputters.WordEmbedder(
                embedding_size=EMBEDDING_DIM, dropout=dropout
            ),
            encoder=opennmt.encoders.RNNEncoder(
                num_layers=1,
                num_units=NUM_UNITS,
                bidirectional=True,
                dropout=dropout,
                reducer=opennmt.layers.ConcatReducer(),
                cell_class=tf.keras.layers.GRUCell,
            ),
            decoder=opennmt.decoders.AttentionalRNNDecoder(
                num_layers=1,
                num_units=NUM_UNITS,
                bridge_class=opennmt.layers.ZeroBridge,
                attention_mechanism_class=tfa.seq2seq.LuongAttention,
                cell_class=tf.keras.layers.GRUCell,
                dropout=dropout,
            ),
        )


def model():
    """Entry point read by `onmt-main --model`."""
    return NMTSmall()
