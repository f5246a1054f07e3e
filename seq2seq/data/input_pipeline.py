"""Input pipelines: how examples are read from files and split into tokens.

An input pipeline is a `Configurable` built from YAML such as

    class: ParallelTextInputPipeline
    params:
      source_files: [train.sources.txt]
      target_files: [train.targets.txt]

Its `make_dataset()` returns a `tf.data.Dataset` of single, unbatched
examples, each a dict

    source_tokens  [S] tf.string  the source tokens, then "SEQUENCE_END"
    source_len     []  tf.int32   S
    target_tokens  [T] tf.string  "SEQUENCE_START", the target tokens,
                                  "SEQUENCE_END" (only when there are targets)
    target_len     []  tf.int32   T (only when there are targets)

and, for inference with `ParallelTextInputPipeline`'s `target_prefix_files`,
`target_prefix_tokens` [P] tf.string and `target_prefix_len` [] tf.int32:
the tokens each output must start with (no special tokens added).

Batching, padding and bucketing are done by `seq2seq.data.batching`.

Text and TFRecord pipelines parse their records `PARSE_BATCH_SIZE` at a time
(`parse_batch`, vectorized string ops; the result is unbatched again), which
is several times cheaper in `tf.data` than one call per line and gives
exactly the same examples as `parse_record`. `make_dataset(cache=True)`
parses one epoch, keeps it in memory and shuffles and repeats from there.

Decisions on input that is not clean, made on purpose:

- Files are checked in Python before any training starts: a missing file (or
  a glob pattern matching nothing) is a `DataError` naming it; an empty
  `source_files` list is a `ConfigError`; parallel source and target files
  whose total line counts differ are a `DataError` naming the files and both
  counts; a corpus without any line is a `DataError`.
- Blank lines are kept. A blank source line becomes `[SEQUENCE_END]` and a
  blank target line `[SEQUENCE_START, SEQUENCE_END]`, so the n-th output of
  inference always belongs to the n-th input line.
- Bytes that are not valid UTF-8 are replaced with U+FFFD (the Unicode
  replacement character) instead of failing in the middle of training.
- `make_dataset(max_source_len=..., max_target_len=...)` keeps only the
  first tokens of each side (special tokens included), as the model's
  `source.max_seq_len` / `target.max_seq_len` slices would, and splits only
  a bounded prefix of a long line, so one line of a million tokens costs
  about what a short one does. Without these limits lines are not cut,
  however long.
- Tokens are split on the delimiter and empty tokens are dropped, so runs of
  spaces and leading or trailing spaces make no empty tokens. As in the
  original, every character of a multi-character delimiter is a separator.
  An empty delimiter splits a line into Unicode characters (not bytes);
  spaces are then tokens too.
- A trailing carriage return (Windows line ending) is removed from each line.
- With `source_tokenizer` / `target_tokenizer` (a SentencePiece model) a
  side's lines are raw text split into subword pieces by the model, after
  the same cleaning; the pieces are the tokens.
- Shuffling happens only in `train` mode (and only if `shuffle` is true),
  through a buffer of `shuffle_buffer_size` lines. In the other modes, and
  with `shuffle: false`, examples keep the order of the lines in the files
  (files are read one after another in the order given).
- `num_epochs: null` repeats forever in `train` mode and reads the data once
  in `eval` and `infer` mode.

Why over the ~700-line guide: the base class and the two text pipelines
share one reading path (file checks, line counts, vectorized parsing,
tokenizers, forced prefixes); the helpers other pipelines reuse are
imported from here by name (`seq2seq.data.image_pipeline`), and configs name
these classes by this module's path, as the original's did.
"""

import os
import sys

import tensorflow as tf
from google.protobuf.message import DecodeError

from seq2seq.configurable import (
    Configurable,
    ModeKeys,
    deep_merge,
    locate_class,
    maybe_load_yaml,
)
from seq2seq.data.text_tokens import (  # noqa: F401  (re-exported)
    PREFIX_BYTES_PER_TOKEN,
    split_tokens,
    split_tokens_batch,
)
from seq2seq.errors import ConfigError, DataError

