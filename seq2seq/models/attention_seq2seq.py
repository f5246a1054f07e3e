"""AttentionSeq2Seq: BasicSeq2Seq whose decoder attends over the encoder."""

from seq2seq.configurable import locate_class
from seq2seq.decoders.attention import AttentionLayer
from seq2seq.models.basic_seq2seq import BasicSeq2Seq


class AttentionSeq2Seq(BasicSeq2Seq):
    """Encoder-decoder with attention (by default Bahdanau attention, a
    bidirectional RNN encoder, a zero bridge and an `AttentionDecoder`).

    Args:
      params: Model params (see `default_params`).
      mode: `train`, `eval` or `infer`.
      name: Layer name.
    """

    def __init__(self, params, mode, name="att_seq2seq"):
        super().__init__(params, mode, name)

    @staticmethod
    def default_params():
        params = BasicSeq2Seq.default_params()
        params.update(
            {
                "attention.class": "AttentionLayerBahdanau",
                "attention.params": {},
                "bridge.class": "seq2seq.models.bridges.ZeroBridge",
                "encoder.class": "seq2seq.encoders.BidirectionalRNNEncoder",
                "encoder.params": {},
                "decoder.class": "seq2seq.decoders.AttentionDecoder",
                "decoder.params": {},
            }
        )
        return params

    def _create_decoder(self):
        attention_class = locate_class(
            self.params["attention.class"],
            ["seq2seq.decoders.attention"],
            "attention.class",
            base=AttentionLayer,
        )
        attention_layer = attention_class(self.params["attention.params"], self.mode)
        return self._decoder_class()(
            self.params["decoder.params"],
            self.mode,
            vocab_size=self.target_vocab_info.total_size,
            attention_layer=attention_layer,
        )
