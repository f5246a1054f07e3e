"""Runs trainers under tf.distribute in a fresh process (for test_distribution).

Strategies need their devices configured before TensorFlow starts, so the
tests run this script in subprocesses:

  mirrored DATA_DIR OUT_DIR
      Trains the same tiny model from the same weights on the same batches
      with MirroredStrategy over two logical CPUs and on one device, and
      writes their per-step losses and final weights to OUT_DIR/results.npz.
      Also trains one with scheduled sampling under the strategy.
  worker DATA_DIR OUT_DIR INDEX PORT0 PORT1
      One of two multi_worker_mirrored workers on 127.0.0.1; trains 4 steps
      into OUT_DIR/model and writes its final weights to
      OUT_DIR/worker{INDEX}.npz.
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _trainer(data_dir, output_dir, strategy=None, model_params=None, **config):
    from conftest import text_pipeline, tiny_model_params

    from seq2seq.configurable import ModeKeys
    from seq2seq.data.input_pipeline import make_input_pipeline_from_def
    from seq2seq.training import trainer as trainer_lib
    from seq2seq.training.utils import TrainOptions

    vocab = os.path.join(data_dir, "vocab.txt")
    paths = {
        "sources": os.path.join(data_dir, "sources.txt"),
        "targets": os.path.join(data_dir, "targets.txt"),
    }
    params = model_params or tiny_model_params(vocab)
    options = TrainOptions.from_model("AttentionSeq2Seq", params)
    train = make_input_pipeline_from_def(text_pipeline(paths), ModeKeys.TRAIN)
    run_config = trainer_lib.RunConfig(
        output_dir=output_dir,
        batch_size=16,
        save_checkpoints_steps=config.pop("save_checkpoints_steps", 100),
        log_every_n_steps=1,
        tf_random_seed=3,
        **config,
    )
    return trainer_lib.Trainer(options, train, None, run_config, strategy=strategy)


def _weights(trainer):
    return [v.numpy() for v in trainer.model.weights]


def mirrored(data_dir, out_dir):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    from conftest import tiny_model_params

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    single = _trainer(data_dir, os.path.join(out_dir, "single"))
    twin = _trainer(data_dir, os.path.join(out_dir, "mirrored"), strategy=strategy)
    assert twin.strategy.num_replicas_in_sync == 2
    batches = [next(single._iterator) for _ in range(4)]
    single._build(batches[0])
    twin._build(batches[0])
    for target, source in zip(twin.model.weights, single.model.weights):
        target.assign(source)
    losses = {"single": [], "mirrored": []}
    from seq2seq.training.train_step import TrainStep

    for name, trainer in (("single", single), ("mirrored", twin)):
        # Under a strategy embedding gradients are dense; the one-device
        # reference makes them dense too.
        step = TrainStep(
            trainer.model,
            trainer.optimizer,
            trainer.train_dataset.element_spec,
            strategy=trainer.strategy,
            seed=3,
            dense_gradients=True,
        )
        assert step.dense_gradients
        for batch in batches:
            outputs = step(batch)
            assert bool(outputs["applied"])
            losses[name].append(float(outputs["loss"]))
        assert trainer.step == len(batches)
    arrays = {f"loss_{k}": np.array(v) for k, v in losses.items()}
    for i, (a, b) in enumerate(zip(_weights(single), _weights(twin))):
        arrays[f"single_{i}"] = a
        arrays[f"mirrored_{i}"] = b

    # Scheduled sampling, trained under the strategy (random draws per replica).
    params = tiny_model_params(os.path.join(data_dir, "vocab.txt"))
    params["decoder.params"]["scheduled_sampling.type"] = "constant"
    params["decoder.params"]["scheduled_sampling.probability"] = 0.5
    sampled = _trainer(
        data_dir,
        os.path.join(out_dir, "sampled"),
        strategy=strategy,
        model_params=params,
        train_steps=5,
    )
    sampled.train()
    arrays["sampled_steps"] = np.array(sampled.step)
    arrays["sampled_finite"] = np.array(sampled.weights_are_finite())
    np.savez(os.path.join(out_dir, "results.npz"), **arrays)
    print("OK")


def worker(data_dir, out_dir, index, port0, port1):
    os.environ["TF_CONFIG"] = json.dumps(
        {
            "cluster": {"worker": [f"127.0.0.1:{port0}", f"127.0.0.1:{port1}"]},
            "task": {"type": "worker", "index": int(index)},
        }
    )
    from seq2seq.training import distribution

    # Before any other TensorFlow op: collectives are configured at startup.
    strategy = distribution.create_strategy("multi_worker_mirrored")
    trainer = _trainer(
        data_dir,
        os.path.join(out_dir, "model"),
        strategy=strategy,
        train_steps=4,
        save_checkpoints_steps=2,
    )
    assert trainer.is_chief == (int(index) == 0)
    assert trainer.strategy.num_replicas_in_sync == 2
    trainer.train()
    arrays = {f"w{i}": w for i, w in enumerate(_weights(trainer))}
    arrays["step"] = np.array(trainer.step)
    np.savez(os.path.join(out_dir, f"worker{index}.npz"), **arrays)
    print("OK")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    mode, *args = sys.argv[1:]
    {"mirrored": mirrored, "worker": worker}[mode](*args)
