"""Tests for seq2seq.models.model_base."""

from collections import namedtuple
from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq.errors import ConfigError
from seq2seq.models import model_base
from seq2seq.models.model_base import ModelBase
from seq2seq.training.utils import LearningRateDecay


class _Model(ModelBase):
    pass


def _model(**params):
    return _Model(params, "train", "test_model")


def _optimizer(name, **opt_params):
    return _model(**{"optimizer.name": name, "optimizer.params": opt_params})


def test_defaults_equal_the_original():
    assert ModelBase.default_params() == {
        "loss.normalize_by": "tokens",
        "optimizer.name": "Adam",
        "optimizer.learning_rate": 1e-4,
        "optimizer.params": {},
        "optimizer.lr_decay_type": "",
        "optimizer.lr_decay_steps": 100,
        "optimizer.lr_decay_rate": 0.99,
        "optimizer.lr_start_decay_at": 0,
        "optimizer.lr_stop_decay_at": 2147483647,
        "optimizer.lr_min_learning_rate": 1e-12,
        "optimizer.lr_staircase": False,
        "optimizer.clip_gradients": 5.0,
        "optimizer.sync_replicas": 0,
        "optimizer.sync_replicas_to_aggregate": 0,
    }


def test_unknown_loss_normalization_is_a_config_error():
    with pytest.raises(ConfigError, match="loss.normalize_by.*'tokens'.*'words'"):
        _model(**{"loss.normalize_by": "words"})


def test_constructor_name_mode_and_validation():
    model = _model(**{"optimizer.learning_rate": "3e-4"})
    assert model.name == "test_model" and model.mode == "train"
    assert model.params["optimizer.learning_rate"] == 3e-4
    with pytest.raises(ConfigError, match="optimizer.lr_decay_rate"):
        _model(**{"optimizer.lr_decay_ratee": 0.5})


def test_default_optimizer_is_adam_with_tf1_epsilon():
    opt = _model().create_optimizer()
    assert isinstance(opt, keras.optimizers.Adam)
    assert opt.epsilon == 1e-8
    assert float(opt.learning_rate) == pytest.approx(1e-4)


@pytest.mark.parametrize(
    "name, cls",
    [
        ("Adam", keras.optimizers.Adam),
        ("SGD", keras.optimizers.SGD),
        ("Adagrad", keras.optimizers.Adagrad),
        ("Adadelta", keras.optimizers.Adadelta),
        ("RMSProp", keras.optimizers.RMSprop),
        ("Ftrl", keras.optimizers.Ftrl),
        ("AdamW", keras.optimizers.AdamW),
        ("nadam", keras.optimizers.Nadam),
        ("LION", keras.optimizers.Lion),
        ("keras.optimizers.Adamax", keras.optimizers.Adamax),
    ],
)
def test_optimizer_names(name, cls):
    assert type(_optimizer(name).create_optimizer()) is cls


def test_params_pass_through_and_tf1_renames():
    opt = _optimizer("Adam", beta1=0.8, beta_2=0.95, epsilon=1e-6, amsgrad=True)
    opt = opt.create_optimizer()
    assert (opt.beta_1, opt.beta_2, opt.epsilon, opt.amsgrad) == (0.8, 0.95, 1e-6, True)
    rms = _optimizer("RMSProp", decay=0.8, momentum=0.1, centered=True)
    rms = rms.create_optimizer()
    assert (rms.rho, rms.momentum, rms.centered, rms.epsilon) == (0.8, 0.1, True, 1e-10)
    ada = _optimizer("Adagrad", initial_accumulator_value=0.5).create_optimizer()
    assert ada.initial_accumulator_value == 0.5
    ftrl = _optimizer("Ftrl", l1_regularization_strength=0.01).create_optimizer()
    assert ftrl.l1_regularization_strength == 0.01


def test_momentum_requires_momentum_and_maps_nesterov():
    opt = _optimizer("Momentum", momentum=0.9, use_nesterov=True).create_optimizer()
    assert isinstance(opt, keras.optimizers.SGD)
    assert (opt.momentum, opt.nesterov) == (0.9, True)
    with pytest.raises(ConfigError, match="optimizer.params.momentum"):
        _optimizer("Momentum").create_optimizer()


def test_use_locking_dropped_with_warning():
    with mock.patch.object(model_base.logging, "warning") as warning:
        opt = _optimizer("SGD", use_locking=True).create_optimizer()
    assert isinstance(opt, keras.optimizers.SGD)
    assert "use_locking" in warning.call_args[0][1]


def test_bad_param_names_valid_arguments():
    with pytest.raises(ConfigError) as err:
        _optimizer("Adam", beta3=0.5).create_optimizer()
    message = str(err.value)
    assert "'beta3'" in message and "keras.optimizers.Adam" in message
    assert "beta_1" in message and "amsgrad" in message
    with pytest.raises(ConfigError, match="'decay'"):
        _optimizer("Adam", decay=0.5).create_optimizer()
    with pytest.raises(ConfigError, match="optimizer.learning_rate"):
        _optimizer("SGD", learning_rate=0.1).create_optimizer()


