"""Recurrent cells built from the `rnn_cell` configuration block.

Encoders and decoders describe their recurrent cell with the same YAML block
as the original toolkit::

    rnn_cell:
      cell_class: GRUCell          # TF1 name, Keras name or dotted path
      cell_params: {num_units: 256}
      num_layers: 2
      dropout_input_keep_prob: 0.8
      dropout_output_keep_prob: 1.0
      residual_connections: false
      residual_combiner: add
      residual_dense: false

`get_rnn_cell(**rnn_cell, mode=...)` turns it into one Keras cell object that
`keras.layers.RNN` can run and that decoders can step by hand.

Cell names
----------
The TensorFlow 1 names of the original map to Keras cells with the same math:

* `GRUCell`, `GRUBlockCell` -> `keras.layers.GRUCell(reset_after=False)`.
  TF1 applied the reset gate to the previous state *before* the recurrent
  matmul, which is Keras' `reset_after=False`. TF1 also started the update
  and reset gate biases at 1.0 (candidate bias at 0); the same start is used
  unless `bias_initializer` is given.
* `LSTMCell`, `BasicLSTMCell`, `LSTMBlockCell` -> `keras.layers.LSTMCell`.
  TF1 added a constant `forget_bias` (default 1.0) to a zero-initialised
  forget-gate bias; here the forget-gate bias variable *starts* at
  `forget_bias` instead (`unit_forget_bias=True` for 1.0). The two are the
  same function with the same gradients; only the stored bias differs.
* `BasicRNNCell`, `RNNCell` -> `keras.layers.SimpleRNNCell`.
* `LayerNormBasicLSTMCell` -> `LayerNormLSTMCell` (`seq2seq.rnn.cells`).
* `LSTMCell` with `use_peepholes`, `cell_clip`, `num_proj` or `proj_clip`,
  and `LSTMBlockCell` with `use_peephole` or `cell_clip` -> `TF1LSTMCell`;
  `CoupledInputForgetGateLSTMCell`, `NASCell`, `UGRNNCell` -> the cells of
  the same names in `seq2seq.rnn.tf1_cells`. These add `forget_bias` as a
  constant, as TF1 did.

Keras names (`GRUCell`, `LSTMCell`, `SimpleRNNCell`, `LayerNormLSTMCell`)
accept the Keras constructor arguments as well, and a dotted path such as
`keras.layers.GRUCell` or `mypackage.cells.MyCell` names any Keras cell class
(given its own constructor arguments; `num_units` is renamed to `units`). It
must name a subclass of `keras.layers.Layer`: a config never calls a
function it names (such as `os.system`).
Dotted TF1 paths (`tensorflow.contrib.rnn.BasicRNNCell`) use the mapping
above.

State structure
---------------
`get_rnn_cell` always returns an `ExtendedMultiRNNCell`, whatever the number
of layers, so that the variables of a model keep the same checkpoint paths
when dropout, mode or depth change, and so that every consumer sees one
state convention (see `seq2seq.rnn.cells`).
"""

import inspect

import keras
from absl import logging

from seq2seq.configurable import ModeKeys, constructor_args, locate_class
from seq2seq.errors import ConfigError
from seq2seq.rnn.activations import resolve_activation
from seq2seq.rnn.cells import (
    DropoutWrapper,
    ExtendedMultiRNNCell,
    GateBiasInitializer,
    LayerNormLSTMCell,
)
from seq2seq.rnn.tf1_cells import (
    CoupledInputForgetGateLSTMCell,
    NASCell,
    TF1LSTMCell,
    UGRNNCell,
)

__all__ = [
    "cell_from_spec",
    "default_rnn_cell_params",
    "get_rnn_cell",
    "known_cell_classes",
    "resolve_activation",
]


def default_rnn_cell_params():
    """The default `rnn_cell` block of RNN encoders and decoders.

    Returns:
      A new dict: a one-layer `BasicLSTMCell` of 128 units, no dropout and no
      residual connections.
    """
    return {
        "cell_class": "BasicLSTMCell",
        "cell_params": {"num_units": 128},
        "dropout_input_keep_prob": 1.0,
        "dropout_output_keep_prob": 1.0,
        "num_layers": 1,
        "residual_connections": False,
        "residual_combiner": "add",
        "residual_dense": False,
    }


# ----------------------------------------------------------- cell specs


