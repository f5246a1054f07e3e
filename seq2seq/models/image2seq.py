"""Image2Seq: image captioning with an attention decoder over a CNN feature map.

The model reads images instead of source tokens. Its encoder (by default
`InceptionV3Encoder`) turns each image into an `h x w` grid of feature
vectors, and the `AttentionDecoder` attends over the `h*w` grid positions
while it writes the caption. Training, evaluation, inference and beam search
are the ones of every `Seq2SeqModel`; only the source side differs:

- There is no source vocabulary and no source embedding (`vocab_source`,
  `source.*` and `embedding.share` are not parameters of this model).
- `preprocess` (run inside `tf.data`) takes the decoded images under
  `image` [B, H, W, 3] (float in `[0, 1]` or uint8), as
  `ImageCaptioningInputPipeline` produces them, and hands them on under the
  key the compiled training and decoding steps read: `source_ids`
  [B, H, W, 3] float32. `source_len` [B] becomes the number of grid
  positions `h*w`, and `source_tokens` [B, h*w] names the positions
  (`r0c0`, `r0c1`, ...), so that inference tasks can label attention maps
  (e.g. `DumpAttention`), whose rows cover the `h*w` positions row by row.
- Targets are handled exactly as in `Seq2SeqModel` (sliced to
  `target.max_seq_len`, looked up in `vocab_target`).
"""

import keras
import tensorflow as tf

from seq2seq.configurable import locate_class
from seq2seq.encoders import image_encoder
from seq2seq.encoders.encoder import Encoder
from seq2seq.errors import ConfigError, UserError
from seq2seq.models.attention_seq2seq import AttentionSeq2Seq
from seq2seq.models.model_base import ModelBase

# The feature key images arrive under from the input pipeline.
IMAGE_KEY = "image"

# Seq2SeqModel params about source tokens, which this model does not have.
_SOURCE_PARAMS = (
    "vocab_source",
    "source.max_seq_len",
    "source.reverse",
    "embedding.share",
    "embedding.source.init_file",
)


def _locate_encoder_class(name):
    """Finds `encoder.class`, short names also among the image encoders.

    `seq2seq.encoders.InceptionV3Encoder` (the original's default) is
    resolved even while `seq2seq.encoders` does not export the class.
    """
    try:
        return locate_class(
            name,
            ["seq2seq.encoders", image_encoder],
            "encoder.class",
            base=Encoder,
        )
    except ConfigError:
        package, _, short = str(name).rpartition(".")
        if package == "seq2seq.encoders" and hasattr(image_encoder, short):
            return locate_class(short, [image_encoder], "encoder.class", base=Encoder)
        raise


def position_labels(grid_height, grid_width):
    """Names of the grid positions in row-major order: `r0c0`, `r0c1`, ...

    Args:
      grid_height: Number of rows of the feature map.
      grid_width: Number of columns.

    Returns:
      A list of `grid_height * grid_width` strings.
    """
    return [f"r{row}c{col}" for row in range(grid_height) for col in range(grid_width)]


