"""Tests for seq2seq.data.input_pipeline."""

import pytest
import tensorflow as tf

from seq2seq.configurable import ModeKeys
from seq2seq.data import input_pipeline as ip
from seq2seq.errors import ConfigError, DataError

END = "SEQUENCE_END"
START = "SEQUENCE_START"


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return str(path)


def decode(tensor):
    return [token.decode("utf-8") for token in tensor.numpy().tolist()]


def collect(dataset, limit=None):
    if limit is not None:
        dataset = dataset.take(limit)
    examples = []
    for item in dataset:
        example = {}
        for key, value in item.items():
            example[key] = (
                decode(value) if value.dtype == tf.string else int(value.numpy())
            )
        examples.append(example)
    return examples


def text_pipeline(mode=ModeKeys.EVAL, **params):
    return ip.ParallelTextInputPipeline(params, mode)


def sources_of(examples):
    return [" ".join(e["source_tokens"][:-1]) for e in examples]


def test_default_params_match_original():
    params = ip.ParallelTextInputPipeline.default_params()
    assert params["shuffle"] is True
    assert params["num_epochs"] is None
    assert params["source_files"] == [] and params["target_files"] == []
    assert params["source_delimiter"] == " " and params["target_delimiter"] == " "
    tf_params = ip.TFRecordInputPipeline.default_params()
    assert (
        tf_params["source_field"] == "source" and tf_params["target_field"] == "target"
    )


def test_parallel_text_tokens_and_lengths(tmp_path):
    src = write(tmp_path, "s.txt", "a b c\nd\n")
    tgt = write(tmp_path, "t.txt", "x y\nz w v\n")
    pipeline = text_pipeline(source_files=[src], target_files=[tgt])
    assert pipeline.feature_keys == {"source_tokens", "source_len"}
    assert pipeline.label_keys == {"target_tokens", "target_len"}
    dataset = pipeline.make_dataset()
    spec = dataset.element_spec
    assert spec["source_tokens"].shape.as_list() == [None]
    assert spec["source_tokens"].dtype == tf.string
    assert (
        spec["source_len"].shape.as_list() == []
        and spec["source_len"].dtype == tf.int32
    )
    assert spec["target_tokens"].shape.as_list() == [None]
    assert spec["target_len"].dtype == tf.int32
    assert collect(dataset) == [
        {
            "source_tokens": ["a", "b", "c", END],
            "source_len": 4,
            "target_tokens": [START, "x", "y", END],
            "target_len": 4,
        },
        {
            "source_tokens": ["d", END],
            "source_len": 2,
            "target_tokens": [START, "z", "w", "v", END],
            "target_len": 5,
        },
    ]
    assert pipeline.num_examples == 2


def test_inference_without_targets(tmp_path):
    src = write(tmp_path, "s.txt", "a b\n")
    pipeline = text_pipeline(ModeKeys.INFER, source_files=[src])
    assert pipeline.label_keys == set()
    dataset = pipeline.make_dataset()
    assert set(dataset.element_spec) == {"source_tokens", "source_len"}
    assert collect(dataset) == [{"source_tokens": ["a", "b", END], "source_len": 3}]


@pytest.mark.parametrize("mode", [ModeKeys.TRAIN, ModeKeys.EVAL])
def test_training_needs_targets(tmp_path, mode):
    src = write(tmp_path, "s.txt", "a b\n")
    with pytest.raises(ConfigError, match="target_files' is empty"):
        text_pipeline(mode, source_files=[src]).make_dataset()


def test_order_kept_without_shuffle_and_outside_train(tmp_path):
    lines = [f"w{i}" for i in range(40)]
    src = write(tmp_path, "s.txt", "\n".join(lines) + "\n")
    tgt = write(tmp_path, "t.txt", "\n".join(lines) + "\n")
    # Eval mode ignores shuffle: true and reads once.
    evaluated = collect(
        text_pipeline(ModeKeys.EVAL, source_files=src, target_files=tgt).make_dataset()
    )
    assert sources_of(evaluated) == lines
    # Train mode without shuffle repeats forever, in order.
    trained = text_pipeline(
        ModeKeys.TRAIN, source_files=[src], target_files=[tgt], shuffle=False
    )
    assert sources_of(collect(trained.make_dataset(), limit=100)) == (lines * 3)[:100]


