"""seq2seq.decoders."""
