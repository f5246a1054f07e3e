"""Decoders: subclasses of `Decoder` (one step, plus the teacher-forced and
scheduled-sampling passes over it), driven by `seq2seq.inference`'s
`dynamic_decode` with a strategy and a sampler."""

from seq2seq.decoders import attention, samplers
from seq2seq.decoders.attention import (
    AttentionLayer,
    AttentionLayerBahdanau,
    AttentionLayerDot,
)
from seq2seq.decoders.attention_decoder import AttentionDecoder
from seq2seq.decoders.basic_decoder import BasicDecoder
from seq2seq.decoders.beam_search_decoder import BeamSearchDecoder
from seq2seq.decoders.copy_attention_decoder import CopyAttentionDecoder
from seq2seq.decoders.decoder import Decoder
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
    "CopyAttentionDecoder",
    "Decoder",
    "RNNDecoder",
    "samplers",
    "SelfAttentionDecoder",
]
