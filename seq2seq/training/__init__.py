"""seq2seq.training."""
