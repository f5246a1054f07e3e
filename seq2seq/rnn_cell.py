"""The original's import path for the recurrent cells (`seq2seq.rnn_cell`).

Everything lives in the `seq2seq.rnn` package now (cells, the TF1-name cell
factory, the fused recurrence, cuDNN); this module re-exports its public
names so that `from seq2seq.rnn_cell import get_rnn_cell` and dotted cell
classes such as `seq2seq.rnn_cell.LayerNormLSTMCell` keep working.
"""

from seq2seq.rnn import (
    CoupledInputForgetGateLSTMCell,
    DropoutWrapper,
    ExtendedMultiRNNCell,
    FusedRecurrence,
    GateBiasInitializer,
    LayerNormLSTMCell,
    NASCell,
    TF1LSTMCell,
    UGRNNCell,
    cell_from_spec,
    cudnn_allowed,
    default_rnn_cell_params,
    get_rnn_cell,
    known_cell_classes,
    resolve_activation,
    run_cell,
    run_together,
    time_steps,
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