class Image2Seq(AttentionSeq2Seq):
    """Generates a token sequence (a caption) from an image.

    Defaults follow the original: an `InceptionV3Encoder`, a `ZeroBridge`,
    an `AttentionDecoder` with Bahdanau attention of 128 units.

    Args:
      params: Model params (see `default_params`); `vocab_target` is
        required.
      mode: `train`, `eval` or `infer`.
      name: Layer name.

    Raises:
      ConfigError: `vocab_target` is not set, or an invalid class or param.
      DataError: The target vocabulary file is missing or malformed.
    """

    def __init__(self, params, mode, name="image_seq2seq"):
        # Seq2SeqModel.__init__ needs a source vocabulary; this runs its
        # steps for the target side, then creates the network as
        # BasicSeq2Seq does.
        keras.layers.Layer.__init__(self, name=name)
        ModelBase.__init__(self, params, mode, name)
        # Images are neither reversed nor share an embedding with the target
        # (inherited code reads these two keys).
        self.params["source.reverse"] = False
        self.params["embedding.share"] = False
        self._require_vocabulary_params("vocab_target", what="caption vocabulary")
        self._check_label_smoothing()
        self._load_target_vocabulary()
        self._check_inference_params()
        self.source_vocab_info = None
        self._build_embeddings()
        self._init_network()
        grid = getattr(self.encoder, "grid_size", None) or (1, 1)
        self._num_positions = int(grid[0] * grid[1])
        self._position_labels = position_labels(*grid)

    @staticmethod
    def default_params():
        # Everything a Seq2SeqModel reads, minus the source side, with the
        # original Image2Seq's defaults.
        params = AttentionSeq2Seq.default_params()
        for key in _SOURCE_PARAMS:
            params.pop(key, None)
        params.update(
            {
                "attention.class": "AttentionLayerBahdanau",
                "attention.params": {"num_units": 128},
                "bridge.class": "seq2seq.models.bridges.ZeroBridge",
                "bridge.params": {},
                "encoder.class": "seq2seq.encoders.InceptionV3Encoder",
                "encoder.params": {},
                "decoder.class": "seq2seq.decoders.AttentionDecoder",
                "decoder.params": {},
                "target.max_seq_len": 50,
                "embedding.dim": 100,
                "inference.beam_search.beam_width": 0,
                "inference.beam_search.length_penalty_weight": 0.0,
                "inference.beam_search.choose_successors_fn": "choose_top_k",
                "inference.beam_search.early_stopping": True,
                "vocab_target": "",
            }
        )
        return params

    # ------------------------------------------------------- setup

    def _build_embeddings(self):
        self.target_embedding = self._add_embedding(
            "target_embedding", self.target_vocab_info
        )

    def _create_encoder(self):
        encoder_class = _locate_encoder_class(self.params["encoder.class"])
        return encoder_class(self.params["encoder.params"], self.mode)

    # ------------------------------------------------------- source side

    @property
    def embedding_variables(self):
        """The target embedding (the only embedding of this model)."""
        return [self.target_embedding]

    @property
    def source_vocab_table(self):
        raise UserError(
            "Image2Seq reads images and has no source vocabulary; text-only "
            "features (e.g. exporting a text-serving SavedModel) do not apply."
        )

    @property
    def source_id_to_token(self):
        raise UserError("Image2Seq reads images and has no source vocabulary.")

    def embed_source(self, ids):
        raise UserError("Image2Seq reads images and has no source embedding.")

    @property
    def num_positions(self):
        """`h*w`: how many grid positions the decoder attends over."""
        return self._num_positions

    @property
    def position_labels(self):
        """The names of the grid positions (`source_tokens` after preprocess)."""
        return list(self._position_labels)

    # ------------------------------------------------------- preprocess

    def preprocess(self, features):
        """Prepares a batch of images and captions; run inside `tf.data`.

        Args:
          features: Dict with `image` [B, H, W, 3] (float in `[0, 1]` or
            uint8; a batch that already has `source_ids` images is accepted
            too) and optionally `target_tokens` [B, T] string and
            `target_len` [B].

        Returns:
          A dict with `source_ids` [B, H, W, 3] float32 images (the `image`
          key is removed: the images travel once), `source_len` [B] = h*w,
          `source_tokens` [B, h*w] the position names, and, with targets,
          `target_ids` [B, T'] int32, `target_len` [B] clipped to
          `target.max_seq_len` and `target_tokens_len` [B] unclipped.

        Raises:
          UserError: No images in the features.
        """
        features = dict(features)
        if IMAGE_KEY in features:
            images = features.pop(IMAGE_KEY)
        elif "source_ids" in features:
            images = features["source_ids"]
        else:
            raise UserError(
                "Image2Seq needs images under the feature 'image'; read the data "
                "with ImageCaptioningInputPipeline "
                "(seq2seq.data.image_pipeline.ImageCaptioningInputPipeline)."
            )
        images = image_encoder.to_float_images(images)
        batch_size = tf.shape(images)[0]
        features["source_ids"] = images
        features["source_len"] = tf.fill([batch_size], self._num_positions)
        labels = tf.constant(self._position_labels, tf.string)
        features["source_tokens"] = tf.tile(labels[None, :], [batch_size, 1])
        if "target_len" in features:
            features["target_tokens_len"] = tf.cast(features["target_len"], tf.int32)
        return self.preprocess_targets(features)

    # ---------------------------------------------------------- encode

    def encode(self, features, training=None):
        """Encodes `source_ids` images [B, H, W, 3]; returns an `EncoderOutput`
        over the `h*w` grid positions."""
        return self.encoder(features["source_ids"], training=training)

    def batch_size(self, features, labels=None):
        """The number of images in a batch of preprocessed features."""
        del labels
        return tf.shape(features["source_ids"])[0]
