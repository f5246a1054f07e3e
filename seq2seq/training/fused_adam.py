"""Keras's Adam update, fused: the same arithmetic in one pass per variable.

Keras 3's `Adam.update_step` is a chain of a dozen whole-tensor ops per
variable (subtract, multiply, assign-add for each moment, then square root,
add, divide, subtract), each reading and writing the full embedding or
output matrix; on short sentences that memory traffic is a large share of a
train step. `apply_gradients` here computes exactly Keras's update, with
the same variables (so checkpoints do not change), in one kernel per
variable:

* a dense gradient goes to TensorFlow's `ResourceApplyAdam`, whose update
  is Keras's (`m += (g - m)(1 - b1)`, `v += (g^2 - v)(1 - b2)`,
  `var -= alpha m / (sqrt(v) + eps)`, `alpha = lr sqrt(1 - b2^t) /
  (1 - b1^t)`);
* an embedding gradient (`tf.IndexedSlices`, one row per token occurrence)
  is handled as Keras handles it: the first moment reads the summed rows,
  the second moment the summed *squares* of the rows (Keras squares the
  slices before densifying them), and the three assignments run as one
  XLA-compiled loop over the dense matrix.

Only a plain `keras.optimizers.Adam` qualifies (no AMSGrad, weight decay,
EMA, gradient accumulation or Keras-side clipping; see `supports`); other
optimizers keep `optimizer.apply_gradients`.
"""

import keras
import tensorflow as tf


def supports(optimizer):
    """Whether `apply_gradients` computes `optimizer`'s own update."""
    return (
        type(optimizer) is keras.optimizers.Adam
        and not optimizer.amsgrad
        and not optimizer.use_ema
        and optimizer.weight_decay is None
        and optimizer.clipnorm is None
        and optimizer.clipvalue is None
        and optimizer.global_clipnorm is None
        and not optimizer.gradient_accumulation_steps
        and keras.backend.backend() == "tensorflow"
    )


def _tf_variable(variable):
    """The `tf.Variable` behind a Keras variable."""
    return variable.value if isinstance(variable, keras.Variable) else variable


@tf.function(jit_compile=True, autograph=False)
def _adam_from_moments(var, m, v, grad, grad_square, alpha, beta_1, beta_2, eps):
    """Keras's Adam assignments with the second moment fed `grad_square`.

    Args:
      var, m, v: [N, D] float32 variables (weights, first and second moment).
      grad, grad_square: [N, D] dense gradient and summed squared slices.
      alpha, beta_1, beta_2, eps: float32 scalars.
    """
    m.assign_add((grad - m) * (1.0 - beta_1))
    v.assign_add((grad_square - v) * (1.0 - beta_2))
    var.assign_sub((m * alpha) / (tf.sqrt(v) + eps))


def apply_gradients(optimizer, gradients, variables):
    """Applies one Adam update, as `optimizer.apply_gradients` would.

    Args:
      optimizer: A built `keras.optimizers.Adam` for which `supports` holds.
      gradients: One gradient (tensor, `tf.IndexedSlices` or None) per
        variable.
      variables: The trainable variables the optimizer was built for.
    """
    learning_rate = optimizer.learning_rate
    step = None
    for gradient, variable in zip(gradients, variables):
        if gradient is None:
            continue
        index = optimizer._get_variable_index(variable)
        var = _tf_variable(variable)
        m = _tf_variable(optimizer._momentums[index])
        v = _tf_variable(optimizer._velocities[index])
        dtype = var.dtype
        if step is None:
            step = tf.cast(optimizer.iterations + 1, dtype)
        lr = tf.cast(learning_rate, dtype)
        beta_1 = tf.cast(optimizer.beta_1, dtype)
        beta_2 = tf.cast(optimizer.beta_2, dtype)
        epsilon = tf.cast(optimizer.epsilon, dtype)
        beta_1_power = tf.pow(beta_1, step)
        beta_2_power = tf.pow(beta_2, step)
        if isinstance(gradient, tf.IndexedSlices):
            values = tf.cast(gradient.values, dtype)
            dense = tf.convert_to_tensor(
                tf.IndexedSlices(values, gradient.indices, gradient.dense_shape)
            )
            squares = tf.convert_to_tensor(
                tf.IndexedSlices(
                    tf.square(values), gradient.indices, gradient.dense_shape
                )
            )
            alpha = lr * tf.sqrt(1.0 - beta_2_power) / (1.0 - beta_1_power)
            _adam_from_moments(
                var, m, v, dense, squares, alpha, beta_1, beta_2, epsilon
            )
        else:
            tf.raw_ops.ResourceApplyAdam(
                var=var.handle,
                m=m.handle,
                v=v.handle,
                beta1_power=beta_1_power,
                beta2_power=beta_2_power,
                lr=lr,
                beta1=beta_1,
                beta2=beta_2,
                epsilon=epsilon,
                grad=tf.cast(gradient, dtype),
                use_locking=False,
            )
    optimizer.iterations.assign_add(1)
