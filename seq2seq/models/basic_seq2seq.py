"""BasicSeq2Seq: an encoder whose final state initialises a decoder."""

from seq2seq.configurable import locate_class
from seq2seq.decoders.rnn_decoder import RNNDecoder
from seq2seq.decoders.self_attention_decoder import SelfAttentionDecoder
from seq2seq.encoders.encoder import Encoder
from seq2seq.models import bridges
from seq2seq.models.seq2seq_model import Seq2SeqModel

# The decoders have no common base class: `decoder.class` must derive from
# one of these.
DECODER_BASES = (RNNDecoder, SelfAttentionDecoder)


class BasicSeq2Seq(Seq2SeqModel):
    """An encoder-decoder model joined by a bridge, without attention.

    The bridge (by default `InitialStateBridge`) turns the encoder's final
    state into the decoder's initial state.

    Args:
      params: Model params (see `default_params`).
      mode: `train`, `eval` or `infer`.
      name: Layer name.
    """

    def __init__(self, params, mode, name="basic_seq2seq"):
        super().__init__(params, mode, name)
        self._init_network()

    def _create_encoder(self):
        encoder_class = locate_class(
            self.params["encoder.class"],
            ["seq2seq.encoders"],
            "encoder.class",
            base=Encoder,
        )
        return encoder_class(self.params["encoder.params"], self.mode)

    @staticmethod
    def default_params():
        params = Seq2SeqModel.default_params()
        params.update(
            {
                "bridge.class": "seq2seq.models.bridges.InitialStateBridge",
                "bridge.params": {},
                "encoder.class": "seq2seq.encoders.UnidirectionalRNNEncoder",
                "encoder.params": {},
                "decoder.class": "seq2seq.decoders.BasicDecoder",
                "decoder.params": {},
            }
        )
        return params

    def _decoder_class(self):
        return locate_class(
            self.params["decoder.class"],
            ["seq2seq.decoders"],
            "decoder.class",
            base=DECODER_BASES,
        )

    def _create_decoder(self):
        return self._decoder_class()(
            self.params["decoder.params"],
            self.mode,
            vocab_size=self.target_vocab_info.total_size,
        )

    def _create_bridge(self):
        bridge_class = locate_class(
            self.params["bridge.class"], [bridges], "bridge.class", base=bridges.Bridge
        )
        return bridge_class(
            self.params["bridge.params"],
            self.mode,
            decoder_state_size=self._decoder.cell_state_size,
        )

    @property
    def decoder(self):
        return self._decoder

    def encode(self, features, training=None):
        embedded = self.embed_source(features["source_ids"])
        return self.encoder(embedded, features["source_len"], training=training)

    def decoder_start(self, encoder_output, batch_size, training=None):
        cell_state = self.bridge(encoder_output, batch_size, training=training)
        memory = self._decoder.prepare_memory(encoder_output)
        return self._decoder.initial_state(memory, cell_state), memory
