"""Encoders: short names here are what `encoder.class` in a config resolves to."""

from seq2seq.encoders import encoder, rnn_encoder
from seq2seq.encoders.encoder import Encoder, EncoderOutput
from seq2seq.encoders.rnn_encoder import (
    BidirectionalRNNEncoder,
    StackBidirectionalRNNEncoder,
    UnidirectionalRNNEncoder,
)

__all__ = [
    "BidirectionalRNNEncoder",
    "Encoder",
    "EncoderOutput",
    "StackBidirectionalRNNEncoder",
    "UnidirectionalRNNEncoder",
    "encoder",
    "rnn_encoder",
]
