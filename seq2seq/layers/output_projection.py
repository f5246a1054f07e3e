"""A decoder's output layer: [..., F] features -> [..., V] float32 logits.

Its [N, F] x [F, V] product over the target vocabulary is the largest matrix
product of a text model's training step. `--mixed_precision
bfloat16_logits` runs that one product in bfloat16 while training: the
features and the kernel are rounded to bfloat16, the kernel accumulates
their products in float32, and the [N, V] result, rounded to bfloat16, is
brought back to float32 before the bias, the softmax and the loss. On a CPU
with native bfloat16 (`avx512_bf16`) the product and its two gradients took
about two-thirds of their float32 time, casts included, while bfloat16
arithmetic in the recurrences (Keras's `mixed_bfloat16` policy) is no
faster there (docs/performance.md).

The variables, their gradients as the optimizer sees them, evaluation and
decoding stay float32: outside training the layer is a plain `Dense`. A
decoder's training loss usually takes the product itself, in chunks, with
its gradients (`losses.linear_cross_entropy_sum`, told the dtype by
`product_dtype`), rounding the same operands and results as `call`.

TensorFlow's bfloat16 product on a CPU keeps about 0.8 MB for every row
count N it meets (its float32 product little), and the rows of a
training loss (the target tokens of a batch) take hundreds of counts: 120
MB more after 360 steps of nmt_small. Such a layer asks the loss for rows padded to a
multiple of `ROW_MULTIPLE` (`row_multiple`), which kept it below float32's
peak, at the same speed (docs/performance.md).
"""

import keras
import tensorflow as tf

__all__ = ["OutputProjection", "ROW_MULTIPLE", "set_training_dtype", "training_dtype"]

# Rows of a lower-precision training product are padded to a multiple of this.
ROW_MULTIPLE = 16

# The product's dtype in training for layers created from now on (None:
# float32), like Keras's global dtype policy; set by `--mixed_precision`.
_TRAINING_DTYPE = [None]


def set_training_dtype(dtype):
    """Sets the training product's dtype of `OutputProjection` layers
    created afterwards: None (float32) or "bfloat16"."""
    if dtype is not None:
        dtype = tf.as_dtype(dtype).name
    _TRAINING_DTYPE[0] = dtype


def training_dtype():
    """The dtype `set_training_dtype` last set (None: float32)."""
    return _TRAINING_DTYPE[0]


class OutputProjection(keras.layers.Dense):
    """A float32 `Dense` whose product may run in a lower precision while
    training.

    Args:
      units: V, the number of logits.
      training_dtype: The dtype of the product when called with
        `training=True` ("bfloat16"), None for float32; by default the one
        `set_training_dtype` set.
      **kwargs: `keras.layers.Dense` arguments (`dtype` is float32).
    """

    _DEFAULT = object()

    def __init__(self, units, training_dtype=_DEFAULT, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(units, **kwargs)
        if training_dtype is OutputProjection._DEFAULT:
            training_dtype = _TRAINING_DTYPE[0]
        self.training_dtype = training_dtype

    def row_multiple(self, training):
        """What a loss should pad N, the rows it projects, to a multiple of:
        `ROW_MULTIPLE` where `call(..., training)` takes the lower-precision
        product, else 1."""
        return ROW_MULTIPLE if training and self.training_dtype is not None else 1

    def is_affine(self, training):
        """Whether `call(x, training)` is `x @ kernel + bias` alone (no
        activation), its product in `product_dtype(training)`."""
        del training
        return self.activation in (None, keras.activations.linear)

    def product_dtype(self, training):
        """The dtype of `call(x, training)`'s product: `training_dtype`
        while training, else None (float32)."""
        return self.training_dtype if training else None

    def call(self, inputs, training=None):
        """[..., F] features -> [..., V] float32 logits."""
        if not training or self.training_dtype is None:
            return super().call(inputs)
        low = self.training_dtype
        features = tf.shape(inputs)[-1]
        rows = tf.reshape(tf.cast(inputs, low), [-1, features])
        product = tf.matmul(rows, tf.cast(self.kernel, low))
        shape = tf.concat([tf.shape(inputs)[:-1], [self.units]], axis=0)
        logits = tf.reshape(tf.cast(product, tf.float32), shape)
        logits.set_shape(inputs.shape[:-1].concatenate([self.units]))
        if self.use_bias:
            logits = logits + self.bias
        if self.activation is not None:
            logits = self.activation(logits)
        return logits

    def get_config(self):
        config = super().get_config()
        config["training_dtype"] = self.training_dtype
        return config
