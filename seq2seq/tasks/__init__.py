"""Inference tasks: what `bin/infer.py` does with the model's predictions.

Tasks are listed under `--tasks` by short name (`DecodeText`) or dotted path
(`seq2seq.tasks.DecodeText`).
"""

from seq2seq.tasks.decode_text import DecodeText
from seq2seq.tasks.dump_attention import DumpAttention
from seq2seq.tasks.dump_beams import DumpBeams
from seq2seq.tasks.inference_task import InferenceTask, unbatch
from seq2seq.tasks.score_text import ScoreText

__all__ = [
    "DecodeText",
    "DumpAttention",
    "DumpBeams",
    "InferenceTask",
    "ScoreText",
    "unbatch",
]
