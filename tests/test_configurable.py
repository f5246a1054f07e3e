"""Tests for seq2seq.configurable: params parsing, YAML, class lookup."""

import pytest

from seq2seq import configurable
from seq2seq.configurable import (
    Configurable,
    ModeKeys,
    create_from_dict,
    deep_merge,
    load_yaml,
    load_yaml_file,
    locate_class,
    locate_function,
    parse_params,
)
from seq2seq.errors import ConfigError


class Toy(Configurable):
    @staticmethod
    def default_params():
        return {
            "lr": 0.1,
            "steps": 10,
            "flag": False,
            "name": "x",
            "files": [],
            "rnn_cell": {"cell_class": "GRUCell", "cell_params": {"num_units": 8}},
            "anything": None,
            "encoder.params": {},
        }


def test_defaults_are_used_and_not_shared():
    a = Toy(None, ModeKeys.TRAIN)
    b = Toy({}, ModeKeys.EVAL)
    assert a.params == Toy.default_params()
    a.params["files"].append("f")
    assert b.params["files"] == []
    assert a.mode == "train" and b.mode == "eval"


def test_yaml_scientific_string_becomes_float():
    params = load_yaml("lr: 1e-4\nsteps: 20")
    assert params["lr"] == "1e-4"  # what YAML itself gives
    toy = Toy(params, ModeKeys.TRAIN)
    assert toy.params["lr"] == pytest.approx(1e-4)
    assert isinstance(toy.params["lr"], float)


@pytest.mark.parametrize(
    "key,value,expected",
    [
        ("steps", 3.0, 3),
        ("steps", "7", 7),
        ("flag", "true", True),
        ("flag", 0, False),
        ("name", 5, "5"),
        ("files", "a.txt", ["a.txt"]),
        ("lr", 1, 1.0),
        ("anything", [1, 2], [1, 2]),
    ],
)
def test_coercion(key, value, expected):
    result = Toy({key: value}, ModeKeys.TRAIN).params[key]
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    "key,value", [("steps", 2.5), ("steps", "ten"), ("flag", "maybe"), ("lr", True)]
)
def test_ambiguous_values_are_errors(key, value):
    with pytest.raises(ConfigError, match=key):
        Toy({key: value}, ModeKeys.TRAIN)


def test_unknown_key_names_class_key_and_valid_keys():
    with pytest.raises(ConfigError) as err:
        Toy({"stepz": 1}, ModeKeys.TRAIN)
    message = str(err.value)
    assert "Toy" in message and "'stepz'" in message
    assert "Did you mean 'steps'" in message
    assert "lr, name, rnn_cell, steps" in message
    assert "\n" not in message


def test_nested_dicts_are_merged_and_checked():
    toy = Toy({"rnn_cell": {"cell_params": {"num_units": 16}}}, ModeKeys.TRAIN)
    assert toy.params["rnn_cell"] == {
        "cell_class": "GRUCell",
        "cell_params": {"num_units": 16},
    }
    with pytest.raises(ConfigError, match="Toy.rnn_cell: unknown parameter 'layers'"):
        Toy({"rnn_cell": {"layers": 2}}, ModeKeys.TRAIN)
    # '*params' dicts belong to the class they configure: free-form here.
    toy = Toy({"encoder.params": {"whatever": 1}}, ModeKeys.TRAIN)
    assert toy.params["encoder.params"] == {"whatever": 1}


def test_bad_mode():
    with pytest.raises(ValueError):
        Toy({}, "training")


def test_deep_merge_order_and_immutability():
    a = {"x": {"y": 1, "z": [1]}, "k": 1}
    b = {"x": {"y": 2}, "n": 3}
    c = {"x": {"z": [2]}}
    merged = deep_merge(a, b, c, None)
    assert merged == {"x": {"y": 2, "z": [2]}, "k": 1, "n": 3}
    assert a == {"x": {"y": 1, "z": [1]}, "k": 1}


def test_load_yaml_errors_and_safety(tmp_path):
    assert load_yaml("") == {}
    with pytest.raises(ConfigError, match="invalid YAML at line 2"):
        load_yaml("a: 1\n b: [", source="--model_params")
    with pytest.raises(ConfigError):
        load_yaml("!!python/object/apply:os.system ['true']")
    with pytest.raises(ConfigError, match="config file not found: .*nope.yml"):
        load_yaml_file(str(tmp_path / "nope.yml"))
    path = tmp_path / "c.yml"
    path.write_text("model: AttentionSeq2Seq\n")
    assert load_yaml_file(str(path)) == {"model": "AttentionSeq2Seq"}


