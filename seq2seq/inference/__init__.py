"""seq2seq.inference: free-running decoding (`dynamic_decode` with a
strategy and a sampler), batch inference and export."""