class _CellSpec:
    """How one short cell name maps to a Keras cell class.

    Attributes:
      target: The Keras class to build.
      tf1_params: Parameter names of the TF1 class (translated here).
      keras_params: Whether the target's own constructor arguments are
        accepted too.
      family: `gru`, `lstm`, `rnn` or `constant_forget` (cells taking
        `forget_bias` as a constructor argument), for defaults.
      variant: Optional `(params, spec)`: the spec to use instead when any
        of these params has a value the target cannot take (see
        `_UNSUPPORTED_UNLESS`), e.g. `LSTMCell` with a projection.
    """

    def __init__(
        self, target, tf1_params=(), keras_params=True, family="rnn", variant=None
    ):
        self.target = target
        self.tf1_params = tuple(tf1_params)
        self.keras_params = keras_params
        self.family = family
        self.variant = variant


_TF1_IGNORED = ("reuse", "num_unit_shards", "num_proj_shards", "input_size", "name")

_TF1_LSTM_PARAMS = (
    "num_units",
    "use_peepholes",
    "cell_clip",
    "initializer",
    "num_proj",
    "proj_clip",
    "num_unit_shards",
    "num_proj_shards",
    "forget_bias",
    "state_is_tuple",
    "activation",
    "reuse",
    "name",
)
_LSTM_BLOCK_PARAMS = (
    "num_units",
    "forget_bias",
    "cell_clip",
    "use_peephole",
    "reuse",
    "name",
)

_CELL_SPECS = {
    "BasicRNNCell": _CellSpec(
        keras.layers.SimpleRNNCell, ("num_units", "activation", "reuse"), False
    ),
    "RNNCell": _CellSpec(
        keras.layers.SimpleRNNCell, ("num_units", "activation", "reuse"), False
    ),
    "SimpleRNNCell": _CellSpec(keras.layers.SimpleRNNCell, ("num_units",), True),
    "GRUCell": _CellSpec(
        keras.layers.GRUCell,
        (
            "num_units",
            "activation",
            "reuse",
            "kernel_initializer",
            "bias_initializer",
            "name",
        ),
        True,
        "gru",
    ),
    "GRUBlockCell": _CellSpec(
        keras.layers.GRUCell, ("num_units", "cell_size", "reuse", "name"), False, "gru"
    ),
    "BasicLSTMCell": _CellSpec(
        keras.layers.LSTMCell,
        ("num_units", "forget_bias", "state_is_tuple", "activation", "reuse", "name"),
        False,
        "lstm",
    ),
    "LSTMCell": _CellSpec(
        keras.layers.LSTMCell,
        _TF1_LSTM_PARAMS,
        True,
        "lstm",
        variant=(
            ("use_peepholes", "cell_clip", "num_proj", "proj_clip"),
            _CellSpec(TF1LSTMCell, _TF1_LSTM_PARAMS, True, "constant_forget"),
        ),
    ),
    "LSTMBlockCell": _CellSpec(
        keras.layers.LSTMCell,
        _LSTM_BLOCK_PARAMS,
        False,
        "lstm",
        variant=(
            ("use_peephole", "cell_clip"),
            _CellSpec(TF1LSTMCell, _LSTM_BLOCK_PARAMS, False, "constant_forget"),
        ),
    ),
    "TF1LSTMCell": _CellSpec(TF1LSTMCell, ("num_units",), True, "constant_forget"),
    "CoupledInputForgetGateLSTMCell": _CellSpec(
        CoupledInputForgetGateLSTMCell,
        _TF1_LSTM_PARAMS + ("layer_norm", "norm_gain", "norm_shift"),
        True,
        "constant_forget",
    ),
    "NASCell": _CellSpec(
        NASCell, ("num_units", "num_proj", "use_biases", "reuse"), True
    ),
    "UGRNNCell": _CellSpec(
        UGRNNCell,
        ("num_units", "initializer", "forget_bias", "activation", "reuse"),
        True,
        "constant_forget",
    ),
    "LayerNormBasicLSTMCell": _CellSpec(
        LayerNormLSTMCell,
        (
            "num_units",
            "forget_bias",
            "input_size",
            "activation",
            "layer_norm",
            "norm_gain",
            "norm_shift",
            "dropout_keep_prob",
            "dropout_prob_seed",
            "reuse",
        ),
        True,
        "constant_forget",
    ),
    "LayerNormLSTMCell": _CellSpec(
        LayerNormLSTMCell, ("num_units",), True, "constant_forget"
    ),
}

# TF1 values that have no equivalent in a target class without an argument
# of that name: allowed only at these values.
_UNSUPPORTED_UNLESS = {
    "use_peepholes": (False,),
    "use_peephole": (False,),
    "cell_clip": (None, -1, -1.0),
    "num_proj": (None,),
    "proj_clip": (None,),
    "state_is_tuple": (True,),
    "layer_norm": (False,),
    "norm_gain": (1.0,),
    "norm_shift": (0.0,),
}