def test_shuffle_in_train_mode(tmp_path):
    lines = [f"w{i}" for i in range(60)]
    src = write(tmp_path, "s.txt", "\n".join(lines) + "\n")
    tgt = write(tmp_path, "t.txt", "\n".join(f"t{i}" for i in range(60)) + "\n")
    pipeline = text_pipeline(
        ModeKeys.TRAIN, source_files=[src], target_files=[tgt], num_epochs=1
    )
    examples = collect(pipeline.make_dataset())
    got = sources_of(examples)
    assert sorted(got) == sorted(lines)
    assert got != lines
    # Shuffling keeps each pair together.
    for example in examples:
        assert example["source_tokens"][0][1:] == example["target_tokens"][1][1:]


def test_num_epochs(tmp_path):
    src = write(tmp_path, "s.txt", "a\nb\n")
    tgt = write(tmp_path, "t.txt", "c\nd\n")
    pipeline = text_pipeline(source_files=[src], target_files=[tgt], num_epochs=3)
    assert sources_of(collect(pipeline.make_dataset())) == ["a", "b"] * 3


@pytest.mark.parametrize("value", [0, -2, 1.5, "many", True])
def test_bad_num_epochs(value):
    with pytest.raises(ConfigError, match="num_epochs"):
        text_pipeline(num_epochs=value)


def test_blank_lines_kept(tmp_path):
    src = write(tmp_path, "s.txt", "a b\n\nc\n")
    tgt = write(tmp_path, "t.txt", "\nx\ny\n")
    examples = collect(
        text_pipeline(source_files=[src], target_files=[tgt]).make_dataset()
    )
    assert len(examples) == 3
    assert examples[1]["source_tokens"] == [END] and examples[1]["source_len"] == 1
    assert (
        examples[0]["target_tokens"] == [START, END] and examples[0]["target_len"] == 2
    )
    assert examples[2]["source_tokens"] == ["c", END]


def test_character_level_uses_unicode_characters(tmp_path):
    src = write(tmp_path, "s.txt", "a笑 b\n")
    tgt = write(tmp_path, "t.txt", "笑笑\n")
    pipeline = text_pipeline(
        source_files=[src], target_files=[tgt], source_delimiter="", target_delimiter=""
    )
    (example,) = collect(pipeline.make_dataset())
    assert example["source_tokens"] == ["a", "笑", " ", "b", END]
    assert example["source_len"] == 5
    assert example["target_tokens"] == [START, "笑", "笑", END]


def test_non_utf8_bytes_become_replacement_characters(tmp_path):
    src = write(tmp_path, "s.txt", b"ok \xff\xfe bad\xc3 \xe7\xac\x91\n")
    tgt = write(tmp_path, "t.txt", b"\x80\n")
    pipeline = text_pipeline(source_files=[src], target_files=[tgt])
    (example,) = collect(pipeline.make_dataset())
    assert example["source_tokens"] == ["ok", "\ufffd\ufffd", "bad\ufffd", "笑", END]
    assert example["target_tokens"] == [START, "\ufffd", END]
    chars = text_pipeline(ModeKeys.INFER, source_files=[src], source_delimiter="")
    (example,) = collect(chars.make_dataset())
    assert example["source_tokens"][3:5] == ["\ufffd", "\ufffd"]


def test_very_long_line_is_not_truncated(tmp_path):
    tokens = [f"t{i % 97}" for i in range(5000)]
    src = write(tmp_path, "s.txt", " ".join(tokens) + "\nshort\n")
    tgt = write(tmp_path, "t.txt", "x\n" + " ".join(tokens) + "\n")
    examples = collect(
        text_pipeline(source_files=[src], target_files=[tgt]).make_dataset()
    )
    assert examples[0]["source_len"] == 5001
    assert examples[0]["source_tokens"][:-1] == tokens
    assert examples[1]["target_len"] == 5002


def test_multiple_spaces_make_no_empty_tokens(tmp_path):
    src = write(tmp_path, "s.txt", "  a   b \t c  \n")
    tgt = write(tmp_path, "t.txt", "x  y\r\n")
    (example,) = collect(
        text_pipeline(source_files=[src], target_files=[tgt]).make_dataset()
    )
    assert example["source_tokens"] == ["a", "b", "\t", "c", END]
    assert example["target_tokens"] == [START, "x", "y", END]


def test_custom_and_multi_character_delimiters(tmp_path):
    src = write(tmp_path, "s.txt", "a|b||c\n")
    tgt = write(tmp_path, "t.txt", "x,y;z w\n")
    pipeline = text_pipeline(
        source_files=[src],
        target_files=[tgt],
        source_delimiter="|",
        target_delimiter=",;",
    )
    (example,) = collect(pipeline.make_dataset())
    assert example["source_tokens"] == ["a", "b", "c", END]
    assert example["target_tokens"] == [START, "x", "y", "z w", END]


