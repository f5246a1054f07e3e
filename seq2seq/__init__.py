"""seq2seq: a general-purpose encoder-decoder framework for TensorFlow 2."""

__version__ = "0.2.0"
