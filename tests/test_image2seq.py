"""Tests for image captioning: InceptionV3Encoder, ImageCaptioningInputPipeline,
Image2Seq and the synthetic data tool, trained and decoded end to end."""

import random

import numpy as np
import pytest
import tensorflow as tf
from checkpoint_layout import (
    ATTENTION_DECODER_KEYS,
    ATTENTION_DECODER_WEIGHTS,
    checkpoint_keys,
    weight_paths,
)

from bin.tools import make_image_captioning_data as shapes_tool
from seq2seq.configurable import ModeKeys
from seq2seq.data import batching
from seq2seq.data.image_pipeline import ImageCaptioningInputPipeline
from seq2seq.data.input_pipeline import make_input_pipeline_from_def
from seq2seq.encoders.image_encoder import InceptionV3Encoder
from seq2seq.errors import ConfigError, DataError, UserError
from seq2seq.inference import inference
from seq2seq.models.image2seq import Image2Seq
from seq2seq.tasks.decode_text import DecodeText
from seq2seq.tasks.inference_task import InferenceTask
from seq2seq.training import trainer as trainer_lib
from seq2seq.training.hooks import TrainingHook
from seq2seq.training.utils import TrainOptions

PIPELINE = "seq2seq.data.image_pipeline.ImageCaptioningInputPipeline"
MODEL = "seq2seq.models.image2seq.Image2Seq"


def tiny_encoder(size=32, **overrides):
    params = {"resize_height": size, "resize_width": size, "backbone": "tiny_cnn"}
    params.update(overrides)
    return params


def tiny_image2seq_params(vocab, encoder=None, **overrides):
    params = {
        "vocab_target": vocab,
        "embedding.dim": 16,
        "attention.params": {"num_units": 16},
        "encoder.params": encoder or tiny_encoder(),
        "decoder.params": {
            "rnn_cell": {"cell_class": "GRUCell", "cell_params": {"num_units": 16}},
            "max_decode_length": 8,
        },
        "optimizer.learning_rate": 0.01,
    }
    params.update(overrides)
    return params


def pipeline_def(files, size=32, **params):
    merged = {"files": list(files), "resize_height": size, "resize_width": size}
    merged.update(params)
    return {"class": PIPELINE, "params": merged}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """A tiny JPEG and a tiny PNG data set written by the tool."""
    root = tmp_path_factory.mktemp("shapes")
    jpg = shapes_tool.write_dataset(
        str(root / "jpg"), num_examples=12, image_size=32, seed=1
    )
    png = shapes_tool.write_dataset(
        str(root / "png"),
        num_examples=6,
        image_size=32,
        max_shapes=1,
        image_format="png",
        seed=2,
    )
    return {"jpg": jpg, "png": png, "vocab": jpg["vocab"]}


def _example(features):
    return tf.train.Example(features=tf.train.Features(feature=features))


