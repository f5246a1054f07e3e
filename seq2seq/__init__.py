"""seq2seq: a general-purpose encoder-decoder framework for TensorFlow 2."""

from seq2seq.deferred_imports import defer_pyplot

__version__ = "0.2.0"

# Before TensorFlow is imported: its Keras would load pyplot at once.
defer_pyplot()