def test_several_files_read_in_order_and_zipped(tmp_path):
    s1 = write(tmp_path, "s1.txt", "a\nb\n")
    s2 = write(tmp_path, "s2.txt", "c\nd\ne")  # no final newline: still a line
    t1 = write(tmp_path, "t1.txt", "A\nB\nC\n")
    t2 = write(tmp_path, "t2.txt", "D\nE\n")
    pipeline = text_pipeline(source_files=[s1, s2], target_files=[t1, t2])
    examples = collect(pipeline.make_dataset())
    assert sources_of(examples) == ["a", "b", "c", "d", "e"]
    assert [e["target_tokens"][1] for e in examples] == ["A", "B", "C", "D", "E"]
    assert pipeline.num_examples == 5


def test_glob_patterns(tmp_path):
    write(tmp_path, "part-1.src", "a\n")
    write(tmp_path, "part-0.src", "b\n")
    pattern = str(tmp_path / "part-*.src")
    pipeline = text_pipeline(ModeKeys.INFER, source_files=[pattern])
    assert sources_of(collect(pipeline.make_dataset())) == ["b", "a"]
    nothing = text_pipeline(ModeKeys.INFER, source_files=[str(tmp_path / "none-*.src")])
    with pytest.raises(
        DataError, match="none-\\*.src in 'source_files' matches no file"
    ):
        nothing.make_dataset()


def test_empty_source_list():
    with pytest.raises(ConfigError, match="'source_files' is empty"):
        text_pipeline(ModeKeys.INFER).make_dataset()


def test_missing_files(tmp_path):
    src = write(tmp_path, "s.txt", "a\n")
    missing = str(tmp_path / "missing.txt")
    with pytest.raises(DataError, match=f"'source_files' not found: {missing}"):
        text_pipeline(source_files=[missing], target_files=[src]).make_dataset()
    with pytest.raises(DataError, match=f"'target_files' not found: {missing}"):
        text_pipeline(source_files=[src], target_files=[missing]).make_dataset()


def test_mismatched_line_counts(tmp_path):
    src = write(tmp_path, "s.txt", "a\nb\nc\n")
    tgt = write(tmp_path, "t.txt", "x\ny\n")
    pipeline = text_pipeline(ModeKeys.TRAIN, source_files=[src], target_files=[tgt])
    with pytest.raises(DataError) as info:
        pipeline.make_dataset()
    message = str(info.value)
    assert f"{src} has 3 lines" in message and f"{tgt} has 2 lines" in message
    assert "\n" not in message


def test_mismatched_line_counts_several_files(tmp_path):
    s1 = write(tmp_path, "s1.txt", "a\n")
    s2 = write(tmp_path, "s2.txt", "b\n")
    t1 = write(tmp_path, "t1.txt", "x\n")
    with pytest.raises(DataError, match=r"\(1\), .*s2.txt \(1\) have 2 lines in total"):
        text_pipeline(source_files=[s1, s2], target_files=[t1]).make_dataset()


def test_empty_corpus(tmp_path):
    src = write(tmp_path, "s.txt", "")
    tgt = write(tmp_path, "t.txt", "")
    with pytest.raises(DataError, match="contain no lines"):
        text_pipeline(source_files=[src], target_files=[tgt]).make_dataset()


def test_count_lines_matches_text_line_dataset(tmp_path):
    for index, content in enumerate(
        ["", "\n", "a", "a\n", "a\n\nb", "a\r\nb\r\n", "\n\n\n"]
    ):
        path = write(tmp_path, f"f{index}.txt", content)
        expected = sum(1 for _ in tf.data.TextLineDataset(path))
        assert ip.count_lines(path) == expected, repr(content)
        assert ip.count_lines(path, chunk_size=1) == expected, repr(content)


