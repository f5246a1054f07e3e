"""Image captioning input: TFRecords of encoded images and their captions.

`ImageCaptioningInputPipeline` reads TFRecord files whose records are
`tf.train.Example`s (or `tf.train.SequenceExample`s, the layout of the
original's im2txt/MSCOCO data) holding

    image/data     bytes  one encoded image (JPEG, PNG, GIF or BMP)
    image/caption  bytes  the caption as text, tokens separated by spaces
                          (Example feature or SequenceExample context), or
                   a SequenceExample feature list with one token per step

(the field names are params). Each record becomes one unbatched example

    image          [H, W, 3] tf.float32  decoded, RGB, in [0, 1], resized
                                         (bilinear) to resize_height x
                                         resize_width so batches stack
    source_len     []        tf.int32    1 (one image; batching needs it)
    target_tokens  [T]       tf.string   "SEQUENCE_START", the caption's
                                         tokens, "SEQUENCE_END"
    target_len     []        tf.int32    T

`Image2Seq.preprocess` turns these into the features its compiled steps
read. The caption ids of the original's records (`image/caption_ids`) are
not used: the model maps caption tokens to ids with its `vocab_target`.

Decisions on input, made on purpose:

- The first record is read in Python before training starts: a file that
  is not TFRecord, a missing image field or an image that does not decode is
  a `DataError` naming the file and field. Whether captions are text or a
  token list, and whether there are captions at all, is decided from that
  record (training and evaluation need captions; inference does not).
- The image format is detected from the bytes (`tf.io.decode_image`), so
  JPEG and PNG records may be mixed; animated GIFs give their first frame;
  grayscale and RGBA images become RGB.
- A record without a caption gets `SEQUENCE_START SEQUENCE_END`.
- Records are shuffled (train mode) while still encoded, so the shuffle
  buffer holds compressed bytes, not decoded images.
"""

import tensorflow as tf
from google.protobuf.message import DecodeError

from seq2seq.data.input_pipeline import (
    LABEL_KEYS,
    SEQUENCE_END,
    SEQUENCE_START,
    InputPipeline,
    _as_file_list,
    expand_record_files,
    first_record,
)
from seq2seq.errors import ConfigError, DataError

IMAGE_FORMATS = ("jpg", "jpeg", "png", "gif", "bmp")

# How captions are stored, as found in the first record.
_CAPTION_TEXT = "text"
_CAPTION_TOKENS = "tokens"


