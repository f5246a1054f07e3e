"""seq2seq.metrics."""