def test_make_from_def_dict_and_yaml(tmp_path):
    src = write(tmp_path, "s.txt", "a\n")
    tgt = write(tmp_path, "t.txt", "b\n")
    pipeline = ip.make_input_pipeline_from_def(
        {"class": "ParallelTextInputPipeline", "params": {"source_files": [src]}},
        ModeKeys.TRAIN,
        target_files=[tgt],
        shuffle=False,
        num_epochs=1,
    )
    assert isinstance(pipeline, ip.ParallelTextInputPipeline)
    assert pipeline.mode == ModeKeys.TRAIN
    assert pipeline.params["shuffle"] is False and pipeline.params["num_epochs"] == 1
    assert len(collect(pipeline.make_dataset())) == 1
    yaml_text = f"class: seq2seq.data.input_pipeline.ParallelTextInputPipeline\nparams:\n  source_files: [{src}]\n"
    from_yaml = ip.make_input_pipeline_from_def(yaml_text, ModeKeys.INFER)
    assert from_yaml.params["source_files"] == [src]


@pytest.mark.parametrize(
    "definition, pattern",
    [
        ({"params": {}}, "needs a 'class' key"),
        ({"class": "NoSuchPipeline"}, "unknown input pipeline 'NoSuchPipeline'"),
        ({"class": "ParallelTextInputPipeline", "extra": 1}, "unexpected key"),
        (
            {"class": "ParallelTextInputPipeline", "params": {"source_file": []}},
            "source_files",
        ),
        (
            {"class": "os"},
            "input pipeline 'os' is not a subclass of InputPipeline; an input "
            "pipeline class must subclass seq2seq.data.input_pipeline.InputPipeline",
        ),
        ({"class": "os.system"}, "input pipeline 'os.system' is not a subclass"),
    ],
)
def test_make_from_def_errors(definition, pattern):
    with pytest.raises(ConfigError, match=pattern):
        ip.make_input_pipeline_from_def(definition, ModeKeys.TRAIN)


def _write_records(path, records):
    with tf.io.TFRecordWriter(path) as writer:
        for fields in records:
            feature = {
                key: tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[value.encode("utf-8")])
                )
                for key, value in fields.items()
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())
    return path


def test_tfrecord_pipeline(tmp_path):
    path = _write_records(
        str(tmp_path / "data.tfrecord"),
        [{"src": "a b", "tgt": "x"}, {"src": "笑", "tgt": "y  z"}],
    )
    pipeline = ip.TFRecordInputPipeline(
        {"files": [path], "source_field": "src", "target_field": "tgt"}, ModeKeys.EVAL
    )
    assert pipeline.label_keys == {"target_tokens", "target_len"}
    assert collect(pipeline.make_dataset()) == [
        {
            "source_tokens": ["a", "b", END],
            "source_len": 3,
            "target_tokens": [START, "x", END],
            "target_len": 3,
        },
        {
            "source_tokens": ["笑", END],
            "source_len": 2,
            "target_tokens": [START, "y", "z", END],
            "target_len": 4,
        },
    ]


def test_tfrecord_without_targets(tmp_path):
    path = _write_records(str(tmp_path / "data.tfrecord"), [{"source": "ab"}])
    pipeline = ip.TFRecordInputPipeline(
        {"files": [path], "source_delimiter": ""}, ModeKeys.INFER
    )
    assert collect(pipeline.make_dataset()) == [
        {"source_tokens": ["a", "b", END], "source_len": 3}
    ]
    assert pipeline.label_keys == set()
    train = ip.TFRecordInputPipeline({"files": [path]}, ModeKeys.TRAIN)
    with pytest.raises(ConfigError, match="no feature 'target'"):
        train.make_dataset()


def test_tfrecord_errors(tmp_path):
    with pytest.raises(ConfigError, match="'files' is empty"):
        ip.TFRecordInputPipeline({}, ModeKeys.EVAL).make_dataset()
    missing = str(tmp_path / "missing.tfrecord")
    with pytest.raises(DataError, match="missing.tfrecord"):
        ip.TFRecordInputPipeline({"files": [missing]}, ModeKeys.EVAL).make_dataset()
    wrong = _write_records(
        str(tmp_path / "wrong.tfrecord"), [{"text": "a", "target": "b"}]
    )
    with pytest.raises(
        DataError, match="no bytes feature 'source' \\(features: target, text\\)"
    ):
        ip.TFRecordInputPipeline({"files": [wrong]}, ModeKeys.EVAL).make_dataset()
    garbage = write(tmp_path, "garbage.tfrecord", "this is not a record file\n")
    with pytest.raises(DataError, match="garbage.tfrecord is not a readable file"):
        ip.TFRecordInputPipeline({"files": [garbage]}, ModeKeys.EVAL).make_dataset()
    empty = write(tmp_path, "empty.tfrecord", b"")
    with pytest.raises(DataError, match="contain no records"):
        ip.TFRecordInputPipeline({"files": [empty]}, ModeKeys.EVAL).make_dataset()
