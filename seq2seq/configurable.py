"""The configuration language: YAML loading, deep merging, typed parameters.

Every model, encoder, decoder, input pipeline, hook, metric and task is a
`Configurable`: a class with `default_params()` (a flat dict of dotted keys)
built from a `params` dict that the user wrote in YAML. The user's params are
deep-merged over the defaults, coerced to the defaults' types, and any key the
class does not know is an error that lists the keys it does know.

Objects are created from `{class: ..., params: ...}` dicts, where `class` is a
short name looked up in a set of modules (`AttentionSeq2Seq`) or a dotted path
(`seq2seq.decoders.attention.AttentionLayerDot`).
"""

import copy
import difflib
import importlib
import inspect
import os
import sys

import yaml
from absl import logging

from seq2seq.errors import ConfigError


class ModeKeys:
    """The three modes every Configurable is built in."""

    TRAIN = "train"
    EVAL = "eval"
    INFER = "infer"

    ALL = (TRAIN, EVAL, INFER)


def is_training(training, mode):
    """Whether dropout is active: a layer built in mode `train`, called with
    a true `training` (a bool, or a tensor whose value is known when the
    function is traced)."""
    if mode != ModeKeys.TRAIN:
        return False
    if hasattr(training, "dtype"):  # a tensor
        import tensorflow as tf

        training = tf.get_static_value(training)
    return bool(training)


def load_yaml(text, source="YAML string"):
    """Parses a YAML document with `yaml.safe_load`.

    Args:
      text: The YAML text. An empty or all-whitespace text gives `{}`.
      source: What the text came from (a flag name or a path), used in errors.

    Returns:
      The parsed Python object (`{}` for an empty document).

    Raises:
      ConfigError: The text is not valid YAML.
    """
    if text is None:
        return {}
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(
            f"{source}: invalid YAML{where}: {problem}. "
            "Check indentation and quoting (YAML needs spaces, not tabs)."
        ) from None
    return {} if value is None else value


def load_yaml_file(path):
    """Reads and parses a YAML file.

    Raises:
      ConfigError: The file does not exist or is not valid YAML.
    """
    if not os.path.isfile(path):
        raise ConfigError(
            f"config file not found: {path}. Check the path given to --config_paths."
        )
    with open(path, encoding="utf-8") as handle:
        return load_yaml(handle.read(), source=path)


def maybe_load_yaml(item, source="YAML string"):
    """Returns `item` parsed if it is a YAML string, or as-is if it is a dict."""
    if item is None:
        return {}
    if isinstance(item, str):
        return load_yaml(item, source)
    if isinstance(item, dict):
        return item
    raise ConfigError(
        f"{source}: expected a YAML mapping or string, got {type(item).__name__}."
    )


def deep_merge(*dicts):
    """Recursively merges dicts, later ones winning; the inputs are not modified.

    Nested dicts are merged key by key; any other value (lists included) is
    replaced by the later one. `None` arguments are skipped.

    Returns:
      A new dict.
    """
    result = {}
    for item in dicts:
        if not item:
            continue
        for key, value in item.items():
            if isinstance(value, dict) and isinstance(result.get(key), dict):
                result[key] = deep_merge(result[key], value)
            else:
                result[key] = copy.deepcopy(value)
    return result


def _closest(name, candidates):
    match = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1)
    return f" Did you mean '{match[0]}'?" if match else ""


_TRUE_STRINGS = ("true", "yes", "on", "1")
_FALSE_STRINGS = ("false", "no", "off", "0")


