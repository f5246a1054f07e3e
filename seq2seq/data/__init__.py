"""seq2seq.data."""
