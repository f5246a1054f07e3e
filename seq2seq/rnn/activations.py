"""Activation names of a configuration, turned into callables.

Cells, the cell factory and the bridges all accept the same spellings: Keras
activation names (`tanh`), the original's dotted TensorFlow names
(`tensorflow.tanh`, `tensorflow.nn.relu`) and Keras dotted names; nothing outside TensorFlow and Keras.
"""

import keras
import tensorflow as tf

from seq2seq.errors import ConfigError

__all__ = ["resolve_activation"]

# Spellings of "no activation".
_IDENTITY = ("", "none", "identity", "linear")


def resolve_activation(name, where="activation"):
    """Turns an activation given in a config into a callable.

    Accepts Keras activation names (`tanh`, `relu`, `linear`), the original's
    dotted TensorFlow names (`tensorflow.tanh`, `tensorflow.nn.relu`,
    `tensorflow.identity`), Keras dotted names (`keras.activations.gelu`) and
    callables. No other dotted path is resolved: a config names data, not code
    to run (`os.system` is refused).
    `None`, `""`, `"none"`, `"identity"` and `"linear"` mean identity.

    Args:
      name: The name, a callable or None.
      where: What is being configured, for the error message.

    Returns:
      A callable mapping a tensor to a tensor.

    Raises:
      ConfigError: The name resolves to nothing callable.
    """
    if callable(name):
        return name
    if name is None or (isinstance(name, str) and name.strip().lower() in _IDENTITY):
        return tf.identity
    if not isinstance(name, str):
        raise ConfigError(f"{where}: expected an activation name, got {name!r}.")
    found = None
    text = name.strip()
    for prefix in ("tensorflow.", "tf."):
        if text.startswith(prefix):
            found = _getattr_path(tf, text[len(prefix) :])
            break
    if found is None and "." not in text:
        try:
            found = keras.activations.get(text)
        except (ValueError, TypeError):
            found = getattr(tf.nn, text, None) or getattr(tf.math, text, None)
    if found is None and text.startswith("keras."):
        found = _getattr_path(keras, text[len("keras.") :])
    if not callable(found):
        raise ConfigError(
            f"{where}: unknown activation '{name}'. Use a Keras activation name "
            "(tanh, relu, sigmoid, linear, ...) or a dotted TensorFlow or Keras "
            "function name such as tensorflow.tanh."
        )
    return found


def _getattr_path(obj, path):
    """`obj.a.b` for path `a.b`; None when an attribute is missing."""
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj
