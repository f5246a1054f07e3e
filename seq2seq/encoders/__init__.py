"""seq2seq.encoders."""
