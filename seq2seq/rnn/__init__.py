"""Recurrent cells and how they run.

* `seq2seq.rnn.cells`: the cell classes and wrappers (`LayerNormLSTMCell`,
  `DropoutWrapper`, `ExtendedMultiRNNCell`, `GateBiasInitializer`).
* `seq2seq.rnn.tf1_cells`: Keras ports of TF1's `contrib.rnn` cells
  (`TF1LSTMCell` with peepholes / projection, `CoupledInputForgetGateLSTMCell`,
  `NASCell`, `UGRNNCell`).
* `seq2seq.rnn.factory`: the `rnn_cell` configuration block (TF1 cell names
  and parameters) -> Keras cells: `get_rnn_cell`, `cell_from_spec`.
* `seq2seq.rnn.activations`: activation names -> callables.
* `seq2seq.rnn.recurrence`: `FusedRecurrence` and `run_together`, the loops
  that run a GRU / LSTM stack over whole sequences; `run_cell` for any
  other cell.
* `seq2seq.rnn.cudnn`: cuDNN's kernels for those runs on a GPU (the only
  module that uses Keras internals).
"""

from seq2seq.rnn.activations import resolve_activation
from seq2seq.rnn.cells import (
    DropoutWrapper,
    ExtendedMultiRNNCell,
    GateBiasInitializer,
    LayerNormLSTMCell,
)
from seq2seq.rnn.factory import (
    cell_from_spec,
    default_rnn_cell_params,
    get_rnn_cell,
    known_cell_classes,
)
from seq2seq.rnn.recurrence import (
    FusedRecurrence,
    cudnn_allowed,
    run_cell,
    run_together,
    time_steps,
)
from seq2seq.rnn.tf1_cells import (
    CoupledInputForgetGateLSTMCell,
    NASCell,
    TF1LSTMCell,
    UGRNNCell,
)

__all__ = [
    "CoupledInputForgetGateLSTMCell",
    "DropoutWrapper",
    "ExtendedMultiRNNCell",
    "FusedRecurrence",
    "GateBiasInitializer",
    "LayerNormLSTMCell",
    "NASCell",
    "TF1LSTMCell",
    "UGRNNCell",
    "cell_from_spec",
    "cudnn_allowed",
    "default_rnn_cell_params",
    "get_rnn_cell",
    "known_cell_classes",
    "resolve_activation",
    "run_cell",
    "run_together",
    "time_steps",
]
