"""EnsembleModel: several trained models decoding as one.

`bin/infer.py --model_dir a,b,c` (or several checkpoints in
`--checkpoint_path`) builds one model per run with `load_ensemble` and
wraps them in an `EnsembleModel`, which `seq2seq.inference.inference`
drives like a single model. At each step the members' distributions are
averaged (`seq2seq.inference.ensemble.average_log_probs`: the log of the
mean of their probabilities), under greedy search, sampling and beam
search alike.

The members must share the target vocabulary (their outputs are averaged
id by id) and the source vocabulary and `source.reverse` (they are fed the
same source ids); their architectures may differ. Everything else that
decoding reads comes from the first member: its preprocessing
(`source.max_seq_len`), its `inference.*` settings (strategy, beam width,
length penalty, sampler) and its length limit. The attention that
`unk_replace` and `DumpAttention` see is the mean of the members'.
"""

from seq2seq.configurable import deep_merge
from seq2seq.data.vocab import file_checksum
from seq2seq.errors import UserError
from seq2seq.inference import inference
from seq2seq.inference.ensemble import (
    EnsembleDecoder,
    average_log_probs,
    embed_target_fn,
)
from seq2seq.models.seq2seq_model import target_scores

# Checkpoint names that mean the same thing for every run.
_PER_RUN_CHECKPOINTS = ("best", "latest")


class EnsembleModel:
    """Trained `Seq2SeqModel`s that decode as one model.

    Offers what inference uses of a model: `params`, `preprocess`, `infer`,
    `score`, `target_id_to_token`, `target_vocab_info`,
    `source_vocab_table` (all but `infer` and `score` are the first
    member's). Each member keeps its own variables; restore them with
    `inference.restore_model(ensemble, [checkpoint, ...])`.

    Args:
      members: The models (in infer mode), the first one leading.

    Raises:
      ValueError: No members, or their target vocabularies differ in size.
    """

    def __init__(self, members):
        self.members = tuple(members)
        if not self.members:
            raise ValueError("an ensemble needs at least one model")
        self.decoder = EnsembleDecoder([m.decoder for m in self.members])
        self.embed_target = embed_target_fn([m.embed_target for m in self.members])

    @property
    def lead(self):
        """The first member, whose settings decoding follows."""
        return self.members[0]

    @property
    def params(self):
        return self.lead.params

    @property
    def target_vocab_info(self):
        return self.lead.target_vocab_info

    @property
    def target_id_to_token(self):
        return self.lead.target_id_to_token

    @property
    def source_vocab_table(self):
        return self.lead.source_vocab_table

    def preprocess(self, features):
        """The first member's `preprocess` (all share the source side)."""
        return self.lead.preprocess(features)

    def infer(
        self, features, max_length=None, beam_width=None, jit_compile=None, n_best=0
    ):
        """Decodes with every member stepping together.

        Args:
          features: Preprocessed features (`source_ids` [B, S],
            `source_len` [B]).
          max_length, beam_width, jit_compile, n_best: As for
            `Seq2SeqModel.infer` (the first member's settings fill in what
            is not given).

        Returns:
          The predictions dict of `Seq2SeqModel.infer`; `log_probs` are
          sums of the ensemble's averaged log-probabilities and
          `attention_scores` the members' mean attention.
        """
        limit = max_length or self.lead.max_decode_length()
        starts = [
            member.start_decoding(features, training=False, max_length=limit)
            for member in self.members
        ]
        state = tuple(start[0] for start in starts)
        memory = tuple(start[1] for start in starts)
        return self.lead.decode(
            self.decoder,
            self.embed_target,
            state,
            memory,
            features,
            max_length=limit,
            beam_width=beam_width,
            jit_compile=jit_compile,
            n_best=n_best,
        )

    def score(self, features):
        """Teacher-forced scores of given targets under the ensemble: per
        token the log of the members' mean probability (see
        `Seq2SeqModel.score` for the returned dict)."""
        logits = [
            member.forward(features, training=False).logits for member in self.members
        ]
        return target_scores(average_log_probs(logits), features)


