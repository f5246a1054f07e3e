"""Decoders: one recurrent step plus output layers, driven by the decoding
strategies in `seq2seq.inference.decoding`."""

from seq2seq.decoders import attention
from seq2seq.decoders.attention import (
    AttentionLayer,
    AttentionLayerBahdanau,
    AttentionLayerDot,
)
from seq2seq.decoders.attention_decoder import AttentionDecoder
from seq2seq.decoders.basic_decoder import BasicDecoder
from seq2seq.decoders.beam_search_decoder import BeamSearchDecoder
from seq2seq.decoders.rnn_decoder import RNNDecoder
from seq2seq.decoders.self_attention_decoder import SelfAttentionDecoder

__all__ = [
    "attention",
    "AttentionLayer",
    "AttentionLayerBahdanau",
    "AttentionLayerDot",
    "AttentionDecoder",
    "BasicDecoder",
    "BeamSearchDecoder",
    "RNNDecoder",
    "SelfAttentionDecoder",
]
