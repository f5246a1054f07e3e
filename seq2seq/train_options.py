"""`TrainOptions`: the options a model was trained with (`train_options.json`).

`bin/train.py` writes them to the model directory so that `bin/infer.py`
(or a restarted training run) can rebuild the same model and check that it
is fed the same vocabularies (compared by content: SHA-256 checksums).
`seq2seq.run_dir` re-exports them with the other contents of an output
directory; this module imports nothing from training or inference.
"""

import json
import os

import tensorflow as tf

from seq2seq.atomic_write import replace_file
from seq2seq.data.vocab import file_checksum
from seq2seq.errors import DataError, UserError

TRAIN_OPTIONS_FILENAME = "train_options.json"


def vocab_checksums(paths):
    """Maps each non-empty path in `paths` to the SHA-256 of its bytes."""
    return {path: file_checksum(path) for path in paths if path}


def _json_default(value):
    """Makes numpy scalars/arrays and sets JSON-serialisable."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable: {value!r}")


# Model params that may change when training is resumed from a checkpoint:
# they affect neither the variables nor their meaning. Matched as prefixes of
# the top-level model_params keys.
RESTART_SAFE_PARAMS = (
    "optimizer.learning_rate",
    "optimizer.lr_",
    "optimizer.clip_gradients",
    "optimizer.clip_embed_gradients",
    "optimizer.sync_replicas",
    "inference.",
    "loss.",
    "source.max_seq_len",
    "target.max_seq_len",
)

# model_params keys holding vocabulary paths; compared by content instead
# when both sides recorded vocabulary checksums.
VOCAB_PARAMS = ("vocab_source", "vocab_target")


def _diff(saved, new, prefix, out, skip=()):
    """Appends one line per differing leaf of two nested dicts to `out`.

    Top-level keys starting with any prefix in `skip` are not compared.
    """
    if isinstance(saved, dict) and isinstance(new, dict):
        for key in sorted(set(saved) | set(new), key=str):
            if any(str(key).startswith(start) for start in skip):
                continue
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in new:
                out.append(f"{where}: {saved[key]!r} (saved) is missing now")
            elif key not in saved:
                out.append(f"{where}: missing (saved) != {new[key]!r} (now)")
            else:
                _diff(saved[key], new[key], where, out)
        return
    if isinstance(saved, (list, tuple)) and isinstance(new, (list, tuple)):
        saved, new = list(saved), list(new)
    if saved != new:
        out.append(f"{prefix}: {saved!r} (saved) != {new!r} (now)")


def _short_repr(value, limit=60):
    """`repr(value)`, cut to about `limit` characters for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class TrainOptions:
    """The options a model was trained with, saved next to its checkpoints.

    Args:
      model_class: Name of the model class (short or dotted).
      model_params: The model's params dict as given by the user.
      vocab_checksums: Optional `{path: sha256}` of the vocabulary files.
      resolved_config: Optional dict of the fully merged configuration, kept
        for reference (not compared by default).
      **extra: Any further JSON-serialisable fields to keep.
    """

    def __init__(
        self,
        model_class,
        model_params,
        vocab_checksums=None,
        resolved_config=None,
        **extra,
    ):
        self._model_class = model_class
        self._model_params = model_params if model_params is not None else {}
        self._vocab_checksums = dict(vocab_checksums or {})
        self._resolved_config = resolved_config
        self._extra = dict(extra)

    @property
    def model_class(self):
        """The model class name."""
        return self._model_class

    @property
    def model_params(self):
        """The model parameters dict."""
        return self._model_params

    @property
    def vocab_checksums(self):
        """`{path: sha256}` of the vocabularies (empty if not recorded)."""
        return self._vocab_checksums

    @property
    def resolved_config(self):
        """The merged configuration dict, or `None`."""
        return self._resolved_config

    @property
    def extra(self):
        """Further fields, a dict."""
        return self._extra

    @staticmethod
    def path(model_dir):
        """The path of the options file in `model_dir`."""
        return os.path.join(model_dir, TRAIN_OPTIONS_FILENAME)

    def to_dict(self):
        """The options as a JSON-ready dict."""
        result = {"model_class": self.model_class, "model_params": self.model_params}
        if self.vocab_checksums:
            result["vocab_checksums"] = self.vocab_checksums
        if self.resolved_config is not None:
            result["resolved_config"] = self.resolved_config
        result.update(self.extra)
        return result

    @classmethod
    def from_model(cls, model_class, model_params, resolved_config=None, **extra):
        """Options for a new run, with checksums of the model's vocabularies.

        Args:
          model_class: The model class name.
          model_params: The model params dict (`None` for `{}`); the files
            named by its `vocab_source` / `vocab_target` keys are hashed.
          resolved_config: Optional merged configuration to keep.
          **extra: Further fields.

        Raises:
          DataError: A vocabulary file named in `model_params` is missing.
        """
        model_params = dict(model_params or {})
        paths = []
        for key in VOCAB_PARAMS:
            path = model_params.get(key)
            if not isinstance(path, str) or not path:
                continue
            if not tf.io.gfile.exists(path):
                raise DataError(
                    f"model_params: {key}: file not found: {path}; give the path "
                    "of an existing vocabulary file (bin/tools/generate_vocab.py "
                    "writes one)."
                )
            paths.append(path)
        return cls(
            model_class,
            model_params,
            vocab_checksums=vocab_checksums(paths),
            resolved_config=resolved_config,
            **extra,
        )

    @classmethod
    def from_dict(cls, options, source="train options"):
        """Builds options from a dict as written by `to_dict`.

        Raises:
          UserError: `options` is not a dict, has no `model_class`, or
            `model_class`, `model_params` or `vocab_checksums` has the
            wrong type.
        """
        if not isinstance(options, dict) or "model_class" not in options:
            raise UserError(
                f"{source}: expected a JSON object with a 'model_class' field. "
                "Point --model_dir at a directory written by bin/train.py."
            )
        for key, kind, what in (
            ("model_class", str, "a string (the model class name)"),
            ("model_params", dict, "a JSON object of model parameters"),
            ("vocab_checksums", dict, "a JSON object of vocabulary checksums"),
        ):
            value = options.get(key)
            if value is None and key != "model_class":
                continue
            if not isinstance(value, kind) or (key == "model_class" and not value):
                raise UserError(
                    f"{source}: '{key}' must be {what}, got {_short_repr(value)}. "
                    "Restore the file written by bin/train.py."
                )
        options = dict(options)
        return cls(
            model_class=options.pop("model_class"),
            model_params=options.pop("model_params", None),
            vocab_checksums=options.pop("vocab_checksums", None),
            resolved_config=options.pop("resolved_config", None),
            **options,
        )

    def dump(self, model_dir):
        """Writes `train_options.json` (pretty JSON) into `model_dir`,
        creating it; an existing file is never left half-written
        (`seq2seq.atomic_write.replace_file`).
        """
        text = json.dumps(
            self.to_dict(), indent=2, sort_keys=True, default=_json_default
        )
        replace_file(TrainOptions.path(model_dir), text + "\n")

    @classmethod
    def load(cls, model_dir):
        """Reads `train_options.json` from `model_dir`.

        Raises:
          UserError: The file is missing, not valid JSON or lacks fields.
        """
        path = TrainOptions.path(model_dir)
        if not tf.io.gfile.exists(path):
            raise UserError(
                f"{path} not found. Point --model_dir at the --output_dir of a "
                "training run (it writes that file)."
            )
        try:
            with tf.io.gfile.GFile(path, "r") as handle:
                options = json.loads(handle.read())
        except (ValueError, UnicodeDecodeError) as err:
            raise UserError(
                f"{path} is not valid JSON ({err}). Restore it or delete it and "
                "pass --model and --model_params explicitly."
            ) from None
        return cls.from_dict(options, source=path)

    def check_compatible(
        self,
        other,
        fields=("model_class", "model_params", "vocab_checksums"),
        ignore_params=RESTART_SAFE_PARAMS,
    ):
        """Lists how `other` (the new run) differs from these (saved) options.

        Vocabulary checksums are compared by content: a vocabulary that moved
        to a new path with the same checksum is compatible, one at the same
        path with a different checksum is not. Checksums missing on either
        side are not compared. When both sides have checksums, the vocabulary
        paths in `model_params` (`vocab_source`, `vocab_target`) are not
        compared as strings.

        Args:
          other: The `TrainOptions` of the new run.
          fields: Which fields to compare: any of `model_class`,
            `model_params`, `vocab_checksums`, `resolved_config`, or the name
            of an extra field.
          ignore_params: Prefixes of top-level `model_params` keys that may
            differ (by default the learning rate, decay, clipping, inference
            and length-limit settings). Pass `()` to compare every key.

        Returns:
          A list of one-line descriptions, empty when compatible.
        """
        saved_all, new_all = self.to_dict(), other.to_dict()
        skip = tuple(ignore_params)
        if self.vocab_checksums and other.vocab_checksums:
            skip += VOCAB_PARAMS
        differences = []
        for field in fields:
            saved, new = saved_all.get(field), new_all.get(field)
            if field == "vocab_checksums":
                differences.extend(_vocab_differences(saved or {}, new or {}))
            elif field == "model_params":
                _diff(saved or {}, new or {}, field, differences, skip)
            else:
                _diff(saved, new, field, differences)
        return differences

    def differences(self, other, **kwargs):
        """Same as `check_compatible`."""
        return self.check_compatible(other, **kwargs)


def _vocab_differences(saved, new):
    if not saved or not new:
        return []
    differences = []
    for path in sorted(set(saved) & set(new)):
        if saved[path] != new[path]:
            differences.append(
                f"vocabulary {path} changed: sha256 {saved[path][:12]}... (saved) "
                f"!= {new[path][:12]}... (now)"
            )
    if not differences and sorted(saved.values()) != sorted(new.values()):
        differences.append(
            f"vocabularies differ: saved {sorted(saved)} != now {sorted(new)} "
            "(different file contents)"
        )
    return differences