def _bytes_feature(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _write_records(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record.SerializeToString())
    return str(path)


# ----------------------------------------------------------------- encoder


def test_inception_encoder_shapes_with_random_weights():
    encoder = InceptionV3Encoder(
        {"resize_height": 75, "resize_width": 75}, ModeKeys.INFER
    )
    # Images smaller than 75x75 and uint8 are resized and scaled first.
    images = np.random.RandomState(0).randint(0, 256, (2, 40, 50, 3)).astype(np.uint8)
    output = encoder(tf.constant(images))
    assert encoder.grid_size == (1, 1)
    assert output.outputs.shape == (2, 1, 2048)
    assert output.attention_values.shape == (2, 1, 2048)
    assert output.final_state.shape == (2, 2048)
    np.testing.assert_array_equal(output.attention_values_length.numpy(), [1, 1])
    # The same pictures as floats in [0, 1] encode the same.
    as_float = encoder(tf.constant(images.astype(np.float32) / 255.0))
    np.testing.assert_allclose(
        as_float.outputs.numpy(), output.outputs.numpy(), rtol=1e-4, atol=1e-4
    )


def test_tiny_backbone_grid_and_pooled_state():
    encoder = InceptionV3Encoder(tiny_encoder(32), ModeKeys.TRAIN)
    images = tf.random.uniform([3, 32, 32, 3], seed=1)
    output = encoder(images, training=True)
    # Two stride-2 convolutions: a 8x8 grid of 32-dim features, row-major.
    assert encoder.grid_size == (8, 8) and encoder.num_positions == 64
    assert output.outputs.shape == (3, 64, 32)
    feature_map = encoder.backbone(images * 2.0 - 1.0)
    np.testing.assert_allclose(
        output.outputs.numpy()[:, 8 * 2 + 5],
        feature_map.numpy()[:, 2, 5],
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        output.final_state.numpy(),
        feature_map.numpy().mean(axis=(1, 2)),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_array_equal(output.attention_values_length.numpy(), [64] * 3)


@pytest.mark.parametrize("value", ["imagenet", "weights.ckpt", "/no/such/file.h5"])
def test_bad_weights_value_is_a_config_error(value):
    with pytest.raises(ConfigError, match="weights"):
        InceptionV3Encoder({"weights": value}, ModeKeys.TRAIN)


def test_weights_file_is_loaded_in_train_mode_only(tmp_path):
    source = InceptionV3Encoder(tiny_encoder(16), ModeKeys.TRAIN)
    path = str(tmp_path / "tiny.weights.h5")
    source.backbone.save_weights(path)
    images = tf.random.uniform([1, 16, 16, 3], seed=2)
    loaded = InceptionV3Encoder(tiny_encoder(16, weights=path), ModeKeys.TRAIN)
    np.testing.assert_allclose(
        loaded(images).outputs.numpy(), source(images).outputs.numpy(), rtol=1e-6
    )
    # In infer mode the checkpoint provides the weights: a moved file is fine.
    InceptionV3Encoder(
        tiny_encoder(16, weights=str(tmp_path / "gone.weights.h5")), ModeKeys.INFER
    )


def test_encoder_config_errors():
    with pytest.raises(ConfigError, match="at least 75x75"):
        InceptionV3Encoder({"resize_height": 64, "resize_width": 80}, ModeKeys.TRAIN)
    with pytest.raises(ConfigError, match="backbone 'resnet'"):
        InceptionV3Encoder({"backbone": "resnet"}, ModeKeys.TRAIN)
    with pytest.raises(ConfigError, match="resize_heigth"):
        InceptionV3Encoder({"resize_heigth": 75}, ModeKeys.TRAIN)


def test_frozen_backbone_has_no_trainable_weights():
    encoder = InceptionV3Encoder(tiny_encoder(16, trainable=False), ModeKeys.TRAIN)
    assert encoder.trainable_weights == []
    assert len(encoder.weights) == 4


# -------------------------------------------------------------------- tool


def test_tool_writes_records_captions_and_vocab(tmp_path, capsys):
    out = tmp_path / "data"
    status = shapes_tool.main(
        [
            "--output_dir",
            str(out),
            "--num_examples",
            "5",
            "--image_size",
            "24",
            "--image_format",
            "png",
            "--seed",
            "4",
        ]
    )
    assert status == 0
    assert "captions.tfrecord" in capsys.readouterr().out
    vocab = (out / "vocab.txt").read_text().split()
    assert vocab == sorted(vocab) and {"red", "square", "and"} <= set(vocab)
    captions = (out / "captions.txt").read_text().splitlines()
    records = list(tf.data.TFRecordDataset(str(out / "captions.tfrecord")))
    assert len(records) == len(captions) == 5
    for raw, caption in zip(records, captions):
        feature = tf.train.Example.FromString(raw.numpy()).features.feature
        assert feature["image/caption"].bytes_list.value[0].decode() == caption
        ids = list(feature["image/caption_ids"].int64_list.value)
        assert [vocab[i] for i in ids] == caption.split()
        image = tf.io.decode_png(feature["image/data"].bytes_list.value[0])
        assert image.shape == (24, 24, 3)
    # The same seed gives the same data.
    again = tmp_path / "again"
    assert (
        shapes_tool.main(
            [
                "--output_dir",
                str(again),
                "--num_examples",
                "5",
                "--image_size",
                "24",
                "--image_format",
                "png",
                "--seed",
                "4",
            ]
        )
        == 0
    )
    assert (again / "captions.tfrecord").read_bytes() == (
        out / "captions.tfrecord"
    ).read_bytes()


def test_tool_draws_the_captioned_colour_and_shape():
    rng = random.Random(0)
    image = shapes_tool.make_image([("red", "square")], 20, rng)
    red = np.all(image == shapes_tool.COLOURS["red"], axis=-1)
    rows, cols = np.nonzero(red)
    # A filled square: its pixels fill their bounding box exactly.
    height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
    assert height == width and red.sum() == height * width >= 9
    circle = shapes_tool.make_image([("blue", "circle")], 20, random.Random(1))
    blue = np.all(circle == shapes_tool.COLOURS["blue"], axis=-1)
    rows, cols = np.nonzero(blue)
    box = (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
    assert 0.6 < blue.sum() / box < 0.9  # pi/4 of the box, roughly


def test_tool_usage_errors(tmp_path, capsys):
    assert shapes_tool.main(["--output_dir", str(tmp_path), "--image_size", "4"]) == 2
    assert "--image_size" in capsys.readouterr().err
    assert shapes_tool.main(["--output_dir", str(tmp_path), "--max_shapes", "0"]) == 2


# ---------------------------------------------------------------- pipeline


def test_pipeline_reads_jpeg_and_png_records(shapes):
    pipeline = make_input_pipeline_from_def(
        pipeline_def([shapes["jpg"]["tfrecord"], shapes["png"]["tfrecord"]], size=32),
        ModeKeys.EVAL,
        shuffle=False,
        num_epochs=1,
    )
    assert isinstance(pipeline, ImageCaptioningInputPipeline)
    examples = list(pipeline.make_dataset())
    captions = (
        open(shapes["jpg"]["captions"]).read().splitlines()
        + open(shapes["png"]["captions"]).read().splitlines()
    )
    assert len(examples) == len(captions) == 18
    assert pipeline.feature_keys == {"image", "source_len"}
    assert pipeline.label_keys == {"target_tokens", "target_len"}
    for example, caption in zip(examples, captions):
        image = example["image"].numpy()
        assert image.shape == (32, 32, 3) and image.dtype == np.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
        tokens = [t.decode() for t in example["target_tokens"].numpy()]
        assert tokens == ["SEQUENCE_START", *caption.split(), "SEQUENCE_END"]
        assert int(example["target_len"]) == len(tokens)
        assert int(example["source_len"]) == 1


def test_png_pixels_round_trip_and_images_are_resized(shapes):
    raw = next(iter(tf.data.TFRecordDataset(shapes["png"]["tfrecord"])))
    encoded = tf.train.Example.FromString(raw.numpy()).features.feature["image/data"]
    original = tf.io.decode_png(encoded.bytes_list.value[0]).numpy()
    same_size = ImageCaptioningInputPipeline(
        {"files": [shapes["png"]["tfrecord"]], "resize_height": 32, "resize_width": 32},
        ModeKeys.INFER,
    )
    first = next(iter(same_size.make_dataset()))["image"].numpy()
    np.testing.assert_allclose(first, original / 255.0, atol=1e-6)
    resized = ImageCaptioningInputPipeline(
        {"files": [shapes["png"]["tfrecord"]], "resize_height": 20, "resize_width": 40},
        ModeKeys.INFER,
    )
    assert next(iter(resized.make_dataset()))["image"].shape == (20, 40, 3)


def test_pipeline_batches_pad_cleanly(shapes):
    pipeline = ImageCaptioningInputPipeline(
        {"files": [shapes["jpg"]["tfrecord"]], "resize_height": 32, "resize_width": 32},
        ModeKeys.TRAIN,
    )
    batch = next(iter(batching.create_input_fn(pipeline, batch_size=4)))
    assert batch["image"].shape == (4, 32, 32, 3)
    assert batch["target_tokens"].shape[0] == 4
    np.testing.assert_array_equal(batch["source_len"].numpy(), [1, 1, 1, 1])


def test_sequence_example_token_captions_and_grayscale(tmp_path):
    gray = tf.io.encode_png(np.full((10, 12, 1), 128, np.uint8)).numpy()
    record = tf.train.SequenceExample()
    record.context.feature["image/data"].bytes_list.value.append(gray)
    tokens = record.feature_lists.feature_list["image/caption"]
    for token in [b"a", b"gray", b"", b"picture"]:
        tokens.feature.add().bytes_list.value.append(token)
    path = _write_records(tmp_path / "seq.tfrecord", [record])
    pipeline = ImageCaptioningInputPipeline(
        {"files": [path], "resize_height": 10, "resize_width": 12}, ModeKeys.TRAIN
    )
    example = next(iter(pipeline.make_dataset()))
    assert [t.decode() for t in example["target_tokens"].numpy()] == [
        "SEQUENCE_START",
        "a",
        "gray",
        "picture",
        "SEQUENCE_END",
    ]
    image = example["image"].numpy()
    assert image.shape == (10, 12, 3)
    np.testing.assert_allclose(image, 128 / 255.0, atol=1e-6)


def test_pipeline_without_captions(tmp_path, shapes):
    raw = next(iter(tf.data.TFRecordDataset(shapes["png"]["tfrecord"])))
    feature = tf.train.Example.FromString(raw.numpy()).features.feature
    path = _write_records(
        tmp_path / "images.tfrecord",
        [_example({"image/data": feature["image/data"]})] * 3,
    )
    params = {"files": [path], "resize_height": 32, "resize_width": 32}
    with pytest.raises(ConfigError, match="no caption 'image/caption'"):
        ImageCaptioningInputPipeline(params, ModeKeys.TRAIN).make_dataset()
    infer = ImageCaptioningInputPipeline(params, ModeKeys.INFER)
    examples = list(infer.make_dataset())
    assert len(examples) == 3 and set(examples[0]) == {"image", "source_len"}
    assert infer.label_keys == set()


def test_pipeline_data_errors(tmp_path):
    params = {"resize_height": 8, "resize_width": 8}
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a tfrecord\n")
    with pytest.raises(DataError, match="notes.txt is not a readable file"):
        ImageCaptioningInputPipeline(
            {"files": [str(text_file)], **params}, ModeKeys.TRAIN
        ).make_dataset()
    wrong_field = _write_records(
        tmp_path / "wrong.tfrecord",
        [
            _example(
                {"picture": _bytes_feature(b"x"), "image/caption": _bytes_feature(b"a")}
            )
        ],
    )
    with pytest.raises(DataError, match="no bytes feature 'image/data'.*picture"):
        ImageCaptioningInputPipeline(
            {"files": [wrong_field], **params}, ModeKeys.TRAIN
        ).make_dataset()
    broken = _write_records(
        tmp_path / "broken.tfrecord",
        [
            _example(
                {
                    "image/data": _bytes_feature(b"garbage"),
                    "image/caption": _bytes_feature(b"a"),
                }
            )
        ],
    )
    with pytest.raises(DataError, match="does not decode"):
        ImageCaptioningInputPipeline(
            {"files": [broken], **params}, ModeKeys.TRAIN
        ).make_dataset()
    with pytest.raises(DataError, match="not found"):
        ImageCaptioningInputPipeline(
            {"files": [str(tmp_path / "missing.tfrecord")], **params}, ModeKeys.TRAIN
        ).make_dataset()
    with pytest.raises(ConfigError, match="'files' is empty"):
        ImageCaptioningInputPipeline(params, ModeKeys.TRAIN).make_dataset()
    with pytest.raises(ConfigError, match="image_format 'tiff'"):
        ImageCaptioningInputPipeline({"image_format": "tiff"}, ModeKeys.TRAIN)


# ------------------------------------------------------------------- model


def test_model_params_follow_the_original(shapes):
    defaults = Image2Seq.default_params()
    assert defaults["encoder.class"] == "seq2seq.encoders.InceptionV3Encoder"
    assert defaults["decoder.class"] == "seq2seq.decoders.AttentionDecoder"
    assert defaults["bridge.class"] == "seq2seq.models.bridges.ZeroBridge"
    assert defaults["attention.params"] == {"num_units": 128}
    assert defaults["target.max_seq_len"] == 50
    for key in ("vocab_source", "source.reverse", "source.max_seq_len"):
        assert key not in defaults
    with pytest.raises(ConfigError, match="vocab_source"):
        Image2Seq(tiny_image2seq_params(shapes["vocab"], vocab_source="v"), "train")
    with pytest.raises(ConfigError, match="vocab_target' is not set.*caption"):
        Image2Seq(tiny_image2seq_params(""), ModeKeys.TRAIN)
    with pytest.raises(ConfigError, match="loss.label_smoothing must be in"):
        Image2Seq(
            tiny_image2seq_params(shapes["vocab"], **{"loss.label_smoothing": 1.0}),
            ModeKeys.TRAIN,
        )


def test_checkpoint_layout_is_pinned(shapes, tmp_path):
    # Saved checkpoints depend on both lists (see tests/checkpoint_layout.py):
    # a change here means that existing checkpoints no longer load.
    model = Image2Seq(tiny_image2seq_params(shapes["vocab"]), ModeKeys.TRAIN)
    features = model.preprocess(
        {
            "image": tf.zeros([1, 32, 32, 3]),
            "target_tokens": tf.constant([["SEQUENCE_START", "red", "SEQUENCE_END"]]),
            "target_len": tf.constant([3]),
        }
    )
    model.forward(features, training=False)
    assert weight_paths(model) == [
        "image_seq2seq/target_embedding",
        "tiny_conv1/kernel",
        "tiny_conv1/bias",
        "tiny_conv2/kernel",
        "tiny_conv2/bias",
        *ATTENTION_DECODER_WEIGHTS,
    ]
    assert checkpoint_keys(model, str(tmp_path)) == [
        *ATTENTION_DECODER_KEYS,
        "encoder/backbone/_operations/1/_kernel",
        "encoder/backbone/_operations/1/bias",
        "encoder/backbone/_operations/2/_kernel",
        "encoder/backbone/_operations/2/bias",
        "target_embedding",
    ]


def test_preprocess_puts_images_under_source_ids(shapes):
    model = Image2Seq(
        tiny_image2seq_params(shapes["vocab"], **{"target.max_seq_len": 3}),
        ModeKeys.TRAIN,
    )
    vocab = open(shapes["vocab"]).read().split()
    features = model.preprocess(
        {
            "image": tf.fill([2, 32, 32, 3], tf.constant(255, tf.uint8)),
            "source_len": tf.constant([1, 1]),
            "target_tokens": tf.constant(
                [
                    ["SEQUENCE_START", "red", "square", "SEQUENCE_END"],
                    ["SEQUENCE_START", "blue", "SEQUENCE_END", ""],
                ]
            ),
            "target_len": tf.constant([4, 3]),
        }
    )
    assert "image" not in features
    assert features["source_ids"].dtype == tf.float32
    np.testing.assert_array_equal(features["source_ids"].numpy(), 1.0)
    np.testing.assert_array_equal(features["source_len"].numpy(), [64, 64])
    labels = features["source_tokens"].numpy()
    assert labels.shape == (2, 64)
    assert labels[1, 0] == b"r0c0" and labels[1, 8 * 2 + 5] == b"r2c5"
    start, end = len(vocab) + 1, len(vocab) + 2
    np.testing.assert_array_equal(
        features["target_ids"].numpy(),
        [
            [start, vocab.index("red"), vocab.index("square")],
            [start, vocab.index("blue"), end],
        ],
    )
    np.testing.assert_array_equal(features["target_len"].numpy(), [3, 3])
    np.testing.assert_array_equal(features["target_tokens_len"].numpy(), [4, 3])
    with pytest.raises(UserError, match="'image'"):
        model.preprocess({"source_tokens": tf.constant([["a"]])})


def test_inception_model_trains_its_backbone(shapes):
    model = Image2Seq(
        tiny_image2seq_params(
            shapes["vocab"], encoder={"resize_height": 75, "resize_width": 75}
        ),
        ModeKeys.TRAIN,
    )
    assert model.num_positions == 1
    features = model.preprocess(
        {
            "image": tf.random.uniform([2, 32, 32, 3], seed=3),
            "target_tokens": tf.constant(
                [["SEQUENCE_START", "red", "SEQUENCE_END"]] * 2
            ),
            "target_len": tf.constant([3, 3]),
        }
    )
    with tf.GradientTape() as tape:
        output = model.forward(features, training=True)
    variables = model.trainable_variables
    gradients = tape.gradient(output.loss, variables)
    backbone = {id(v) for v in model.encoder.backbone.trainable_variables}
    assert len(backbone) > 100
    assert all(g is not None for g, v in zip(gradients, variables) if id(v) in backbone)
    assert np.isfinite(output.loss.numpy()) and output.logits.shape[:2] == (2, 2)
    assert model.embedding_variables == [model.target_embedding]


class _LossLog(TrainingHook):
    def __init__(self):
        super().__init__({}, model_dir="")
        self.values = []

    def after_step(self, step, features, outputs):
        self.values.append(float(outputs["loss"]))


class _Collect(InferenceTask):
    def __init__(self):
        super().__init__({})
        self.batches = []

    def process_batch(self, predictions):
        self.batches.append(predictions)


def test_train_evaluate_and_decode_end_to_end(shapes, tmp_path):
    """Trainer + RunConfig on generated images, then greedy and beam decoding
    through the inference driver, all through the text models' code paths."""
    out = str(tmp_path / "model")
    options = TrainOptions.from_model(MODEL, tiny_image2seq_params(shapes["vocab"]))
    trainer_lib.check_and_write_train_options(options, out)
    train = make_input_pipeline_from_def(
        pipeline_def([shapes["jpg"]["tfrecord"]]), ModeKeys.TRAIN
    )
    dev = make_input_pipeline_from_def(
        pipeline_def([shapes["png"]["tfrecord"]]),
        ModeKeys.EVAL,
        shuffle=False,
        num_epochs=1,
    )
    config = trainer_lib.RunConfig(
        output_dir=out,
        batch_size=4,
        train_steps=25,
        eval_every_n_steps=0,
        save_checkpoints_steps=25,
        log_every_n_steps=25,
        tf_random_seed=5,
    )
    trainer = trainer_lib.Trainer(
        options, train, dev, config, metrics=[{"class": "BleuMetricSpec"}]
    )
    losses = _LossLog()
    trainer.hooks.append(losses)
    assert trainer.train() == 25
    assert tf.train.latest_checkpoint(out).endswith("ckpt-25")
    assert len(losses.values) == 25
    assert np.mean(losses.values[-5:]) < np.mean(losses.values[:5])
    results = trainer.evaluate()
    # Teacher-forced loss and greedy BLEU, whatever their result names.
    assert any(name.startswith("loss") for name in results)
    assert any(name.startswith("bleu") for name in results)
    assert all(np.isfinite(value) for value in results.values())

    captions = open(shapes["png"]["captions"]).read().splitlines()
    for beam_width in (0, 3):
        model = inference.build_model(
            TrainOptions.load(out), {"inference.beam_search.beam_width": beam_width}
        )
        pipeline = make_input_pipeline_from_def(
            pipeline_def([shapes["png"]["tfrecord"]]),
            ModeKeys.INFER,
            shuffle=False,
            num_epochs=1,
        )
        output = tmp_path / f"captions_{beam_width}.txt"
        collect = _Collect()
        count = inference.run_inference(
            model,
            pipeline,
            [DecodeText({"output": str(output)}), collect],
            batch_size=4,
            checkpoint_path=inference.resolve_checkpoint(out),
            progress=False,
        )
        assert count == len(captions) == 6
        lines = output.read_text().splitlines()
        assert len(lines) == 6
        vocab = set(open(shapes["vocab"]).read().split()) | {"UNK"}
        assert all(set(line.split()) <= vocab for line in lines)
        batch = collect.batches[0]
        assert batch["source_tokens"].shape == (4, 64)
        assert batch["attention_scores"].shape[0] == 4
        assert batch["attention_scores"].shape[2] == 64
        if beam_width:
            assert batch["beam_search_output.predicted_ids"].shape[2] == 3


def test_encoder_class_must_be_an_encoder_also_in_the_image_fallback():
    from seq2seq.models import image2seq

    assert (
        image2seq._locate_encoder_class("seq2seq.encoders.InceptionV3Encoder")
        is InceptionV3Encoder
    )
    # `os` and `EncoderOutput` are names in the image encoder module.
    for name in ("seq2seq.encoders.os", "seq2seq.encoders.EncoderOutput", "os.system"):
        with pytest.raises(ConfigError, match="is not a subclass of Encoder"):
            image2seq._locate_encoder_class(name)
