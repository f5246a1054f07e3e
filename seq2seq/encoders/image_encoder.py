"""Image encoders: a convolutional network whose feature map is attended over.

`InceptionV3Encoder` resizes a batch of images, runs a convolutional backbone
(Keras's InceptionV3 without its classifier, or a two-layer test network) and
flattens the last feature map, so that every cell of the `h x w` grid is one
position an attention decoder can look at:

    images [B, H, W, 3]  ->  feature map [B, h, w, C]
      outputs / attention_values  [B, h*w, C]   (row-major grid positions)
      final_state                 [B, C]        (mean over the grid)
      attention_values_length     [B]           (h*w for every image)

Images are float in `[0, 1]` or `uint8` in `[0, 255]`; they are scaled to
`[-1, 1]`, the range Keras's InceptionV3 weights were trained with.

Weights are never downloaded: `weights: ""` starts from a random
initialisation and a path to a local Keras weights file (`.h5` or
`.weights.h5`, e.g. Keras's `inception_v3_..._notop.h5` fetched by hand)
loads it into the backbone.
"""

import os

import keras
import tensorflow as tf
from absl import logging

from seq2seq.configurable import ModeKeys
from seq2seq.encoders.encoder import Encoder, EncoderOutput
from seq2seq.errors import ConfigError

__all__ = ["InceptionV3Encoder", "BACKBONES", "to_float_images"]

# The backbones `InceptionV3Encoder` can build, and the smallest image side
# each one accepts.
BACKBONES = {"inception_v3": 75, "tiny_cnn": 4}

_WEIGHT_SUFFIXES = (".weights.h5", ".h5", ".hdf5")


def to_float_images(images):
    """Converts images to float32 in `[0, 1]`.

    Args:
      images: [B, H, W, C] `uint8` (0..255) or float (already in `[0, 1]`).

    Returns:
      [B, H, W, C] float32.
    """
    images = tf.convert_to_tensor(images)
    if images.dtype == tf.uint8:
        return tf.image.convert_image_dtype(images, tf.float32)
    return tf.cast(images, tf.float32)


def _build_inception_v3(height, width):
    return keras.applications.InceptionV3(
        include_top=False,
        weights=None,
        input_shape=(height, width, 3),
        pooling=None,
    )


def _build_tiny_cnn(height, width):
    # Two strided convolutions: a feature map of (H/4) x (W/4) x 32. Meant for
    # tests and CPU smoke runs, not for real captioning.
    inputs = keras.Input((height, width, 3))
    hidden = keras.layers.Conv2D(
        16, 3, strides=2, padding="same", activation="relu", name="tiny_conv1"
    )(inputs)
    features = keras.layers.Conv2D(
        32, 3, strides=2, padding="same", activation="relu", name="tiny_conv2"
    )(hidden)
    return keras.Model(inputs, features, name="tiny_cnn")


