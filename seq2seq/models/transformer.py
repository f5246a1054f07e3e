"""Transformer: AttentionSeq2Seq with a self-attention encoder and decoder."""

from absl import logging

from seq2seq.decoders.self_attention_decoder import SelfAttentionDecoder
from seq2seq.models.attention_seq2seq import AttentionSeq2Seq


class Transformer(AttentionSeq2Seq):
    """A Transformer (https://arxiv.org/abs/1706.03762), pre-norm.

    This is `AttentionSeq2Seq` with other defaults: a
    `SelfAttentionEncoder`, a `SelfAttentionDecoder`, a `ZeroBridge`,
    sources in written order (`source.reverse: false`) and embeddings as
    wide as the layers (`embedding.dim: 256`, the default `num_units`).
    Training, evaluation, greedy decoding and beam search go through the
    same code as the RNN models; the decoder's state is its key/value cache.

    The self-attention decoder ignores the bridge and `attention.class`; the
    key/value cache is sized to the decode length limit
    (`inference.max_decode_length`, else the decoder's `max_decode_length`,
    or the `max_length` given to `infer`).

    `embedding.share: true` uses one embedding matrix for both sides (the
    vocabularies must have the same size).

    Args:
      params: Model params (see `default_params`).
      mode: `train`, `eval` or `infer`.
      name: Layer name.
    """

    def __init__(self, params, mode, name="transformer"):
        super().__init__(params, mode, name)
        object.__setattr__(self, "_decode_limit", None)
        bridge = self.params["bridge.class"].rsplit(".", 1)[-1]
        if bridge != "ZeroBridge" and isinstance(self.decoder, SelfAttentionDecoder):
            logging.warning(
                "Transformer: bridge.class %s is ignored by SelfAttentionDecoder "
                "(its state is a key/value cache); use ZeroBridge.",
                self.params["bridge.class"],
            )

    @staticmethod
    def default_params():
        params = AttentionSeq2Seq.default_params()
        params.update(
            {
                "bridge.class": "seq2seq.models.bridges.ZeroBridge",
                "encoder.class": "seq2seq.encoders.SelfAttentionEncoder",
                "encoder.params": {},
                "decoder.class": "seq2seq.decoders.SelfAttentionDecoder",
                "decoder.params": {},
                "embedding.dim": 256,
                "embedding.share": False,
                "source.reverse": False,
            }
        )
        return params

    def decoder_start(self, encoder_output, batch_size, training=None):
        """The decoder's memory and an empty cache as long as the decode
        limit (a non-Transformer decoder goes through the bridge as usual)."""
        if not isinstance(self.decoder, SelfAttentionDecoder):
            return super().decoder_start(encoder_output, batch_size, training)
        memory = self.decoder.prepare_memory(encoder_output)
        limit = self._decode_limit
        if limit is None:
            limit = self.max_decode_length()
        state = self.decoder.initial_state(
            memory, batch_size=batch_size, max_length=limit
        )
        return state, memory

    def start_decoding(self, features, training=None, max_length=None):
        # The cache must hold `max_length` steps when that exceeds the
        # configured limit; `decoder_start` reads it from here.
        object.__setattr__(self, "_decode_limit", max_length)
        try:
            return super().start_decoding(features, training, max_length)
        finally:
            object.__setattr__(self, "_decode_limit", None)