# TF1 spellings of a target's arguments.
_TF1_RENAMES = {"use_peephole": "use_peepholes", "use_biases": "use_bias"}

# Keras arguments that cannot be used inside the cells built here.
_REJECTED_KERAS = {
    "dropout": "use rnn_cell.dropout_input_keep_prob",
    "recurrent_dropout": "use rnn_cell.dropout_input_keep_prob / "
    "dropout_output_keep_prob (or LayerNormBasicLSTMCell's dropout_keep_prob)",
}

# Dotted prefixes of the original's cell modules; their last component is
# looked up among the short names.
_TF1_PREFIXES = (
    "tensorflow.contrib.rnn.",
    "tf.contrib.rnn.",
    "tensorflow.nn.rnn_cell.",
    "tf.nn.rnn_cell.",
    "tensorflow.contrib.rnn.python.ops.rnn_cell.",
    "tensorflow.python.ops.rnn_cell.",
    "tensorflow.python.ops.rnn_cell_impl.",
    "seq2seq.contrib.rnn_cell.",
)

_LAYER_KWARGS = ("name", "dtype", "trainable")


def known_cell_classes():
    """The short cell names `get_rnn_cell` understands, sorted."""
    return sorted(_CELL_SPECS)


def _fresh_uniform(init_scale):
    return keras.initializers.RandomUniform(-init_scale, init_scale)


def _resolve_spec(cell_classname):
    """Returns `(short_name or None, spec or class)` for a cell name."""
    if not isinstance(cell_classname, str) or not cell_classname.strip():
        raise ConfigError(
            f"rnn_cell.cell_class: expected a cell class name, got {cell_classname!r}."
        )
    name = cell_classname.strip()
    if name in _CELL_SPECS:
        return name, _CELL_SPECS[name]
    for prefix in _TF1_PREFIXES:
        if name.startswith(prefix) and name[len(prefix) :] in _CELL_SPECS:
            short = name[len(prefix) :]
            return short, _CELL_SPECS[short]
    if "." in name:
        try:
            found = locate_class(name, (), what="rnn_cell.cell_class")
        except ConfigError:
            found = None
        if found is not None:
            # Only a class may be built from a config: a function named here
            # (os.system, ...) would otherwise be called with cell_params.
            if not (inspect.isclass(found) and issubclass(found, keras.layers.Layer)):
                raise ConfigError(
                    f"rnn_cell.cell_class: '{cell_classname}' is not a cell class; "
                    "a dotted cell_class must name a subclass of "
                    "keras.layers.Layer, such as keras.layers.GRUCell."
                )
            return None, found
    raise ConfigError(
        f"rnn_cell.cell_class: unknown cell class '{cell_classname}'. Known: "
        f"{', '.join(known_cell_classes())}, or a dotted path to a Keras cell "
        "class such as keras.layers.GRUCell."
    )


def _check_unknown(cell_params, valid, cell_name):
    for key in cell_params:
        if key not in valid:
            raise ConfigError(
                f"rnn_cell.cell_params: '{key}' is not a parameter of {cell_name}. "
                f"Valid parameters: {', '.join(sorted(valid))}."
            )


def _take_units(params, cell_name, *aliases):
    """Pops the unit count given under any alias; `units` wins over others."""
    given = {a: params.pop(a) for a in aliases if a in params}
    if not given:
        raise ConfigError(
            f"rnn_cell.cell_params: {cell_name} needs num_units (the number of "
            "units), e.g. cell_params: {num_units: 128}."
        )
    units = given.get("units", next(iter(given.values())))
    if len(set(given.values())) > 1:
        logging.debug(
            "%s: units %s given as %s; using %s", cell_name, units, given, units
        )
    try:
        units = int(units)
    except (TypeError, ValueError):
        raise ConfigError(
            f"rnn_cell.cell_params.num_units: expected a positive integer, got {units!r}."
        ) from None
    if units <= 0:
        raise ConfigError(
            f"rnn_cell.cell_params.num_units: expected a positive integer, got {units}."
        )
    return units


def _select_variant(spec, cell_params):
    """`spec`, or its variant when a param switches on what only the
    variant's target has (e.g. `LSTMCell` with `num_proj`)."""
    if spec.variant is None:
        return spec
    triggers, variant = spec.variant
    for key in triggers:
        if key in cell_params and cell_params[key] not in _UNSUPPORTED_UNLESS[key]:
            return variant
    return spec


