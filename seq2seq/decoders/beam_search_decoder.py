"""BeamSearchDecoder: a decoder paired with beam search settings.

Kept for the original's class name. The search itself is
`seq2seq.inference`'s `dynamic_decode` with the `BeamSearch` strategy and
only needs the wrapped decoder's `step`; this object bundles the decoder
with a `BeamSearchConfig` and forwards everything else (`cell`, `params`,
`vocab_size`, `step`, ...) to the decoder.
"""


class BeamSearchDecoder:
    """Runs beam search with a wrapped decoder.

    Unlike the original, which decoded one sentence at a time, `decode`
    searches a whole batch: the wrapped decoder sees `B * beam_width`
    hypotheses per step.

    Args:
      decoder: A decoder with the step interface (e.g. `AttentionDecoder`).
      config: A `BeamSearchConfig`.

    Attributes:
      decoder: The wrapped decoder.
      config: The `BeamSearchConfig`.
    """

    def __init__(self, decoder, config):
        self.decoder = decoder
        self.config = config

    def __getattr__(self, name):
        # Only reached for names not found on this object.
        if name in ("decoder", "config") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.decoder, name)

    @property
    def beam_width(self):
        """K, the number of hypotheses kept per sentence."""
        return self.config.beam_width

    def decode(
        self,
        embedding_fn,
        start_ids,
        end_id,
        state,
        memory,
        max_length=None,
        jit_compile=None,
    ):
        """Beam search over a batch.

        Args:
          embedding_fn: Maps [N] int32 ids to [N, E] embeddings.
          start_ids: [B] int ids fed at the first step.
          end_id: Int id that ends a hypothesis (`config.eos_token` if None).
          state: The wrapped decoder's initial state for the B sentences
            (not tiled).
          memory: The wrapped decoder's memory for the B sentences.
          max_length: Most steps (the decoder's `max_decode_length` if None).
          jit_compile: Compile the search loop with XLA (see
            `beam_search_decode`).

        Returns:
          A `BeamSearchResult` (see `seq2seq.inference.beam_search`).
        """
        # Imported here: the decoders sit below the decoding loops, which
        # import them; only this convenience wrapper calls upward.
        from seq2seq.inference.beam_search import beam_search_decode

        return beam_search_decode(
            self.decoder,
            embedding_fn,
            start_ids,
            end_id,
            state,
            memory,
            self.config,
            max_length,
            jit_compile=jit_compile,
        )
