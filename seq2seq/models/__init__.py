"""seq2seq.models."""