def _coerce(value, default, where):
    """Converts `value` to the type of `default` where that is unambiguous.

    Rules: `None` defaults accept anything; floats accept ints and numeric
    strings (YAML reads `1e-4` as a string); ints accept integral floats and
    integer strings; bools accept YAML-ish strings and 0/1; strings accept
    numbers; lists accept a single scalar (wrapped) or a tuple.

    Raises:
      ConfigError: The conversion would be a guess.
    """
    if default is None or value is None:
        return value
    kind = type(default)

    def fail():
        raise ConfigError(
            f"{where}: expected a value of type {kind.__name__} "
            f"(like the default {default!r}), got {value!r}."
        )

    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE_STRINGS:
            return True
        if isinstance(value, str) and value.strip().lower() in _FALSE_STRINGS:
            return False
        fail()
    if isinstance(default, int):
        if isinstance(value, bool):
            fail()
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                fail()
            if number.is_integer():
                return int(number)
        fail()
    if isinstance(default, float):
        if isinstance(value, bool):
            fail()
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                fail()
        fail()
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        fail()
    if isinstance(default, list):
        if isinstance(value, (list, tuple)):
            return list(value)
        if isinstance(value, (str, int, float)):
            return [value]
        fail()
    if isinstance(default, dict):
        if isinstance(value, dict):
            return value
        fail()
    if isinstance(value, kind):
        return value
    fail()
    return value  # unreachable; keeps linters quiet


def _is_open_dict(key):
    """Whether a nested dict's keys are validated by the class it configures.

    `encoder.params`, `cell_params`, `optimizer.params` and friends hold the
    parameters of another object (a class, a cell, a Keras optimizer), which
    checks them itself; every other nested dict is checked here.
    """
    return str(key).endswith("params")


def parse_params(params, default_params, owner="params"):
    """Merges user params over defaults with validation and type coercion.

    Args:
      params: The user's dict (or `None`).
      default_params: The defaults; their keys are the only valid keys and
        their values give the types.
      owner: A name for error messages, e.g. the class name.

    Returns:
      A new dict with every default key.

    Raises:
      ConfigError: An unknown key or a value of the wrong type.
    """
    result = copy.deepcopy(default_params)
    if params is None:
        return result
    if not isinstance(params, dict):
        raise ConfigError(
            f"{owner}: params must be a mapping of key: value, got {params!r}."
        )
    for key, value in params.items():
        if key not in default_params:
            valid = ", ".join(sorted(str(k) for k in default_params)) or "(none)"
            raise ConfigError(
                f"{owner}: unknown parameter '{key}'.{_closest(key, default_params)}"
                f" Valid parameters: {valid}."
            )
        default = default_params[key]
        where = f"{owner}: parameter '{key}'"
        if value is None:
            continue
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: expected a mapping, got {value!r}.")
            if _is_open_dict(key) or not default:
                result[key] = deep_merge(default, value)
            else:
                result[key] = parse_params(value, default, owner=f"{owner}.{key}")
            continue
        result[key] = _coerce(value, default, where)
    return result


INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def check_int32_range(params, owner="params"):
    """Checks that every integer in `params` fits in an int32.

    Lengths, sizes, widths and steps in params end up in int32 tensors or
    op attributes, where a larger value fails deep inside TensorFlow (or
    only at inference time); this turns that into one line naming the key.
    Every `Configurable` runs it on its parsed params.

    Args:
      params: A dict; nested dicts and lists are searched too (bools are
        not integers here).
      owner: Whose params they are, for the message (a class name).

    Raises:
      ConfigError: An integer below `INT32_MIN` or above `INT32_MAX`.
    """

    def walk(value, path):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else str(key))
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")
        elif isinstance(value, int) and not isinstance(value, bool):
            if not INT32_MIN <= value <= INT32_MAX:
                raise ConfigError(
                    f"{owner}: parameter '{path}' = {value} is out of range; integer "
                    f"parameters become int32 tensors, so it must lie between "
                    f"{INT32_MIN} and {INT32_MAX}."
                )

    walk(params, "")