def test_yaml_merge_keys_of_the_original_configs():
    text = (
        "default_params: &d\n  - separator: ' '\n  - postproc_fn: f\n"
        "metrics:\n  - class: B\n    params:\n      <<: *d\n      rouge_type: r\n"
    )
    params = load_yaml(text)["metrics"][0]["params"]
    assert params == {"separator": " ", "postproc_fn": "f", "rouge_type": "r"}


def test_locate_short_and_dotted_names():
    assert locate_class("Toy", [__name__]) is Toy
    assert locate_class("seq2seq.configurable.ModeKeys") is ModeKeys
    assert locate_class("ModeKeys", [configurable]) is ModeKeys
    with pytest.raises(ConfigError) as err:
        locate_class("Tyo", [__name__], what="model")
    assert "unknown model 'Tyo'" in str(err.value)
    assert "Did you mean 'Toy'" in str(err.value)
    with pytest.raises(ConfigError, match="unknown class 'seq2seq.nothing.Here'"):
        locate_class("seq2seq.nothing.Here")


def test_create_from_dict():
    toy = create_from_dict("class: Toy\nparams: {steps: 4}", [__name__], ModeKeys.INFER)
    assert isinstance(toy, Toy) and toy.params["steps"] == 4 and toy.mode == "infer"
    with pytest.raises(ConfigError, match="'class' key"):
        create_from_dict({"params": {}}, [__name__], ModeKeys.TRAIN)
    with pytest.raises(ConfigError, match="unexpected key"):
        create_from_dict({"class": "Toy", "parms": {}}, [__name__], ModeKeys.TRAIN)


def test_parse_params_rejects_non_mapping():
    with pytest.raises(ConfigError, match="mapping"):
        parse_params([1, 2], {"a": 1}, "X")


# --- where classes come from -------------------------------------------------


class NotToy(Configurable):
    @staticmethod
    def default_params():
        return {}


def test_locate_class_with_base_accepts_subclasses_by_short_and_dotted_name():
    assert locate_class("Toy", [__name__], "toy", base=Configurable) is Toy
    assert locate_class(f"{__name__}.Toy", (), "toy", base=Toy) is Toy
    assert locate_class("Toy", [__name__], "toy", base=(NotToy, Toy)) is Toy


@pytest.mark.parametrize(
    "name, message",
    [
        (
            "os.system",
            "task 'os.system' is not a subclass of InferenceTask; a task class "
            "must subclass seq2seq.tasks.InferenceTask.",
        ),
        (
            "seq2seq.models.AttentionSeq2Seq",
            "task 'seq2seq.models.AttentionSeq2Seq' is not a subclass of "
            "InferenceTask; a task class must subclass seq2seq.tasks.InferenceTask.",
        ),
        (
            # A short name found in the slot's module is checked too.
            "unbatch",
            "task 'unbatch' is not a subclass of InferenceTask; a task class "
            "must subclass seq2seq.tasks.InferenceTask.",
        ),
    ],
)
def test_locate_class_with_base_refuses_other_objects(name, message):
    from seq2seq import tasks

    with pytest.raises(ConfigError) as err:
        locate_class(name, [tasks], "task", base=tasks.InferenceTask)
    assert str(err.value) == message


def test_locate_class_message_names_slot_and_every_base():
    with pytest.raises(ConfigError) as err:
        locate_class("NotToy", [__name__], "decoder.class", base=(Toy, ModeKeys))
    assert str(err.value) == (
        "decoder.class 'NotToy' is not a subclass of Toy or ModeKeys; the class in "
        f"decoder.class must subclass {__name__}.Toy or "
        "seq2seq.configurable.ModeKeys."
    )
    with pytest.raises(ConfigError, match="an optimizer class must subclass"):
        locate_class(f"{__name__}.NotToy", (), "optimizer", base=Toy)


def test_unknown_name_with_base_lists_only_subclasses():
    with pytest.raises(ConfigError) as err:
        locate_class("Nope", [__name__], "toy", base=NotToy)
    assert str(err.value) == (
        f"unknown toy 'Nope'. Available: NotToy, or the dotted path of your own "
        f"subclass of {__name__}.NotToy."
    )