SEQUENCE_START = "SEQUENCE_START"
SEQUENCE_END = "SEQUENCE_END"

FEATURE_KEYS = frozenset(["source_tokens", "source_len"])
LABEL_KEYS = frozenset(["target_tokens", "target_len"])

_GLOB_CHARS = "*?["

# Records parsed per call of a pipeline's vectorized `parse_batch`.
PARSE_BATCH_SIZE = 128


def first_record(files, read_first, owner):
    """Returns `read_first(path)` for the first file that has a record.

    Args:
      files: Paths, in order.
      read_first: `path -> tuple or None` (None for an empty file).
      owner: The pipeline's name, for the error message.

    Raises:
      DataError: Every file is empty.
    """
    for path in files:
        found = read_first(path)
        if found is not None:
            return found
    raise DataError(f"{owner}: the files {', '.join(files)} contain no records.")


def make_input_pipeline_from_def(def_dict, mode, **kwargs):
    """Creates an input pipeline from its `{class, params}` definition.

    Args:
      def_dict: A dict or a YAML string with a `class` key (a class name in
        this module, e.g. `ParallelTextInputPipeline`, or a dotted path) and an
        optional `params` key.
      mode: One of `ModeKeys.ALL`.
      **kwargs: Params that override those in the definition (e.g.
        `shuffle=False, num_epochs=1`).

    Returns:
      An `InputPipeline`.

    Raises:
      ConfigError: The definition is malformed or names an unknown class.
    """
    definition = maybe_load_yaml(def_dict, "input pipeline")
    if not isinstance(definition, dict) or "class" not in definition:
        raise ConfigError(
            "input pipeline: the definition needs a 'class' key (and optional "
            f"'params'), e.g. class: ParallelTextInputPipeline; got {definition!r}."
        )
    extra = sorted(set(definition) - {"class", "params"})
    if extra:
        raise ConfigError(
            f"input pipeline: unexpected key(s) {extra} next to 'class'; only "
            "'class' and 'params' are allowed."
        )
    # The image pipeline module imports this one, so it is named, not imported.
    pipeline_class = locate_class(
        definition["class"],
        [sys.modules[__name__], "seq2seq.data.image_pipeline"],
        what="input pipeline",
        base=InputPipeline,
    )
    params = deep_merge(definition.get("params") or {}, kwargs)
    return pipeline_class(params, mode)


def _as_file_list(value, key, owner):
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    files = []
    for item in value:
        if not isinstance(item, str) or not item:
            raise ConfigError(
                f"{owner}: '{key}' must be a list of file paths, got {item!r}."
            )
        files.append(item)
    return files


def expand_record_files(patterns, owner):
    """`expand_files` for the `files` param of a TFRecord pipeline, which
    must not be empty.

    Raises:
      ConfigError: `patterns` is empty.
      DataError: As `expand_files`.
    """
    if not patterns:
        raise ConfigError(
            f"{owner}: 'files' is empty; list at least one TFRecord file."
        )
    return expand_files(patterns, "files", owner)


def expand_files(patterns, key, owner="input pipeline"):
    """Expands `~` and glob patterns and checks that every file exists.

    Args:
      patterns: A list of paths or glob patterns, in reading order.
      key: The parameter the list came from (for error messages).
      owner: The class name (for error messages).

    Returns:
      A list of existing file paths (patterns expanded in sorted order).

    Raises:
      DataError: A file does not exist or a pattern matches nothing.
    """
    files = []
    for pattern in patterns:
        pattern = os.path.expanduser(pattern)
        if any(char in pattern for char in _GLOB_CHARS) and not tf.io.gfile.exists(
            pattern
        ):
            matches = sorted(tf.io.gfile.glob(pattern))
            if not matches:
                raise DataError(
                    f"{owner}: pattern {pattern} in '{key}' matches no file; "
                    "check the path."
                )
            files.extend(matches)
            continue
        if not tf.io.gfile.exists(pattern):
            raise DataError(
                f"{owner}: file in '{key}' not found: {pattern}; check the path."
            )
        if tf.io.gfile.isdir(pattern):
            raise DataError(
                f"{owner}: '{key}' lists a directory, not a file: {pattern}."
            )
        files.append(pattern)
    return files