def test_unknown_optimizer_name():
    with pytest.raises(ConfigError) as err:
        _optimizer("Adamm").create_optimizer()
    assert "Momentum" in str(err.value) and "RMSProp" in str(err.value)
    with pytest.raises(ConfigError) as err:
        _optimizer("keras.layers.Dense").create_optimizer()
    assert str(err.value) == (
        "optimizer 'keras.layers.Dense' is not a subclass of Optimizer; an "
        "optimizer class must subclass keras.Optimizer."
    )
    with pytest.raises(ConfigError, match="optimizer 'os.system' is not a subclass"):
        _optimizer("os.system").create_optimizer()


def test_learning_rate_schedule_attached():
    model = _model(
        **{
            "optimizer.name": "SGD",
            "optimizer.learning_rate": 0.5,
            "optimizer.lr_decay_type": "exponential_decay",
            "optimizer.lr_decay_steps": 10,
            "optimizer.lr_decay_rate": 0.5,
            "optimizer.lr_start_decay_at": 5,
        }
    )
    schedule = model.create_learning_rate()
    assert isinstance(schedule, LearningRateDecay)
    assert schedule.stop_decay_at == 2147483647
    assert schedule.min_learning_rate == 1e-12
    opt = model.create_optimizer()
    opt.iterations.assign(25)
    assert float(opt.learning_rate) == pytest.approx(0.5 * 0.5**2)
    with pytest.raises(ConfigError, match="lr_decay_type"):
        _model(**{"optimizer.lr_decay_type": "bogus"}).create_optimizer()


def test_sync_replicas_logs_and_is_ignored():
    model = _model(**{"optimizer.sync_replicas": 2})
    with mock.patch.object(model_base.logging, "info") as info:
        opt = model.create_optimizer()
    assert isinstance(opt, keras.optimizers.Adam)
    assert info.call_count == 1 and "tf.distribute" in info.call_args[0][0]


def test_clip_gradients_by_global_norm():
    grads = [tf.constant([3.0, 0.0]), None, tf.constant([[4.0]])]
    clipped, norm = _model(**{"optimizer.clip_gradients": 1.0}).clip_gradients(grads)
    assert float(norm) == pytest.approx(5.0)
    np.testing.assert_allclose(clipped[0], [0.6, 0.0], rtol=1e-6)
    assert clipped[1] is None
    np.testing.assert_allclose(clipped[2], [[0.8]], rtol=1e-6)
    # Below the threshold (default 5.0 against a norm of 5): unchanged.
    clipped, _ = _model().clip_gradients(grads)
    np.testing.assert_allclose(clipped[0], [3.0, 0.0], rtol=1e-6)


@pytest.mark.parametrize("threshold", [0.0, -1.0])
def test_clip_gradients_disabled(threshold):
    grads = [tf.constant([30.0, 40.0])]
    model = _model(**{"optimizer.clip_gradients": threshold})
    clipped, norm = model.clip_gradients(grads)
    assert float(norm) == pytest.approx(50.0)
    np.testing.assert_array_equal(clipped[0], [30.0, 40.0])


class _KerasModel(ModelBase, keras.Model):
    def __init__(self, params, mode, name="keras_model"):
        ModelBase.__init__(self, params, mode, name)
        self.dense = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")

    def call(self, inputs):
        return self.dense(inputs)


def test_keras_model_subclass_trains_one_step():
    model = _KerasModel(
        {
            "optimizer.name": "SGD",
            "optimizer.learning_rate": 0.1,
            "optimizer.clip_gradients": 1.0,
        },
        "train",
        name="tiny",
    )
    assert model.name == "tiny" and model.params["optimizer.name"] == "SGD"
    optimizer = model.create_optimizer()
    inputs = tf.constant([[3.0, 4.0]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(inputs))
    grads = tape.gradient(loss, model.trainable_variables)
    clipped, norm = model.clip_gradients(grads)
    optimizer.apply_gradients(zip(clipped, model.trainable_variables))
    assert float(norm) == pytest.approx(5.0)
    # kernel = 1 - 0.1 * [0.6, 0.8]
    np.testing.assert_allclose(model.dense.kernel.numpy()[:, 0], [0.94, 0.92], 1e-6)


class _PreInitLayer(ModelBase, keras.layers.Layer):
    def __init__(self, params, mode, name="pre"):
        keras.layers.Layer.__init__(self, name=name)
        self.dense = keras.layers.Dense(2)
        ModelBase.__init__(self, params, mode, name)

    def call(self, inputs):
        return self.dense(inputs)


def test_keras_layer_initialised_by_subclass_first_keeps_its_state():
    layer = _PreInitLayer({"optimizer.name": "SGD"}, "eval", name="pre_init")
    assert layer.name == "pre_init" and layer.mode == "eval"
    layer(tf.zeros([1, 3]))
    assert len(layer.trainable_variables) == 2  # the Dense survived


def test_flatten_dict():
    Pair = namedtuple("Pair", ["left", "right"])
    nested = {"a": {"b": 1, "c": {"d": 2}}, "e": Pair(3, 4), "f": [5]}
    assert model_base.flatten_dict(nested) == {
        "a.b": 1,
        "a.c.d": 2,
        "e.left": 3,
        "e.right": 4,
        "f": [5],
    }
