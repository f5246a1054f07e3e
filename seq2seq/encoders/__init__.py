"""Encoders: short names here are what `encoder.class` in a config resolves to."""

from seq2seq.encoders import encoder, rnn_encoder
from seq2seq.encoders.conv_encoder import ConvEncoder
from seq2seq.encoders.encoder import Encoder, EncoderOutput
from seq2seq.encoders.image_encoder import InceptionV3Encoder
from seq2seq.encoders.pooling_encoder import PoolingEncoder
from seq2seq.encoders.rnn_encoder import (
    BidirectionalRNNEncoder,
    StackBidirectionalRNNEncoder,
    UnidirectionalRNNEncoder,
)
from seq2seq.encoders.self_attention_encoder import SelfAttentionEncoder

__all__ = [
    "BidirectionalRNNEncoder",
    "ConvEncoder",
    "Encoder",
    "EncoderOutput",
    "InceptionV3Encoder",
    "PoolingEncoder",
    "SelfAttentionEncoder",
    "StackBidirectionalRNNEncoder",
    "UnidirectionalRNNEncoder",
    "encoder",
    "rnn_encoder",
]