def _mapped_kwargs(short, spec, cell_params, init_scale):
    """Translates TF1 / Keras cell params into the target's kwargs."""
    target = spec.target
    target_args = constructor_args(target)
    keras_args = target_args if spec.keras_params else []
    valid = set(spec.tf1_params) | set(keras_args) | {"units"}
    if spec.keras_params:
        valid |= set(_LAYER_KWARGS)
    valid -= set(_REJECTED_KERAS)
    for key, hint in _REJECTED_KERAS.items():
        if key in cell_params and cell_params[key] not in (None, 0, 0.0):
            raise ConfigError(
                f"rnn_cell.cell_params: '{key}' is not supported for {short}; {hint} "
                "instead."
            )
    params = {k: v for k, v in cell_params.items() if k not in _REJECTED_KERAS}
    _check_unknown(params, valid, short)
    for old, new in _TF1_RENAMES.items():
        if old in params and new in target_args and new not in params:
            params[new] = params.pop(old)
    if "cell_clip" in target_args and params.get("cell_clip") in (-1, -1.0):
        params.pop("cell_clip")  # TF1's LSTMBlockCell: -1 meant no clipping
    for key, allowed in _UNSUPPORTED_UNLESS.items():
        if key in params and key not in target_args:
            value = params.pop(key)
            if value not in allowed:
                raise ConfigError(
                    f"rnn_cell.cell_params: {key}={value!r} is not supported by the "
                    f"Keras cell {short} maps to; remove it."
                )
    for key in _TF1_IGNORED:
        if key in params and key not in keras_args:
            params.pop(key)
    kwargs = {"units": _take_units(params, short, "num_units", "cell_size", "units")}

    if "activation" in params:
        kwargs["activation"] = resolve_activation(
            params.pop("activation"), "rnn_cell.cell_params.activation"
        )
    if "initializer" in params:  # TF1 LSTMCell: weights initializer
        init = params.pop("initializer")
        if init is not None:
            kwargs["kernel_initializer"] = init
            kwargs["recurrent_initializer"] = init
    if "dropout_prob_seed" in params:
        kwargs["seed"] = params.pop("dropout_prob_seed")

    forget_bias = params.pop("forget_bias", None)
    kwargs.update(params)

    if spec.family == "lstm":
        keras_bias = "unit_forget_bias" in kwargs or "bias_initializer" in kwargs
        if forget_bias is not None and keras_bias:
            raise ConfigError(
                f"rnn_cell.cell_params: give either forget_bias (TF1) or "
                f"unit_forget_bias/bias_initializer (Keras) for {short}, not both."
            )
        if not keras_bias:
            value = 1.0 if forget_bias is None else float(forget_bias)
            if value == 1.0:
                kwargs["unit_forget_bias"] = True
            else:
                kwargs["unit_forget_bias"] = False
                kwargs["bias_initializer"] = GateBiasInitializer([0.0, value, 0.0, 0.0])
    elif spec.family == "constant_forget":
        if forget_bias is not None:
            kwargs["forget_bias"] = float(forget_bias)
    elif spec.family == "gru":
        kwargs.setdefault("reset_after", False)
        if "bias_initializer" not in kwargs and not kwargs["reset_after"]:
            # TF1 GRUCell: update and reset gate biases start at 1.
            kwargs["bias_initializer"] = GateBiasInitializer([1.0, 1.0, 0.0])

    if init_scale:
        for key in ("kernel_initializer", "recurrent_initializer"):
            if kwargs.get(key) is None:
                kwargs[key] = _fresh_uniform(init_scale)
    return kwargs


def _dotted_kwargs(cls, cell_params, init_scale):
    """Kwargs for a Keras cell class given by dotted path."""
    args = constructor_args(cls)
    params = dict(cell_params)
    if "units" in args and "num_units" not in args:
        units = _take_units(params, cls.__name__, "num_units", "units")
        params["units"] = units
    valid = set(args) | set(_LAYER_KWARGS)
    _check_unknown(params, valid, cls.__name__)
    for key, hint in _REJECTED_KERAS.items():
        if params.get(key) not in (None, 0, 0.0):
            raise ConfigError(
                f"rnn_cell.cell_params: '{key}' is not supported for "
                f"{cls.__name__}; {hint} instead."
            )
    if init_scale:
        for key in ("kernel_initializer", "recurrent_initializer"):
            if key in args and params.get(key) is None:
                params[key] = _fresh_uniform(init_scale)
    return params