def count_lines(path, chunk_size=1 << 22):
    """Counts lines as `tf.data.TextLineDataset` does.

    A last line without a final newline counts; an empty file has 0 lines.
    """
    lines = 0
    last = b"\n"
    with tf.io.gfile.GFile(path, "rb") as handle:
        while True:
            chunk = handle.read(chunk_size)
            if not chunk:
                break
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (0 if last == b"\n" else 1)


def _as_dense_example(example):
    """Unbatching a ragged batch gives `RaggedTensorSpec` components of
    ragged rank 0; this map makes them plain [N] tensors again so that
    `padded_batch` accepts them."""
    return {
        key: tf.ensure_shape(tf.identity(value), [None] if value.shape.rank else [])
        for key, value in example.items()
    }


class InputPipeline(Configurable):
    """Base class of the input pipelines.

    Params:
      shuffle: Shuffle the examples (only in `train` mode).
      num_epochs: How many times to read the data; `None` means forever in
        `train` mode and once otherwise.
      shuffle_buffer_size: The number of examples the shuffle draws from (an
        addition to the original's params).

    Args:
      params: The user's params, merged over `default_params()`.
      mode: One of `ModeKeys.ALL`.
    """

    def __init__(self, params, mode):
        super().__init__(params, mode)
        epochs = self.params["num_epochs"]
        if epochs is not None:
            if isinstance(epochs, bool) or not isinstance(epochs, (int, float, str)):
                raise ConfigError(
                    f"{type(self).__name__}: num_epochs must be a positive integer "
                    f"or null, got {epochs!r}."
                )
            try:
                number = float(epochs)
            except ValueError:
                number = -1.0
            if not number.is_integer() or number < 1:
                raise ConfigError(
                    f"{type(self).__name__}: num_epochs must be a positive integer "
                    f"or null, got {epochs!r}."
                )
            self.params["num_epochs"] = int(number)
        if self.params["shuffle_buffer_size"] < 1:
            raise ConfigError(
                f"{type(self).__name__}: shuffle_buffer_size must be at least 1, "
                f"got {self.params['shuffle_buffer_size']}."
            )
        self.num_examples = None
        self._validated = False
        self._max_lengths = {"source": None, "target": None}
        self._tokenizers = {}

    @staticmethod
    def default_params():
        return {
            "shuffle": True,
            "num_epochs": None,
            "shuffle_buffer_size": 10000,
        }

    @property
    def feature_keys(self):
        """The keys of the features this pipeline produces (a set)."""
        return set(FEATURE_KEYS)

    @property
    def label_keys(self):
        """The keys of the labels this pipeline produces (a set)."""
        return set()

    @property
    def shuffles(self):
        """Whether examples are shuffled: `shuffle` is set and mode is train."""
        return bool(self.params["shuffle"]) and self.mode == ModeKeys.TRAIN

    @property
    def epochs(self):
        """The number of passes over the data; `None` means forever."""
        if self.params["num_epochs"] is not None:
            return self.params["num_epochs"]
        return None if self.mode == ModeKeys.TRAIN else 1

    def check(self):
        """Validates the input once (the result is cached).

        Returns:
          The number of examples in one epoch, or `None` if unknown.
        """
        if not self._validated:
            self.num_examples = self.validate()
            self._validated = True
        return self.num_examples

    def validate(self):
        """Checks the files and params before any reading starts.

        Returns:
          The number of examples in one epoch, or `None` if unknown.

        Raises:
          ConfigError, DataError: Something the user must fix.
        """
        raise NotImplementedError

    def tokenizer_path(self, side):
        """The `source_tokenizer` / `target_tokenizer` of `side` ("source" or
        "target"): a SentencePiece model path, or "" (words)."""
        return self.params.get(f"{side}_tokenizer") or ""

    def tokenizer(self, side, fresh=False):
        """The `SubwordTokenizer` of `side` (kept, or a new one with
        `fresh`), or `None`. Validation only reads the model file
        (`_check_tokenizer_files`): the op's resource is made when a
        dataset is, since resetting the random seed
        (`tf.random.set_seed`) clears the eager kernels that own it."""
        path = self.tokenizer_path(side)
        if path and (fresh or side not in self._tokenizers):
            from seq2seq.data.tokenizers import SubwordTokenizer

            what = f"{type(self).__name__}: {side}_tokenizer"
            self._tokenizers[side] = SubwordTokenizer(path, what)
        return self._tokenizers.get(side) if path else None

    def _check_tokenizer_files(self):
        from seq2seq.data.sentencepiece_model import read_model_proto

        for side in ("source", "target"):
            if self.tokenizer_path(side):
                what = f"{type(self).__name__}: {side}_tokenizer"
                read_model_proto(self.tokenizer_path(side), what)

    def _splitter(self, side):
        """What `side` is split with: its tokenizer, else its delimiter."""
        return self.tokenizer(side) or self.params[f"{side}_delimiter"]

    def read_records(self):
        """Returns a `tf.data.Dataset` of raw records in file order."""
        raise NotImplementedError

    def parse_record(self, record):
        """Maps one raw record to the feature dict (runs inside `tf.data`)."""
        raise NotImplementedError

    def parse_batch(self, records):
        """Vectorized `parse_record`: maps a batch of raw records to a dict of
        batched features (token features as [N, None] `tf.RaggedTensor`s).

        `None` (the default) means the pipeline has no vectorized parser and
        `make_dataset` maps `parse_record` over single records instead.
        Pipelines whose records can be parsed a batch at a time override it:
        it must give exactly what `parse_record` gives record by record.
        """
        del records
        return None

    @property
    def parses_batches(self):
        """Whether this pipeline has a vectorized `parse_batch`."""
        return type(self).parse_batch is not InputPipeline.parse_batch

    def input_files(self):
        """The files this pipeline reads, a list (call after `check()`).

        Gathered from the `source_files`, `target_files` and `files`
        attributes the built-in pipelines set when validating; a pipeline
        keeping its files elsewhere overrides this.
        """
        found = []
        for name in ("source_files", "target_files", "target_prefix_files", "files"):
            found.extend(getattr(self, name, None) or [])
        found += [self.tokenizer_path(side) for side in ("source", "target")]
        return [path for path in found if path]

    def corpus_bytes(self):
        """The size on disk of one epoch's files, or `None` if unknown.

        Call after `check()`. Used to decide whether a corpus is small enough
        to cache in memory (see `make_dataset(cache=True)`).
        """
        return None

    def make_dataset(self, cache=False, max_source_len=None, max_target_len=None):
        """Validates the files and builds the unbatched example dataset.

        Records are parsed in parallel (`num_parallel_calls=AUTOTUNE`, in a
        deterministic order) and, for pipelines with `parse_batch`, a batch
        of `PARSE_BATCH_SIZE` records at a time.

        Args:
          cache: Keep the parsed examples of the first epoch in memory and
            read the later epochs from there (`tf.data.Dataset.cache`). The
            cache holds the examples in file order; they are shuffled after
            it, differently in every epoch. The whole corpus then lives in
            memory and, once the first epoch is complete, in every checkpoint
            of an iterator over the dataset, so only use it for small corpora.
          max_source_len: Keep only the first `max_source_len` source tokens
            (`SEQUENCE_END` included) of each example, with `source_len`
            clipped to it; long lines are split only as far as needed (see
            `split_tokens_batch`). `None` or less than 1: no limit.
          max_target_len: The same for the target tokens (`SEQUENCE_START`
            and `SEQUENCE_END` included).

        Returns:
          A `tf.data.Dataset` of dicts: `source_tokens` [S] tf.string,
          `source_len` [] tf.int32 and, when there are targets,
          `target_tokens` [T] tf.string, `target_len` [] tf.int32.

        Raises:
          ConfigError, DataError: Something the user must fix.
        """
        self.check()
        for side in ("source", "target"):
            self.tokenizer(side, fresh=True)
        # Read by `_text_features` when the parse functions are traced below.
        self._max_lengths = {"source": max_source_len, "target": max_target_len}
        dataset = self.read_records()
        if cache:
            # Parse once, then shuffle and repeat the cached examples; cache()
            # must come before shuffle/repeat to hold one unshuffled epoch.
            dataset = self._parse_dataset(dataset).cache()
        if self.shuffles:
            dataset = dataset.shuffle(
                self.params["shuffle_buffer_size"], reshuffle_each_iteration=True
            )
        dataset = dataset.repeat(self.epochs)
        if not cache:
            dataset = self._parse_dataset(dataset)
        return dataset

    def _parse_dataset(self, records):
        """Maps a dataset of raw records to one of example dicts."""
        if not self.parses_batches:
            return records.map(
                tf.autograph.experimental.do_not_convert(self.parse_record),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
        return (
            self._parse_batches(records)
            .unbatch()
            .map(tf.autograph.experimental.do_not_convert(_as_dense_example))
        )

    def _parse_batches(self, records):
        """Raw records to batches of up to `PARSE_BATCH_SIZE` examples, for
        a pipeline that `parses_batches` (`parse_batch`'s dicts: ragged
        tokens [N, None], lengths [N])."""
        return records.batch(PARSE_BATCH_SIZE).map(
            tf.autograph.experimental.do_not_convert(
                lambda *batch: self.parse_batch(batch if len(batch) > 1 else batch[0])
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    def _target_features(self, text, delimiter, split=split_tokens):
        """`delimiter`: a string or a tokenizer (see `split_tokens_batch`)."""
        tokens, length = split(
            text,
            delimiter,
            prepend_token=SEQUENCE_START,
            append_token=SEQUENCE_END,
            max_tokens=self._max_lengths["target"],
        )
        return {"target_tokens": tokens, "target_len": length}

    def _text_features(self, source, target=None, split=split_tokens):
        """The features of a source text and an optional target text.

        Args:
          source: A scalar string (`split=split_tokens`) or [N] strings
            (`split=split_tokens_batch`, giving [N, None] ragged tokens).
          target: The same for the target side, or None.
          split: `split_tokens` or `split_tokens_batch`.

        Returns:
          `source_tokens`, `source_len` and, with a target, `target_tokens`,
          `target_len`, split into pieces by `source_tokenizer` /
          `target_tokenizer` where set, else at `source_delimiter` /
          `target_delimiter`.
        """
        tokens, length = split(
            source,
            self._splitter("source"),
            append_token=SEQUENCE_END,
            max_tokens=self._max_lengths["source"],
        )
        features = {"source_tokens": tokens, "source_len": length}
        if target is not None:
            features.update(
                self._target_features(target, self._splitter("target"), split)
            )
        return features

    def _needs_targets(self, have_targets, what):
        if not have_targets and self.mode in (ModeKeys.TRAIN, ModeKeys.EVAL):
            raise ConfigError(
                f"{type(self).__name__}: {what}; training and evaluation need "
                "targets (only inference can do without)."
            )


class ParallelTextInputPipeline(InputPipeline):
    """Reads line-aligned source and target text files.

    The files of each side are read one after another in the order given, and
    the n-th source line is paired with the n-th target line.

    Params:
      source_files: Source text files (paths or glob patterns), one example
        per line.
      target_files: Target text files aligned line by line with the sources;
        may be empty for inference.
      source_delimiter: Characters separating source tokens; default a space,
        an empty string for characters.
      target_delimiter: The same for targets.
      target_prefix_files: For inference: files aligned line by line with
        the sources whose n-th line (split at `target_delimiter`, cut to
        `target.max_seq_len` tokens) is the forced start of the n-th output;
        an empty line forces nothing. Empty (the default): no prefixes.
      source_tokenizer, target_tokenizer: SentencePiece `.model` files: that
        side is raw text, split into pieces inside `tf.data` instead of at
        its delimiter (`seq2seq.data.tokenizers`); "" (default): words.
    """

    @staticmethod
    def default_params():
        params = InputPipeline.default_params()
        params.update(
            {
                "source_files": [],
                "target_files": [],
                "source_delimiter": " ",
                "target_delimiter": " ",
                "target_prefix_files": [],
                "source_tokenizer": "",
                "target_tokenizer": "",
            }
        )
        return params

    def __init__(self, params, mode):
        super().__init__(params, mode)
        name = type(self).__name__
        self._source_patterns = _as_file_list(
            self.params["source_files"], "source_files", name
        )
        self._target_patterns = _as_file_list(
            self.params["target_files"], "target_files", name
        )
        self._prefix_patterns = _as_file_list(
            self.params["target_prefix_files"], "target_prefix_files", name
        )
        self.source_files = None
        self.target_files = None
        self.target_prefix_files = None

    @property
    def has_targets(self):
        """Whether target files are given."""
        return bool(self._target_patterns)

    @property
    def label_keys(self):
        return set(LABEL_KEYS) if self.has_targets else set()

    def validate(self):
        name = type(self).__name__
        if not self._source_patterns:
            raise ConfigError(
                f"{name}: 'source_files' is empty; list at least one source text file."
            )
        self._needs_targets(self.has_targets, "'target_files' is empty")
        self.source_files = expand_files(self._source_patterns, "source_files", name)
        self._check_tokenizer_files()
        self.target_files = expand_files(self._target_patterns, "target_files", name)
        self.target_prefix_files = expand_files(
            self._prefix_patterns, "target_prefix_files", name
        )

        source_counts = [count_lines(path) for path in self.source_files]
        total = sum(source_counts)
        if total == 0:
            raise DataError(
                f"{name}: the source files {', '.join(self.source_files)} contain no "
                "lines; give files with one example per line."
            )
        for files, what in (
            (self.target_files, "target"),
            (self.target_prefix_files, "target prefix"),
        ):
            counts = [count_lines(path) for path in files]
            if files and sum(counts) != total:
                raise DataError(
                    f"{name}: source and {what} files must have the same number "
                    f"of lines, but {_describe(self.source_files, source_counts)} "
                    f"and {_describe(files, counts)}; they must be aligned line "
                    "by line."
                )
        return total

    def read_records(self):
        columns = [self.source_files, self.target_files, self.target_prefix_files]
        datasets = tuple(tf.data.TextLineDataset(f) for f in columns if f)
        return datasets[0] if len(datasets) == 1 else tf.data.Dataset.zip(datasets)

    def parse_record(self, *record):
        return self._parse(record, split_tokens)

    def parse_batch(self, records):
        if not isinstance(records, tuple):
            records = (records,)
        return self._parse(records, split_tokens_batch)

    def _parse(self, records, split):
        """Features of `(source, [target], [target prefix])` records."""
        if not self.target_prefix_files:
            return self._text_features(*records, split=split)
        features = self._text_features(*records[:-1], split=split)
        tokens, length = split(
            records[-1],
            self.params["target_delimiter"],
            max_tokens=self._max_lengths["target"],
        )
        features.update({"target_prefix_tokens": tokens, "target_prefix_len": length})
        return features

    def corpus_bytes(self):
        self.check()
        return _total_size(
            self.source_files + self.target_files + self.target_prefix_files
        )


def _total_size(files):
    return sum(tf.io.gfile.stat(path).length for path in files)


def _describe(files, counts):
    if len(files) == 1:
        return f"{files[0]} has {counts[0]} lines"
    parts = ", ".join(f"{path} ({count})" for path, count in zip(files, counts))
    return f"{parts} have {sum(counts)} lines in total"


class TFRecordInputPipeline(InputPipeline):
    """Reads `tf.train.Example` records holding a source and a target string.

    Each record has a bytes feature with the source text and, except possibly
    for inference, one with the target text. Whether there are targets is
    decided from the first record of the files.

    Params:
      files: TFRecord files (paths or glob patterns).
      source_field: The feature holding the source text.
      target_field: The feature holding the target text.
      source_delimiter: Characters separating source tokens; default a space,
        an empty string for characters.
      target_delimiter: The same for targets.
      source_tokenizer, target_tokenizer: SentencePiece `.model` files: that
        side is raw text, split into pieces inside `tf.data` instead of at
        its delimiter (`seq2seq.data.tokenizers`); "" (default): words.
    """

    @staticmethod
    def default_params():
        params = InputPipeline.default_params()
        params.update(
            {
                "files": [],
                "source_field": "source",
                "target_field": "target",
                "source_delimiter": " ",
                "target_delimiter": " ",
                "source_tokenizer": "",
                "target_tokenizer": "",
            }
        )
        return params

    def __init__(self, params, mode):
        super().__init__(params, mode)
        self._patterns = _as_file_list(
            self.params["files"], "files", type(self).__name__
        )
        self.files = None
        self.has_targets = True

    @property
    def label_keys(self):
        return set(LABEL_KEYS) if self.has_targets else set()

    def validate(self):
        name = type(self).__name__
        self.files = expand_record_files(self._patterns, name)
        self._check_tokenizer_files()
        source_field = self.params["source_field"]
        target_field = self.params["target_field"]
        path, example = first_record(self.files, self._first_example, name)
        features = example.features.feature
        if source_field not in features or features[source_field].WhichOneof(
            "kind"
        ) != ("bytes_list"):
            raise DataError(
                f"{name}: the first record of {path} has no bytes feature "
                f"'{source_field}' (features: {', '.join(sorted(features)) or 'none'}); "
                "set source_field."
            )
        self.has_targets = target_field in features
        self._needs_targets(
            self.has_targets,
            f"the first record of {path} has no feature '{target_field}' (set target_field)",
        )
        return None

    @staticmethod
    def _first_example(path):
        try:
            for raw in tf.data.TFRecordDataset(path).take(1):
                return path, tf.train.Example.FromString(raw.numpy())
        except (tf.errors.OpError, DecodeError, ValueError) as err:
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DataError(
                f"TFRecordInputPipeline: {path} is not a readable file of "
                f"tf.train.Example records ({message})."
            ) from None
        return None

    def read_records(self):
        return tf.data.TFRecordDataset(self.files)

    def _feature_spec(self):
        spec = {self.params["source_field"]: tf.io.FixedLenFeature([], tf.string)}
        if self.has_targets:
            spec[self.params["target_field"]] = tf.io.FixedLenFeature(
                [], tf.string, default_value=""
            )
        return spec

    def _parsed_features(self, parsed, split):
        target = parsed[self.params["target_field"]] if self.has_targets else None
        return self._text_features(parsed[self.params["source_field"]], target, split)

    def parse_record(self, record):
        parsed = tf.io.parse_single_example(record, self._feature_spec())
        return self._parsed_features(parsed, split_tokens)

    def parse_batch(self, records):
        parsed = tf.io.parse_example(records, self._feature_spec())
        return self._parsed_features(parsed, split_tokens_batch)

    def corpus_bytes(self):
        self.check()
        return _total_size(self.files)