class InceptionV3Encoder(Encoder):
    """Encodes images with a convolutional network (InceptionV3 by default).

    Params:
      resize_height: Images are resized (bilinear) to this height before the
        network (299). InceptionV3 needs at least 75.
      resize_width: The same for the width (299).
      weights: `""` for random initial weights, or the path of a local Keras
        weights file (`.h5` / `.weights.h5`) for the backbone. Nothing is ever
        downloaded. The file is read in `train` mode only; in `eval` and
        `infer` mode the weights come from the training checkpoint.
      trainable: Whether the backbone's weights are trained (True). False
        freezes them, batch-norm statistics included.
      backbone: `inception_v3` (the original's network) or `tiny_cnn`, two
        strided 3x3 convolutions (16 and 32 filters) for tests and quick CPU
        runs; it is not a substitute for a real image network.

    The encoder ignores `sequence_length` (every image is complete).

    Args:
      params: The encoder's params (merged over `default_params()`).
      mode: `train`, `eval` or `infer`.
      name: The layer name.

    Raises:
      ConfigError: An unknown backbone, an image size the backbone cannot
        take, or a `weights` value that is not `""` or a local weights file.
    """

    def __init__(self, params, mode, name="image_encoder"):
        super().__init__(params, mode, name)
        backbone = self.params["backbone"]
        if backbone not in BACKBONES:
            raise ConfigError(
                f"InceptionV3Encoder: backbone '{backbone}' is unknown; use one "
                f"of {', '.join(sorted(BACKBONES))}."
            )
        height, width = self.params["resize_height"], self.params["resize_width"]
        smallest = BACKBONES[backbone]
        if height < smallest or width < smallest:
            raise ConfigError(
                f"InceptionV3Encoder: resize_height/resize_width {height}x{width} "
                f"is too small for backbone {backbone}; use at least "
                f"{smallest}x{smallest}."
            )
        weights_path = self._weights_path(self.params["weights"])
        build = _build_inception_v3 if backbone == "inception_v3" else _build_tiny_cnn
        self.backbone = build(height, width)
        self.backbone.trainable = bool(self.params["trainable"])
        if weights_path:
            self._load_weights(weights_path)
        _, grid_h, grid_w, depth = self.backbone.output.shape
        self._grid = (int(grid_h), int(grid_w))
        self._depth = int(depth)

    @staticmethod
    def default_params():
        return {
            "resize_height": 299,
            "resize_width": 299,
            "weights": "",
            "trainable": True,
            "backbone": "inception_v3",
        }

    # ------------------------------------------------------------ weights

    def _weights_path(self, value):
        """Checks `weights`; returns the file to load now, or `None`."""
        value = "" if value is None else str(value)
        if not value:
            return None
        if not value.endswith(_WEIGHT_SUFFIXES):
            raise ConfigError(
                f"InceptionV3Encoder: weights '{value}' is not supported; set "
                "weights to '' (random initial weights) or to the path of a local "
                "Keras weights file ending in .h5 or .weights.h5 (weights are "
                "never downloaded)."
            )
        path = os.path.expanduser(value)
        if self.mode != ModeKeys.TRAIN:
            # The checkpoint holds the trained backbone; the file is not needed.
            return None
        if not os.path.isfile(path):
            raise ConfigError(
                f"InceptionV3Encoder: weights file not found: {path}; check the "
                "path or set weights to '' for random initial weights."
            )
        return path

    def _load_weights(self, path):
        try:
            self.backbone.load_weights(path)
        except (ValueError, OSError, KeyError) as err:
            first = str(err).strip().splitlines()[0][:200] if str(err) else ""
            raise ConfigError(
                f"InceptionV3Encoder: weights file {path} does not fit the "
                f"{self.params['backbone']} backbone without its top ({first}); "
                "use the 'notop' weights of the same network."
            ) from None
        logging.info("InceptionV3Encoder: loaded backbone weights from %s", path)

    # ------------------------------------------------------------- shapes

    @property
    def grid_size(self):
        """`(h, w)`: the size of the feature map the images are encoded into."""
        return self._grid

    @property
    def num_positions(self):
        """`h * w`: the number of attention positions per image."""
        return self._grid[0] * self._grid[1]

    @property
    def output_depth(self):
        """`C`: the depth of each position's feature vector."""
        return self._depth

    # ------------------------------------------------------------- encode

    def __call__(self, inputs, sequence_length=None, *args, **kwargs):
        # Images have no lengths; accept and ignore them for the common API.
        return super().__call__(inputs, None, *args, **kwargs)

    def call(self, inputs, sequence_length=None, training=None):
        """Encodes a batch of images.

        Args:
          inputs: [B, H, W, 3] float images in `[0, 1]` (or uint8).
          sequence_length: Ignored.
          training: Whether batch normalisation uses batch statistics and
            updates its moving averages (only in mode `train`).

        Returns:
          An `EncoderOutput` with `outputs` = `attention_values` [B, h*w, C],
          `final_state` [B, C] and `attention_values_length` [B] = h*w.
        """
        del sequence_length
        images = to_float_images(inputs)
        size = [self.params["resize_height"], self.params["resize_width"]]
        if images.shape.rank != 4 or images.shape[1:3].as_list() != size:
            images = tf.image.resize(images, size, method="bilinear")
        images = images * 2.0 - 1.0
        training = bool(training) and self.mode == ModeKeys.TRAIN
        feature_map = self.backbone(images, training=training)
        batch_size = tf.shape(feature_map)[0]
        positions = self.num_positions
        flat = tf.reshape(feature_map, [batch_size, positions, self._depth])
        pooled = tf.reduce_mean(flat, axis=1)
        return EncoderOutput(
            outputs=flat,
            final_state=pooled,
            attention_values=flat,
            attention_values_length=tf.fill([batch_size], positions),
        )