def cell_from_spec(cell_classname, cell_params, init_scale=None):
    """Builds one Keras cell from a class name and its parameters.

    Args:
      cell_classname: A short name (`GRUCell`, `BasicLSTMCell`,
        `LayerNormBasicLSTMCell`, `SimpleRNNCell`, ...; see
        `known_cell_classes()`), a dotted TF1 name
        (`tensorflow.contrib.rnn.GRUCell`) or a dotted path to a Keras cell
        class.
      cell_params: Dict of constructor parameters: the TF1 names of the
        original (`num_units`, `forget_bias`, `activation`, ...) and, for
        Keras-backed names, the Keras arguments (`units`, `reset_after`,
        `kernel_initializer`, ...). When both `num_units` and `units` are
        present, `units` wins.
      init_scale: If set and > 0, kernels and recurrent kernels not given an
        initializer in `cell_params` start uniform in
        `[-init_scale, init_scale]` (as the original's variable-scope
        initializer did); biases keep their own initializers.

    Returns:
      A Keras cell (`keras.layers.Layer` with `state_size`, `output_size`,
      `call(inputs, states, training)`).

    Raises:
      ConfigError: Unknown class, unknown or unsupported parameter, or a
        value the cell rejects.
    """
    cell_params = dict(cell_params or {})
    short, spec = _resolve_spec(cell_classname)
    if short is not None:
        spec = _select_variant(spec, cell_params)
        cls = spec.target
        kwargs = _mapped_kwargs(short, spec, cell_params, init_scale)
    else:
        cls = spec
        kwargs = _dotted_kwargs(cls, cell_params, init_scale)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(
            f"rnn_cell: cannot build {cell_classname} with {cell_params}: {message}"
        ) from None


def get_rnn_cell(
    cell_class="BasicLSTMCell",
    cell_params=None,
    num_layers=1,
    dropout_input_keep_prob=1.0,
    dropout_output_keep_prob=1.0,
    residual_connections=False,
    residual_combiner="add",
    residual_dense=False,
    mode=ModeKeys.TRAIN,
    init_scale=None,
):
    """Builds the (possibly multi-layer) cell an `rnn_cell` block describes.

    Every layer is `cell_from_spec(cell_class, cell_params)` wrapped in a
    `DropoutWrapper`; the layers are stacked in an `ExtendedMultiRNNCell`
    (also for one layer, so that the state structure and the checkpoint
    paths do not depend on the depth or on dropout).

    Args:
      cell_class: Cell class name (see `cell_from_spec`).
      cell_params: Cell constructor parameters; defaults to
        `{"num_units": 128}`.
      num_layers: Number of stacked layers.
      dropout_input_keep_prob: Keep probability of the dropout on each
        layer's input (1.0: none).
      dropout_output_keep_prob: Keep probability of the dropout on each
        layer's output (1.0: none).
      residual_connections: Residual connections between layers (only used
        with two or more layers, as in the original).
      residual_combiner: `add`, `mean` or `concat`.
      residual_dense: Combine each layer's output with all earlier layer
        inputs rather than only its own.
      mode: `train`, `eval` or `infer`; dropout is active only in `train`
        mode and when the cell is called with `training=True`.
      init_scale: Optional uniform init range of the kernels (see
        `cell_from_spec`).

    Returns:
      An `ExtendedMultiRNNCell`. Its `state_size` is a list with one list of
      ints per layer, e.g. `[[128, 128]]` for one LSTM layer.

    Raises:
      ConfigError: An invalid value.
    """
    if cell_params is None:
        cell_params = {"num_units": 128}
    if mode not in ModeKeys.ALL:
        raise ValueError(f"mode must be one of {ModeKeys.ALL}, got {mode!r}")
    try:
        num_layers = int(num_layers)
    except (TypeError, ValueError):
        num_layers = 0
    if num_layers < 1:
        raise ConfigError(
            f"rnn_cell.num_layers must be a positive integer, got {num_layers!r}."
        )
    cells = []
    for index in range(num_layers):
        cell = cell_from_spec(cell_class, cell_params, init_scale=init_scale)
        cells.append(
            DropoutWrapper(
                cell,
                input_keep_prob=dropout_input_keep_prob,
                output_keep_prob=dropout_output_keep_prob,
                mode=mode,
                name=f"layer_{index}",
            )
        )
    if residual_connections and num_layers == 1:
        logging.info("rnn_cell.residual_connections has no effect with one layer.")
    return ExtendedMultiRNNCell(
        cells,
        residual_connections=residual_connections,
        residual_combiner=residual_combiner,
        residual_dense=residual_dense,
        mode=mode,
    )