class Configurable:
    """Base class of everything that is built from a YAML params dict.

    Subclasses define `default_params()` as a staticmethod returning a flat
    dict of dotted keys. For Keras layers, inherit from both and call
    `keras.layers.Layer.__init__` first, then `Configurable.__init__`.

    Args:
      params: The user's params (dict or `None`); merged over the defaults.
      mode: One of `ModeKeys.ALL`.
    """

    def __init__(self, params, mode):
        if mode not in ModeKeys.ALL:
            raise ValueError(f"mode must be one of {ModeKeys.ALL}, got {mode!r}")
        parsed = parse_params(params, self.default_params(), type(self).__name__)
        check_int32_range(parsed, type(self).__name__)
        # Set through object.__setattr__ so that Keras layer tracking does not
        # wrap the plain params dict.
        object.__setattr__(self, "_params", parsed)
        object.__setattr__(self, "_mode", mode)
        logging.debug("Creating %s in mode=%s: %s", type(self).__name__, mode, parsed)

    @property
    def params(self):
        """The parsed parameters (a dict with every default key)."""
        return self._params

    @property
    def mode(self):
        """The mode the object was built in: `train`, `eval` or `infer`."""
        return self._mode

    @staticmethod
    def default_params():
        """Returns the dict of default parameters; its keys are the valid ones."""
        raise NotImplementedError


def _import_dotted(name):
    """Imports `a.b.C` as attribute `C` of module `a.b` (or a module itself)."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _as_module(module):
    return importlib.import_module(module) if isinstance(module, str) else module


def _as_tuple(base):
    return base if isinstance(base, tuple) else (base,)


def public_name(cls):
    """The shortest importable dotted name of a class, for messages.

    `seq2seq.tasks.inference_task.InferenceTask` is exported by
    `seq2seq.tasks`, so that name is used; Keras's private `keras.src`
    modules are skipped in favour of the public `keras.*` ones.
    """
    parts = cls.__module__.split(".")
    candidates = [parts[:cut] for cut in range(1, len(parts) + 1)]
    if "src" in parts:
        public = [part for part in parts if part != "src"]
        candidates = [public[:cut] for cut in range(1, len(public) + 1)]
    for candidate in candidates:
        module_name = ".".join(candidate)
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if getattr(module, cls.__qualname__, None) is cls:
            return f"{module_name}.{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def _slot_phrase(what):
    """`a task class`, `an optimizer class`, `the class in encoder.class`."""
    if what.endswith(".class"):
        return f"the class in {what}"
    article = "an" if what[:1].lower() in "aeiou" else "a"
    return f"{article} {what} class"


def _check_base(found, name, what, base):
    """Raises ConfigError unless `found` is a class derived from `base`."""
    bases = _as_tuple(base)
    if inspect.isclass(found) and issubclass(found, bases):
        return
    short = " or ".join(cls.__name__ for cls in bases)
    full = " or ".join(public_name(cls) for cls in bases)
    raise ConfigError(
        f"{what} '{name}' is not a subclass of {short}; "
        f"{_slot_phrase(what)} must subclass {full}."
    )


def available_classes(modules, base=None):
    """The public Configurable class names in `modules` (all public classes
    when there are none), for error messages.

    With `base`, only the subclasses of `base` are listed.
    """
    classes = {}
    for module in modules:
        module = _as_module(module)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and not name.startswith("_"):
                classes[name] = obj
    if base is not None:
        return sorted(
            name for name, obj in classes.items() if issubclass(obj, _as_tuple(base))
        )
    configurables = [
        name
        for name, obj in classes.items()
        if issubclass(obj, Configurable) and obj is not Configurable
    ]
    return sorted(configurables or classes)


def locate_class(name, modules=(), what="class", base=None):
    """Finds a class by short name in `modules` or by dotted path.

    Nothing found is called. Configs are data: with `base`, whatever the
    name resolves to must be a class derived from `base`, so that a config
    cannot make the program call an arbitrary function such as `os.system`.
    A user's own class in an importable module works through its dotted
    path when it subclasses `base`.

    Args:
      name: `AttentionSeq2Seq` or `seq2seq.models.AttentionSeq2Seq`.
      modules: Modules (or module names) searched for a short name, in order.
      what: The config slot being resolved, for the error message ("task",
        "encoder.class", ...).
      base: A class or tuple of classes the result must subclass; `None`
        skips the check (for callers that check the result themselves).

    Returns:
      The class (or, without `base`, whatever object has that name).

    Raises:
      ConfigError: Nothing of that name exists (the message lists what does),
        or it is not a subclass of `base`.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{what}: expected a class name, got {name!r}.")
    found = None
    for module in modules:
        found = getattr(_as_module(module), name, None)
        if found is not None:
            break
    if found is None and "." in name:
        if base is not None and name.split(".")[0] in sys.stdlib_module_names:
            # No class of this toolkit lives in the standard library; refuse
            # before importing anything (`antigravity` acts when imported).
            _check_base(None, name, what, base)
        found = _import_dotted(name)
    if found is not None:
        if base is not None:
            _check_base(found, name, what, base)
        return found
    choices = available_classes(modules, base)
    if base is None:
        dotted = "a dotted path such as seq2seq.models.AttentionSeq2Seq"
    else:
        dotted = "the dotted path of your own subclass of " + " or ".join(
            public_name(cls) for cls in _as_tuple(base)
        )
    raise ConfigError(
        f"unknown {what} '{name}'.{_closest(name, choices)} "
        f"Available: {', '.join(choices) or '(none)'}, or {dotted}."
    )