class ImageCaptioningInputPipeline(InputPipeline):
    """Reads encoded images and captions from TFRecord files.

    Params:
      files: TFRecord files (paths or glob patterns).
      image_field: The bytes feature holding the encoded image
        (`image/data`).
      image_format: The format of the images (`jpg`); one of jpg, jpeg, png,
        gif, bmp. Kept for the original's configs: the format is detected
        from each image's bytes, so records of other formats decode too.
      caption_ids_field: The original's field of caption ids
        (`image/caption_ids`); accepted and not read, since the model looks
        the caption tokens up in its target vocabulary.
      caption_tokens_field: The caption (`image/caption`): a bytes feature
        with the caption text, or a SequenceExample feature list of tokens.
      caption_delimiter: Characters separating the tokens of a text caption
        (a space); an empty string splits into characters.
      resize_height: Every image is resized to this height (299), so that
        images of any size batch together. Use the encoder's
        `resize_height` to resize only once.
      resize_width: The same for the width (299).

    Args:
      params: The user's params, merged over `default_params()`.
      mode: One of `ModeKeys.ALL`.
    """

    @staticmethod
    def default_params():
        params = InputPipeline.default_params()
        params.update(
            {
                "files": [],
                "image_field": "image/data",
                "image_format": "jpg",
                "caption_ids_field": "image/caption_ids",
                "caption_tokens_field": "image/caption",
                "caption_delimiter": " ",
                "resize_height": 299,
                "resize_width": 299,
            }
        )
        return params

    def __init__(self, params, mode):
        super().__init__(params, mode)
        name = type(self).__name__
        self._patterns = _as_file_list(self.params["files"], "files", name)
        image_format = str(self.params["image_format"]).lower()
        if image_format not in IMAGE_FORMATS:
            raise ConfigError(
                f"{name}: image_format '{self.params['image_format']}' is not one "
                f"of {', '.join(IMAGE_FORMATS)}."
            )
        for key in ("resize_height", "resize_width"):
            if self.params[key] < 1:
                raise ConfigError(
                    f"{name}: {key} must be a positive number of pixels, got "
                    f"{self.params[key]}."
                )
        for key in ("image_field", "caption_tokens_field"):
            if not self.params[key]:
                raise ConfigError(f"{name}: {key} must name a feature, got ''.")
        self.files = None
        self.has_targets = True
        self.caption_kind = _CAPTION_TEXT

    @property
    def feature_keys(self):
        return {"image", "source_len"}

    @property
    def label_keys(self):
        return set(LABEL_KEYS) if self.has_targets else set()

    @property
    def image_size(self):
        """`(height, width)` of the images this pipeline produces."""
        return self.params["resize_height"], self.params["resize_width"]

    # --------------------------------------------------------- validation

    def validate(self):
        name = type(self).__name__
        self.files = expand_record_files(self._patterns, name)
        path, raw, example = first_record(self.files, self._first_record, name)
        context = example.context.feature
        image_field = self.params["image_field"]
        if (
            image_field not in context
            or context[image_field].WhichOneof("kind") != "bytes_list"
        ):
            raise DataError(
                f"{name}: the first record of {path} has no bytes feature "
                f"'{image_field}' (features: {_feature_names(example)}); set "
                "image_field."
            )
        self._check_image(path, raw)
        caption_field = self.params["caption_tokens_field"]
        lists = example.feature_lists.feature_list
        if caption_field in context:
            if context[caption_field].WhichOneof("kind") != "bytes_list":
                raise DataError(
                    f"{name}: feature '{caption_field}' in {path} is not text "
                    "(bytes); set caption_tokens_field to the caption's feature."
                )
            self.caption_kind = _CAPTION_TEXT
            self.has_targets = True
        elif caption_field in lists:
            self.caption_kind = _CAPTION_TOKENS
            self.has_targets = True
        else:
            self.has_targets = False
        self._needs_targets(
            self.has_targets,
            f"the first record of {path} has no caption '{caption_field}' "
            f"(features: {_feature_names(example)}; set caption_tokens_field)",
        )
        return None

    def _first_record(self, path):
        try:
            for raw in tf.data.TFRecordDataset(path).take(1):
                raw = raw.numpy()
                return path, raw, tf.train.SequenceExample.FromString(raw)
        except (tf.errors.OpError, DecodeError, ValueError) as err:
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DataError(
                f"{type(self).__name__}: {path} is not a readable file of "
                f"tf.train.Example records ({message})."
            ) from None
        return None

    def _check_image(self, path, raw):
        try:
            image = self._decode(self._parse(tf.constant(raw), False)[0])
            image.numpy()
        except tf.errors.OpError as err:
            message = str(err).strip().splitlines()[0][:200] if str(err) else ""
            raise DataError(
                f"{type(self).__name__}: the image in '{self.params['image_field']}' "
                f"of the first record of {path} does not decode ({message}); it "
                f"must hold encoded {', '.join(IMAGE_FORMATS)} bytes."
            ) from None

    # ------------------------------------------------------------ reading

    def read_records(self):
        return tf.data.TFRecordDataset(self.files)

    def _parse(self, record, with_caption=True):
        """Parses one serialized record; returns `(image_bytes, caption)`,
        the caption a scalar string, a [N] token vector or `None`."""
        image_field = self.params["image_field"]
        caption_field = self.params["caption_tokens_field"]
        with_caption = with_caption and self.has_targets
        context_spec = {image_field: tf.io.FixedLenFeature([], tf.string)}
        sequence_spec = {}
        if with_caption and self.caption_kind == _CAPTION_TEXT:
            context_spec[caption_field] = tf.io.FixedLenFeature(
                [], tf.string, default_value=""
            )
        elif with_caption:
            sequence_spec[caption_field] = tf.io.FixedLenSequenceFeature(
                [], tf.string, allow_missing=True
            )
        context, sequence = tf.io.parse_single_sequence_example(
            record, context_features=context_spec, sequence_features=sequence_spec
        )
        caption = None
        if with_caption:
            caption = (
                context[caption_field]
                if self.caption_kind == _CAPTION_TEXT
                else sequence[caption_field]
            )
        return context[image_field], caption

    def _decode(self, image_bytes):
        """Encoded bytes -> [H, W, 3] float32 in [0, 1] at the fixed size."""
        image = tf.io.decode_image(
            image_bytes, channels=3, dtype=tf.float32, expand_animations=False
        )
        image = tf.image.resize(image, self.image_size, method="bilinear")
        image = tf.clip_by_value(image, 0.0, 1.0)
        return tf.ensure_shape(image, [*self.image_size, 3])

    def parse_record(self, record):
        image_bytes, caption = self._parse(record)
        features = {
            "image": self._decode(image_bytes),
            "source_len": tf.constant(1, tf.int32),
        }
        if caption is None:
            return features
        if self.caption_kind == _CAPTION_TEXT:
            features.update(
                self._target_features(caption, self.params["caption_delimiter"])
            )
        else:
            tokens = tf.boolean_mask(caption, tf.strings.length(caption) > 0)
            tokens = tf.concat(
                [tf.constant([SEQUENCE_START]), tokens, tf.constant([SEQUENCE_END])],
                axis=0,
            )
            features["target_tokens"] = tokens
            features["target_len"] = tf.size(tokens, out_type=tf.int32)
        return features


def _feature_names(example):
    names = sorted(example.context.feature) + sorted(example.feature_lists.feature_list)
    return ", ".join(names) or "none"
