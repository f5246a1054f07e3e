"""seq2seq.inference."""