def constructor_args(cls, exclude=()):
    """The named arguments of `cls.__init__`, for checking config keys.

    Args:
      cls: A class.
      exclude: Names to leave out (besides `self`).

    Returns:
      The argument names in order, without `self`, `*args` and `**kwargs`.
    """
    params = inspect.signature(cls.__init__).parameters.values()
    return [
        p.name
        for p in params
        if p.name != "self"
        and p.name not in exclude
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def public_functions(module):
    """The names of the public functions defined in `module`, sorted."""
    module = _as_module(module)
    return sorted(
        name
        for name, obj in vars(module).items()
        if inspect.isfunction(obj)
        and not name.startswith("_")
        and obj.__module__ == module.__name__
    )


def locate_function(name, module, what="function"):
    """Finds a function of the one module a config slot allows.

    Function-valued params (such as `postproc_fn`) name a public function
    defined in `module`, by its short name (`strip_bpe`) or its full dotted
    path (`seq2seq.data.postproc.strip_bpe`); nothing else is imported.

    Args:
      name: The name from the config.
      module: The allowed module (or its name).
      what: The config slot, for the error message.

    Returns:
      The function.

    Raises:
      ConfigError: `name` is not one of the module's public functions; the
        message lists them.
    """
    module = _as_module(module)
    allowed = public_functions(module)
    text = name.strip() if isinstance(name, str) else name
    short = text
    if isinstance(text, str) and text.startswith(module.__name__ + "."):
        short = text[len(module.__name__) + 1 :]
    if short in allowed:
        return getattr(module, short)
    raise ConfigError(
        f"{what} '{name}' is not an allowed function; use one of "
        f"{', '.join(allowed)} (from {module.__name__}, by short name or "
        f"as {module.__name__}.<name>). A config cannot name other functions."
    )


def create_from_dict(definition, modules=(), *args, what="class", base=None, **kwargs):
    """Creates an object from `{class: ..., params: ...}`.

    Args:
      definition: A dict (or YAML string) with a `class` key and an optional
        `params` key.
      modules: Where short class names are looked up.
      *args: Extra positional arguments after `params` (e.g. `mode`).
      what: What is being created, for error messages.
      base: The class (or tuple of classes) the named class must subclass;
        checked before anything is called (see `locate_class`).
      **kwargs: Extra keyword arguments for the constructor.

    Returns:
      `cls(params, *args, **kwargs)`.
    """
    definition = maybe_load_yaml(definition, what)
    if not isinstance(definition, dict) or "class" not in definition:
        raise ConfigError(
            f"{what}: expected a mapping with a 'class' key "
            f"(and optional 'params'), got {definition!r}."
        )
    extra = set(definition) - {"class", "params"}
    if extra:
        raise ConfigError(
            f"{what}: unexpected key(s) {sorted(extra)} next to 'class'; "
            "only 'class' and 'params' are allowed."
        )
    cls = locate_class(definition["class"], modules, what, base=base)
    params = definition.get("params") or {}
    return cls(params, *args, **kwargs)