def pair_runs(model_dirs, checkpoint_paths):
    """Pairs the runs and checkpoints of an ensemble.

    Args:
      model_dirs: The training output directories (one or more).
      checkpoint_paths: The checkpoints (may be empty): one per model dir;
        one for all of them (`best` or `latest` only); or several with one
        model dir (checkpoints of one run).

    Returns:
      A list of `(model_dir, checkpoint_path or None)`.

    Raises:
      UserError: The counts do not fit.
    """
    model_dirs = list(model_dirs)
    checkpoint_paths = list(checkpoint_paths)
    if not model_dirs:
        raise UserError("--model_dir is not set; point it at a training output_dir.")
    if not checkpoint_paths:
        return [(d, None) for d in model_dirs]
    if len(model_dirs) == 1:
        return [(model_dirs[0], c) for c in checkpoint_paths]
    if len(checkpoint_paths) == 1 and checkpoint_paths[0] in _PER_RUN_CHECKPOINTS:
        return [(d, checkpoint_paths[0]) for d in model_dirs]
    if len(checkpoint_paths) != len(model_dirs):
        raise UserError(
            f"--checkpoint_path lists {len(checkpoint_paths)} checkpoint(s) for "
            f"{len(model_dirs)} --model_dir entries; give one per model dir in "
            "the same order, 'best' or 'latest' for all, or several checkpoints "
            "with a single --model_dir."
        )
    return list(zip(model_dirs, checkpoint_paths))


def _vocabulary_checksum(train_options, params, key):
    """The sha256 `train_options.json` records for the `key` vocabulary
    (`vocab_source` / `vocab_target`), else that of the file `params` name;
    None when there is no such vocabulary."""
    saved_path = train_options.model_params.get(key)
    recorded = train_options.vocab_checksums.get(saved_path) if saved_path else None
    if recorded:
        return recorded
    path = params.get(key)
    return file_checksum(path) if path else None


def check_shared_vocabularies(runs):
    """Refuses runs that cannot be ensembled.

    Args:
      runs: `(model_dir, TrainOptions, params)` of every member, `params`
        being the merged params it is built with.

    Raises:
      UserError: Two runs differ in their target or source vocabulary (by
        content) or in `source.reverse`; the message names both dirs.
    """
    first_dir, first_options, first_params = runs[0]
    for model_dir, options, params in runs[1:]:
        for key, side in (("vocab_target", "target"), ("vocab_source", "source")):
            ours = _vocabulary_checksum(first_options, first_params, key)
            theirs = _vocabulary_checksum(options, params, key)
            if ours != theirs:
                raise UserError(
                    f"--model_dir: {first_dir} and {model_dir} were trained with "
                    f"different {side} vocabularies (sha256 {str(ours)[:12]}... "
                    f"vs {str(theirs)[:12]}...); an ensemble needs models trained "
                    "with the same source and target vocabulary files."
                )
        if bool(first_params.get("source.reverse")) != bool(
            params.get("source.reverse")
        ):
            raise UserError(
                f"--model_dir: {first_dir} and {model_dir} differ in "
                "source.reverse; an ensemble feeds every model the same source "
                "ids, so they must agree."
            )


def load_ensemble(model_dirs, checkpoint_paths=(), model_params=None, **kwargs):
    """Builds the models of several runs (or checkpoints) as one ensemble.

    Args:
      model_dirs: Training output directories.
      checkpoint_paths: Checkpoints to restore (see `pair_runs`).
      model_params: Overrides merged over every run's saved params.
      **kwargs: `allow_vocab_change` for `inference.check_vocabularies`.

    Returns:
      `(EnsembleModel, [checkpoint prefix of each member])`; restore with
      `inference.restore_model(model, checkpoints)` once the variables
      exist (`inference.run_inference` does).

    Raises:
      UserError: A run, checkpoint or vocabulary is unusable, or the runs
        cannot be ensembled (`check_shared_vocabularies`).
    """
    pairs = pair_runs(model_dirs, checkpoint_paths)
    runs, checkpoints = [], []
    for model_dir, checkpoint_path in pairs:
        options = inference.load_train_options(model_dir)
        checkpoints.append(inference.resolve_checkpoint(model_dir, checkpoint_path))
        inference.check_vocabularies(
            options,
            model_params,
            allow_change=bool(kwargs.get("allow_vocab_change", False)),
        )
        runs.append(
            (model_dir, options, deep_merge(options.model_params, model_params or {}))
        )
    check_shared_vocabularies(runs)
    members = [inference.build_model(options, model_params) for _, options, _ in runs]
    return EnsembleModel(members), checkpoints
