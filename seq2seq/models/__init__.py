"""Models: short names here are what `model:` in a config resolves to."""

from seq2seq.models import bridges
from seq2seq.models.attention_seq2seq import AttentionSeq2Seq
from seq2seq.models.basic_seq2seq import BasicSeq2Seq
from seq2seq.models.image2seq import Image2Seq
from seq2seq.models.model_base import ModelBase
from seq2seq.models.seq2seq_model import Seq2SeqModel
from seq2seq.models.transformer import Transformer

__all__ = [
    "AttentionSeq2Seq",
    "BasicSeq2Seq",
    "Image2Seq",
    "ModelBase",
    "Seq2SeqModel",
    "Transformer",
    "bridges",
]