def test_standard_library_is_refused_without_importing_it():
    import sys

    sys.modules.pop("antigravity", None)  # importing it opens a web browser
    with pytest.raises(ConfigError, match="'antigravity.geohash' is not a subclass"):
        locate_class("antigravity.geohash", (), "hook", base=Toy)
    assert "antigravity" not in sys.modules


def test_create_from_dict_checks_base_before_calling(tmp_path):
    marker = tmp_path / "ran"
    definition = {"class": "os.system", "params": f"touch {marker}"}
    with pytest.raises(ConfigError, match="task 'os.system' is not a subclass"):
        create_from_dict(definition, [__name__], what="task", base=Toy)
    assert not marker.exists()
    # Without a base the old behaviour stays: any class by dotted path.
    toy = create_from_dict(
        {"class": f"{__name__}.Toy", "params": {"steps": 2}}, (), ModeKeys.EVAL
    )
    assert toy.params["steps"] == 2


def test_user_class_in_own_module_works_when_it_subclasses_the_base(
    tmp_path, monkeypatch
):
    package = tmp_path / "my_tasks_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tasks.py").write_text(
        "from seq2seq.tasks import InferenceTask\n"
        "\n"
        "class CountLines(InferenceTask):\n"
        "    @staticmethod\n"
        "    def default_params():\n"
        "        return {'prefix': ''}\n"
        "\n"
        "class NotATask:\n"
        "    def __init__(self, params):\n"
        "        raise AssertionError('must not be called')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from seq2seq import tasks

    task = create_from_dict(
        {"class": "my_tasks_pkg.tasks.CountLines", "params": {"prefix": ">"}},
        [tasks],
        what="task",
        base=tasks.InferenceTask,
    )
    assert type(task).__name__ == "CountLines" and task.params == {"prefix": ">"}
    with pytest.raises(ConfigError) as err:
        create_from_dict(
            {"class": "my_tasks_pkg.tasks.NotATask"},
            [tasks],
            what="task",
            base=tasks.InferenceTask,
        )
    assert str(err.value) == (
        "task 'my_tasks_pkg.tasks.NotATask' is not a subclass of InferenceTask; "
        "a task class must subclass seq2seq.tasks.InferenceTask."
    )


def test_locate_function_allows_only_the_module_functions():
    from seq2seq.data import postproc

    assert configurable.public_functions(postproc) == [
        "decode_sentencepiece",
        "slice_text",
        "strip_bpe",
    ]
    assert locate_function("strip_bpe", postproc) is postproc.strip_bpe
    found = locate_function("seq2seq.data.postproc.slice_text", "seq2seq.data.postproc")
    assert found is postproc.slice_text
    for name in ("os.system", "system", "seq2seq.data.postproc.os", "re", ""):
        with pytest.raises(ConfigError) as err:
            locate_function(name, postproc, what="X: postproc_fn")
        assert str(err.value) == (
            f"X: postproc_fn '{name}' is not an allowed function; use one of "
            "decode_sentencepiece, slice_text, strip_bpe (from "
            "seq2seq.data.postproc, by short name or as "
            "seq2seq.data.postproc.<name>). A config cannot name other functions."
        )


def test_integers_outside_int32_are_config_errors():
    # Lengths and sizes become int32 tensors: 2**31 fails in TensorFlow.
    configurable.check_int32_range({"a": 2**31 - 1, "b": -(2**31), "c": True})
    with pytest.raises(ConfigError, match=r"Toy: parameter 'steps' = 2147483648"):
        Toy({"steps": 2**31}, ModeKeys.TRAIN)
    # Coerced strings ("3e9" in YAML is a string) and nested params too.
    with pytest.raises(ConfigError, match=r"'steps' = 3000000000 is out of range"):
        Toy({"steps": "3e9"}, ModeKeys.TRAIN)
    with pytest.raises(ConfigError, match=r"'encoder\.params\.width' = -2147483649"):
        Toy({"encoder.params": {"width": -(2**31) - 1}}, ModeKeys.TRAIN)
    with pytest.raises(ConfigError, match=r"'files\[1\]' = 4294967296"):
        Toy({"files": [1, 2**32]}, ModeKeys.TRAIN)
    assert Toy({"steps": 2**31 - 1}, ModeKeys.TRAIN).params["steps"] == 2**31 - 1
