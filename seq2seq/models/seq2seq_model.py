"""Seq2SeqModel: embeddings, vocabulary handling, loss and decoding plumbing.

A model turns batches of token strings into ids (`preprocess`, run inside the
`tf.data` pipeline so that the compiled steps only see integer tensors),
encodes the source, decodes the target and computes the loss. Subclasses say
which encoder, bridge and decoder to build.

Features after `preprocess` (batch-major):
  source_ids [B, S] int32, source_len [B] int32,
  target_ids [B, T] int32, target_len [B] int32 (targets include
  SEQUENCE_START ... SEQUENCE_END; the decoder reads target_ids[:, :-1] and
  predicts target_ids[:, 1:]).
With a copy-attention decoder, also the extended-vocabulary features of
`seq2seq.data.copy_vocab` (source_copy_ids, source_oov_mask,
source_oov_tokens and, with targets, target_copy_ids).

Why over the ~700-line guide: `Seq2SeqModel` is the one object where the
vocabularies, embeddings, copy-attention features, forward pass and
decoding entry points (strategy, sampler, constraints, n-best) meet. Each
of those concepts lives in its own module (`seq2seq.data.*`,
`seq2seq.inference.*`, `forward_output`); what stays here is the wiring,
and splitting one class's methods across files would not make it clearer.
"""

import functools

import keras
import numpy as np
import tensorflow as tf

from seq2seq import losses as seq2seq_losses
from seq2seq.data import copy_vocab, pretrained_embeddings, vocab
from seq2seq.decoders import scheduled_sampling
from seq2seq.errors import ConfigError
from seq2seq.inference import beam_search, constraints, samplers, strategies
from seq2seq.inference.dynamic_decode import dynamic_decode
from seq2seq.models.forward_output import ForwardOutput
from seq2seq.models.model_base import ModelBase


class Seq2SeqModel(ModelBase, keras.layers.Layer):
    """Base class of sequence-to-sequence models with embeddings.

    Args:
      params: Model params (see `default_params`).
      mode: `train`, `eval` or `infer`.
      name: The name of the Keras layer (variable scope of the model).
    """

    def __init__(self, params, mode, name="seq2seq"):
        keras.layers.Layer.__init__(self, name=name)
        ModelBase.__init__(self, params, mode, name)
        self._require_vocabulary_params("vocab_source", "vocab_target")
        self._load_source_vocabulary()
        self._load_target_vocabulary()
        self._check_label_smoothing()
        self._check_inference_params()
        self._build_embeddings()

    @staticmethod
    def default_params():
        params = ModelBase.default_params()
        params.update(
            {
                "source.max_seq_len": 50,
                "source.reverse": True,
                "target.max_seq_len": 50,
                "embedding.dim": 100,
                "embedding.init_scale": 0.04,
                "embedding.share": False,
                "embedding.init_file": "",
                "embedding.source.init_file": "",
                "embedding.target.init_file": "",
                "embedding.trainable": True,
                "inference.beam_search.beam_width": 0,
                "inference.beam_search.length_penalty_weight": 0.0,
                "inference.beam_search.coverage_penalty_weight": 0.0,
                "inference.beam_search.choose_successors_fn": "choose_top_k",
                "inference.beam_search.early_stopping": True,
                "inference.max_decode_length": 0,
                "inference.max_decode_length_ratio": 0.0,
                "inference.max_decode_length_offset": 5,
                "inference.strategy": "",
                "optimizer.clip_embed_gradients": 0.1,
                "vocab_source": "",
                "vocab_target": "",
                "loss.label_smoothing": 0.0,
            }
        )
        params.update(samplers.default_params())
        params.update(constraints.default_params())
        return params

    # ------------------------------------------------------------------ setup
    # The steps of __init__, shared with models that have no source
    # vocabulary (Image2Seq), so that each check and each variable is
    # written once.

    def _require_vocabulary_params(self, *keys, what="vocabulary file"):
        """Raises a ConfigError for the first of `keys` that is not set.

        Args:
          *keys: Params naming vocabulary files (`vocab_source`, ...).
          what: What the file is, in the error message.
        """
        for key in keys:
            if not self.params[key]:
                raise ConfigError(
                    f"model_params: '{key}' is not set. Pass the path of the "
                    f"{what}, e.g. --model_params '{key}: vocab.txt'."
                )

    def _load_source_vocabulary(self):
        """Reads `vocab_source` into `source_vocab_info`, the source id ->
        token array and the token -> id lookup tables."""
        (
            self.source_vocab_info,
            self._source_id_to_token,
            self._source_tables,
        ) = _read_vocabulary(self.params["vocab_source"])

    def _load_target_vocabulary(self):
        """Reads `vocab_target` into `target_vocab_info`, the target id ->
        token array and the token -> id lookup tables."""
        (
            self.target_vocab_info,
            self._target_id_to_token,
            self._target_tables,
        ) = _read_vocabulary(self.params["vocab_target"])

    def _check_label_smoothing(self):
        smoothing = self.params["loss.label_smoothing"]
        if not 0.0 <= smoothing < 1.0:
            raise ConfigError(
                f"model_params: loss.label_smoothing must be in [0, 1), got "
                f"{smoothing}; 0 is the plain cross-entropy, 0.1 is usual."
            )

    def _check_inference_params(self):
        """Raises a ConfigError for an unknown `inference.strategy`, a bad
        `inference.sampler` / `inference.sampling.*`, a sampler that the
        strategy cannot use or a bad `inference.banned_tokens*`, before any
        work is done."""
        sampler = self.sampler()
        if strategies.strategy_name(self.params) == "beam_search":
            self.decoding_strategy().check_sampler(sampler)
        for key in (
            "inference.max_decode_length_ratio",
            "inference.max_decode_length_offset",
        ):
            value = self.params[key]
            if value < 0:
                raise ConfigError(
                    f"model_params: {key} must be >= 0, got {value!r}; "
                    "e.g. inference.max_decode_length_ratio: 2 with "
                    "inference.max_decode_length_offset: 5 lets a sentence of "
                    "S source tokens decode at most 2 S + 5 (0 turns it off)."
                )
        # Not a Keras-tracked attribute: it adds nothing to checkpoints.
        object.__setattr__(
            self,
            "_banned_token_ids",
            tuple(constraints.banned_token_ids(self.params, self._target_id_to_token)),
        )

    def _add_embedding(self, name, vocab_info):
        """Adds a [vocab_info.total_size, embedding.dim] embedding weight."""
        if self.params["embedding.dim"] < 1:
            raise ConfigError(
                f"model_params: embedding.dim must be a positive integer, got "
                f"{self.params['embedding.dim']}; the original's default is 100."
            )
        scale = self.params["embedding.init_scale"]
        return self.add_weight(
            name=name,
            shape=(vocab_info.total_size, self.params["embedding.dim"]),
            initializer=keras.initializers.RandomUniform(-scale, scale),
            trainable=bool(self.params["embedding.trainable"]),
        )

    def _build_embeddings(self):
        pretrained_embeddings.plan(self.params)  # Conflicting files fail here.
        self.source_embedding = self._add_embedding(
            "source_embedding", self.source_vocab_info
        )
        if self.params["embedding.share"]:
            if self.source_vocab_info.total_size != self.target_vocab_info.total_size:
                raise ConfigError(
                    "model_params: embedding.share is true but the source and "
                    f"target vocabularies differ in size "
                    f"({self.source_vocab_info.total_size} vs "
                    f"{self.target_vocab_info.total_size}); use one vocabulary "
                    "for both sides or set embedding.share: false."
                )
            self.target_embedding = self.source_embedding
        else:
            self.target_embedding = self._add_embedding(
                "target_embedding", self.target_vocab_info
            )

    def initialize_from_files(self):
        """Copies pretrained vectors into the embedding matrices (the files
        of `embedding.init_file`, `embedding.source.init_file`,
        `embedding.target.init_file`; see `pretrained_embeddings.plan`);
        tokens a file lacks keep their random values. The trainer calls
        this once, at the first start of a run (a restored checkpoint wins).

        Raises:
          ConfigError: With `embedding.share`, two different files.
          DataError: A file is missing, unreadable or does not fit.
        """
        for key, path, side in pretrained_embeddings.plan(self.params):
            if side == "target":
                variable, id_to_token = self.target_embedding, self.target_id_to_token
            else:
                variable, id_to_token = self.source_embedding, self.source_id_to_token
            pretrained_embeddings.assign_rows(variable, id_to_token, path, side, key)

    def _init_network(self):
        """Creates `encoder`, the decoder and `bridge`, in this order.

        The order is part of the checkpoint format: it is the order of the
        model's variables, by which the optimizer's slot variables are saved.
        The bridge also reads the decoder's state size.
        """
        self.encoder = self._create_encoder()
        self._decoder = self._create_decoder()
        self.bridge = self._create_bridge()
        self._check_coverage_penalty()

    def _check_coverage_penalty(self):
        """Raises a ConfigError for a coverage penalty on a decoder without
        attention (the penalty sums the attention over the source)."""
        weight = self.params.get("inference.beam_search.coverage_penalty_weight")
        if weight and not self._decoder.has_attention:
            raise ConfigError(
                f"model_params: inference.beam_search.coverage_penalty_weight is "
                f"{weight} but {type(self._decoder).__name__} has no attention to "
                "measure coverage with; set it to 0 or use an attention model "
                "(e.g. AttentionSeq2Seq)."
            )

    def _create_encoder(self):
        """Returns the encoder layer (from `encoder.class` / `encoder.params`)."""
        raise NotImplementedError

    def _create_decoder(self):
        """Returns the decoder layer, with `target_vocab_info.total_size` outputs."""
        raise NotImplementedError

    def _create_bridge(self):
        """Returns the bridge from the encoder output to the decoder state."""
        raise NotImplementedError

    @property
    def embedding_variables(self):
        """The embedding matrices (their gradients get the embedding clip)."""
        if self.params["embedding.share"]:
            return [self.source_embedding]
        return [self.source_embedding, self.target_embedding]

    @property
    def copy_attention(self):
        """Whether the decoder copies source words (pointer-generator): its
        steps then score the extended vocabulary of
        `seq2seq.data.copy_vocab`. False while the decoder is not built."""
        try:
            decoder = self.decoder
        except (AttributeError, NotImplementedError):
            return False
        return bool(getattr(decoder, "copy_attention", False))

    @property
    def source_vocab_table(self):
        """The source token -> id `tf.lookup.StaticHashTable` (UNK default)."""
        return self._source_tables[0]

    @property
    def target_vocab_table(self):
        """The target token -> id `tf.lookup.StaticHashTable` (UNK default)."""
        return self._target_tables[0]

    @property
    def target_id_to_token(self):
        """A numpy array mapping target ids to token strings, specials included."""
        return self._target_id_to_token

    @property
    def source_id_to_token(self):
        """A numpy array mapping source ids to token strings, specials included."""
        return self._source_id_to_token

    # ------------------------------------------------------------ preprocess

    def preprocess(self, features):
        """Maps a batch of token strings to ids; run inside `tf.data`.

        Slices sources and targets to `*.max_seq_len`, looks tokens up in the
        vocabularies (unknown tokens get the UNK id) and reverses each source
        within its own length when `source.reverse` is set.

        Args:
          features: Dict with `source_tokens` [B, S] string, `source_len` [B]
            and optionally `target_tokens` [B, T], `target_len` [B] and
            `target_prefix_tokens` [B, P], `target_prefix_len` [B] (forced
            starts of the outputs).

        Returns:
          The dict with `source_ids` [B, S'] int32 and `target_ids` [B, T']
          int32 added, `source_len` / `target_len` clipped to the id lengths,
          `target_tokens_len` [B] the unclipped target lengths and
          `target_prefix_ids` [B, P] int32 (unknown words as UNK).
        """
        features = dict(features)
        # Token strings and their full lengths stay as read, for references
        # and UNK replacement; only the ids are sliced.
        if "target_len" in features:
            features["target_tokens_len"] = tf.cast(features["target_len"], tf.int32)
        max_src = self.params["source.max_seq_len"]
        source_tokens = features["source_tokens"]
        source_len = tf.cast(features["source_len"], tf.int32)
        if max_src and max_src > 0:
            source_tokens = source_tokens[:, :max_src]
            source_len = tf.minimum(source_len, max_src)
        source_ids = tf.cast(self.source_vocab_table.lookup(source_tokens), tf.int32)
        if self.params["source.reverse"]:
            source_ids = tf.reverse_sequence(
                source_ids, source_len, seq_axis=1, batch_axis=0
            )
        features["source_ids"] = source_ids
        features["source_len"] = source_len
        features = self.preprocess_targets(features)
        if self.copy_attention:
            target_tokens = None
            if "target_ids" in features:
                # The target tokens as cut to `target.max_seq_len`.
                width = tf.shape(features["target_ids"])[1]
                target_tokens = features["target_tokens"][:, :width]
            info = self.target_vocab_info
            copy = copy_vocab.copy_features(
                source_tokens,
                source_len,
                self.target_vocab_table,
                info.total_size,
                info.special_vocab.UNK,
                target_tokens=target_tokens,
                reverse_source=self.params["source.reverse"],
            )
            features.update(copy)
        return features

    def preprocess_targets(self, features):
        """Adds `target_ids` [B, T'] int32 for `target_tokens` [B, T], both
        cut to `target.max_seq_len`, with `target_len` clipped to match, and
        `target_prefix_ids` [B, P] for `target_prefix_tokens`; returns
        `features` (a dict it updates)."""
        if "target_tokens" in features:
            max_tgt = self.params["target.max_seq_len"]
            target_tokens = features["target_tokens"]
            target_len = tf.cast(features["target_len"], tf.int32)
            if max_tgt and max_tgt > 0:
                target_tokens = target_tokens[:, :max_tgt]
                target_len = tf.minimum(target_len, max_tgt)
            features["target_ids"] = tf.cast(
                self.target_vocab_table.lookup(target_tokens), tf.int32
            )
            features["target_len"] = target_len
        if "target_prefix_tokens" in features:
            features["target_prefix_ids"] = tf.cast(
                self.target_vocab_table.lookup(features["target_prefix_tokens"]),
                tf.int32,
            )
            features["target_prefix_len"] = tf.cast(
                features["target_prefix_len"], tf.int32
            )
        return features

    # ------------------------------------------------------------- building

    def embed_source(self, ids):
        """[B, S] int ids -> [B, S, E] embeddings."""
        return tf.nn.embedding_lookup(self.source_embedding, ids)

    def embed_target(self, ids):
        """[B, ...] int ids -> [B, ..., E] embeddings (with copy attention a
        copied slot, `id >= V`, is embedded as UNK)."""
        if self.copy_attention:
            info = self.target_vocab_info
            ids = copy_vocab.embedding_ids(ids, info.total_size, info.special_vocab.UNK)
        return tf.nn.embedding_lookup(self.target_embedding, ids)

    def encode(self, features, training=None):
        """Encodes `source_ids`; returns an `EncoderOutput`."""
        raise NotImplementedError

    def decoder_start(self, encoder_output, batch_size, training=None):
        """Returns `(state, memory)` to start decoding from."""
        raise NotImplementedError

    @property
    def decoder(self):
        """The decoder layer, whose `step` drives every decoding strategy."""
        raise NotImplementedError

    def start_decoding(self, features, training=None, max_length=None):
        """Encodes the source; returns the decoder's `(state, memory)`, the
        memory holding the copy-attention source ids when the decoder
        copies.

        Args:
          features: Preprocessed features (`source_ids` [B, S],
            `source_len` [B]).
          training: Whether dropout is active.
          max_length: The most steps that will be decoded (None: the
            model's `max_decode_length()`), for decoders whose state is
            sized to it (the Transformer's step cache); unused here.
        """
        del max_length
        encoder_output = self.encode(features, training=training)
        batch_size = tf.shape(features["source_ids"])[0]
        state, memory = self.decoder_start(encoder_output, batch_size, training)
        if self.copy_attention:
            memory = self.decoder.with_copy_source(memory, *self._copy_source(features))
        return state, memory

    def _copy_source(self, features):
        """`(source_copy_ids [B, S], source_oov_mask [B, M])` of a batch.

        Features given without them (ids only) copy only the source words
        the target vocabulary has: each source id maps to the target id of
        the same token (UNK if none), with no slots (`M = 0`).
        """
        if "source_copy_ids" in features:
            return features["source_copy_ids"], features["source_oov_mask"]
        return copy_vocab.in_vocabulary_copy_source(
            features["source_ids"],
            self.source_id_to_token,
            self.target_id_to_token,
            self.target_vocab_info.special_vocab.UNK,
        )

    # ------------------------------------------------------------- forward

    @property
    def scheduled_sampling(self):
        """The decoder's scheduled-sampling schedule (a dict, see
        `seq2seq.decoders.scheduled_sampling.schedule_config`), or None when
        its `type` is `none`."""
        config = self.decoder.scheduled_sampling
        if not config or config["type"] == "none":
            return None
        return config

    def sampling_probability(self, step):
        """`p(step)`: the probability that the decoder reads its own previous
        prediction at global step `step` (0 without scheduled sampling).

        Args:
          step: A Python int or scalar int tensor.

        Returns:
          A float32 scalar tensor.
        """
        return scheduled_sampling.sampling_probability(self.scheduled_sampling, step)

    def forward(self, features, training=None, sampling_probability=None, seed=None):
        """Decoder over `target_ids[:, :-1]` (teacher-forced unless scheduled
        sampling is on), and the loss.

        Args:
          features: Preprocessed features with targets.
          training: Whether dropout is active. Also selects the loss: with
            `training=True` the loss uses `loss.label_smoothing`; otherwise
            (evaluation, scoring) it is the plain cross-entropy.
          sampling_probability: Optional float scalar: the probability of
            feeding the decoder its own previous prediction (scheduled
            sampling). Ignored unless the decoder's
            `scheduled_sampling.type` is not `none`; None (the default) is
            pure teacher forcing.
          seed: Optional [2] int tensor seeding the scheduled-sampling draws
            (statelessly, with the time step folded in).

        Returns:
          `ForwardOutput(loss, loss_sum, num_tokens, logits [B, T-1, V],
          attention [B, T-1, S] or None)`; `loss` = `loss_sum / num_tokens`.
          With copy attention the logits are log-probabilities over the
          extended vocabulary ([B, T-1, V + M]) and the loss is their
          negative log-likelihood of `target_copy_ids`.
        """
        state, memory = self.start_decoding(features, training)
        inputs = self.embed_target(features["target_ids"][:, :-1])
        smoothing = self.params["loss.label_smoothing"] if training else 0.0
        sampling = sampling_probability is not None and self.scheduled_sampling
        decoder = self.decoder
        if self.copy_attention:
            if sampling:
                log_probs, attention = decoder(
                    inputs,
                    state,
                    memory,
                    training=training,
                    sampling_probability=sampling_probability,
                    embedding_fn=self.embed_target,
                    seed=seed,
                )
            else:
                log_probs, attention = decoder.teacher_forced(
                    inputs, state, memory, training=training
                )
            loss_sum, num_tokens = seq2seq_losses.log_prob_sequence_loss(
                log_probs,
                features["target_copy_ids"][:, 1:],
                features["target_len"] - 1,
                label_smoothing=smoothing,
                smoothing_classes=self.target_vocab_info.total_size,
            )
            loss = loss_sum / tf.maximum(num_tokens, 1.0)
            return ForwardOutput(loss, loss_sum, num_tokens, log_probs, attention)
        if not sampling:
            # Only the unpadded positions go through the output layer and
            # the loss; the full logits are built only if someone reads them.
            decoder_features, attention = decoder.teacher_forced_features(
                inputs, state, memory, training=training
            )
            project_fn, output_layer = decoder.fused_output(training) or (
                functools.partial(decoder.project, training=training),
                None,
            )
            loss_sum, num_tokens = seq2seq_losses.projected_sequence_loss(
                decoder_features,
                project_fn,
                features["target_ids"][:, 1:],
                features["target_len"] - 1,
                label_smoothing=smoothing,
                row_multiple=decoder.projection_row_multiple(training),
                output_layer=output_layer,
            )
            loss = loss_sum / tf.maximum(num_tokens, 1.0)
            return ForwardOutput(
                loss,
                loss_sum,
                num_tokens,
                attention=attention,
                logits_fn=lambda: decoder.project(decoder_features, training=training),
            )
        logits, attention = decoder(
            inputs,
            state,
            memory,
            training=training,
            sampling_probability=sampling_probability,
            embedding_fn=self.embed_target,
            seed=seed,
        )
        if smoothing:
            loss_sum, num_tokens = self.compute_loss(
                logits, features, label_smoothing=smoothing
            )
        else:
            loss_sum, num_tokens = self.compute_loss(logits, features)
        loss = loss_sum / tf.maximum(num_tokens, 1.0)
        return ForwardOutput(loss, loss_sum, num_tokens, logits, attention)

    def compute_loss(self, logits, features, label_smoothing=0.0):
        """Sum of masked token cross-entropies and the number of target tokens.

        Args:
          logits: [B, T-1, V] predictions for `target_ids[:, 1:]`.
          features: Preprocessed features with `target_ids`, `target_len`.
          label_smoothing: A float in [0, 1): the target distribution is
            `(1 - e) * one_hot + e / V` at unmasked positions (padding
            contributes nothing either way). 0 is the plain cross-entropy.

        Returns:
          `(loss_sum, num_tokens)`, float32 scalars.
        """
        return seq2seq_losses.sequence_loss_batch_major(
            logits,
            features["target_ids"][:, 1:],
            features["target_len"] - 1,
            label_smoothing=label_smoothing,
        )

    def max_decode_length(self):
        """The batch's decode length limit: `inference.max_decode_length` if
        set, else the decoder's `max_decode_length` (per-sentence limits:
        `sentence_length_limits`)."""
        limit = self.params["inference.max_decode_length"]
        if limit and limit > 0:
            return limit
        return self.decoder.params["max_decode_length"]

    @property
    def use_beam_search(self):
        """Whether inference uses beam search (`inference.strategy`, or by
        default `beam_width` > 1)."""
        return strategies.strategy_name(self.params) == "beam_search"

    def beam_search_config(self, beam_width=None):
        """The `BeamSearchConfig` built from `inference.beam_search.*`, with
        `beam_width` instead of the configured width when given."""
        return beam_search.BeamSearch.from_params(
            self.params,
            vocab_size=self.target_vocab_info.total_size,
            end_id=self.target_vocab_info.special_vocab.SEQUENCE_END,
            beam_width=beam_width,
        ).config

    def decoding_strategy(self, beam_width=None, n_best=1):
        """The `DecodingStrategy` that `inference.*` chooses (see
        `seq2seq.inference.strategies`); `beam_width` overrides the
        configured width (1: greedy); `n_best` hypotheses per sentence are
        read (beam search stops early only once they are settled)."""
        return strategies.create_strategy(
            self.params,
            # With copy attention the classes are V + (slots of the batch).
            vocab_size=(
                None if self.copy_attention else self.target_vocab_info.total_size
            ),
            end_id=self.target_vocab_info.special_vocab.SEQUENCE_END,
            beam_width=beam_width,
            n_best=n_best,
        )

    def sampler(self):
        """The `Sampler` of `inference.sampler` / `inference.sampling.*`."""
        return samplers.sampler_from_params(self.params)

    def sentence_length_limits(self, features):
        """[B] int32 most tokens (`SEQUENCE_END` included) each sentence may
        decode, `ceil(ratio * source_len) + offset` by
        `inference.max_decode_length_ratio` / `_offset`; None when the ratio
        is 0 (off). `source_len` counts the tokens the encoder reads. The
        batch's `max_decode_length` still applies on top."""
        ratio = float(self.params["inference.max_decode_length_ratio"])
        if ratio <= 0 or "source_len" not in features:
            return None
        source_len = tf.cast(features["source_len"], tf.float32)
        offset = int(self.params["inference.max_decode_length_offset"])
        return tf.cast(tf.math.ceil(ratio * source_len), tf.int32) + offset

    def decode_constraints(self, features):
        """The `DecodeConstraints` of a batch: the forced prefixes of
        `target_prefix_ids` [B, P] / `target_prefix_len` [B] when the
        features have them, `inference.banned_tokens*` and the length
        limits of `sentence_length_limits`; None if none."""
        return constraints.make_constraints(
            features.get("target_prefix_ids"),
            features.get("target_prefix_len"),
            self._banned_token_ids,
            max_len=self.sentence_length_limits(features),
            end_id=self.target_vocab_info.special_vocab.SEQUENCE_END,
        )

    def infer(
        self, features, max_length=None, beam_width=None, jit_compile=None, n_best=0
    ):
        """Free-running decoding of a batch of preprocessed sources with the
        strategy and sampler that `inference.*` choose: greedy (argmax by
        default), or beam search when the beam width is > 1.

        Args:
          features: Preprocessed features (targets are ignored). With
            `target_prefix_ids` [B, P] and `target_prefix_len` [B], each
            output starts with its prefix (see
            `seq2seq.inference.constraints`); `inference.banned_tokens*`
            are never produced.
          max_length: Optional cap on the number of decoded tokens.
          beam_width: Overrides `inference.beam_search.beam_width` for this
            call (1: greedy with the configured sampler; > 1: beam search,
            which ignores `inference.sampler`).
          jit_compile: Compile the decoding loop with XLA; None takes
            `decoding.default_jit_compile`.
          n_best: With N >= 1 (beam search, N <= beam width), also return the
            N best hypotheses of each sentence under `nbest.*` keys.

        Returns:
          A dict with `predicted_ids` [B, T] int32 (the best hypothesis),
          `predicted_len` [B] int32 (SEQUENCE_END included when produced),
          `log_probs` [B] and, for attention decoders, `attention_scores`
          [B, T, S] (over the source in the order the user wrote it, even when
          `source.reverse` is set). Beam search adds the per-step trace under
          `beam_search_output.*` keys ([B, T, K] each, and `.length` [B]).
          `n_best` adds `nbest.predicted_ids` [B, N, T], `nbest.predicted_len`,
          `nbest.scores`, `nbest.log_probs` [B, N] and, for attention
          decoders, `nbest.attention_scores` [B, N, T, S] (see
          `BeamSearch.nbest_predictions`).

        Raises:
          ConfigError: `n_best` without beam search or above its width.
        """
        state, memory = self.start_decoding(
            features, training=False, max_length=max_length
        )
        return self.decode(
            self.decoder,
            self.embed_target,
            state,
            memory,
            features,
            max_length=max_length,
            beam_width=beam_width,
            jit_compile=jit_compile,
            n_best=n_best,
        )

    def decode(
        self,
        decoder,
        embedding_fn,
        state,
        memory,
        features,
        max_length=None,
        beam_width=None,
        jit_compile=None,
        n_best=0,
    ):
        """The decoding half of `infer`, from a decoder's start: drives
        `decoder` with this model's strategy, sampler, constraints, special
        tokens and length limit. `infer` passes its own decoder; an ensemble
        passes one that steps several models (`seq2seq.inference.ensemble`).

        Args:
          decoder: An object with the `Decoder` step contract, whose logits
            are over this model's target vocabulary.
          embedding_fn: Maps [B] int32 ids to the decoder's step inputs.
          state: The decoder's initial state for the B sentences.
          memory: The decoder's memory for the B sentences.
          features: The preprocessed features (`source_ids` [B, S],
            `source_len` [B], optional forced prefixes).
          max_length, beam_width, jit_compile, n_best: As for `infer`.

        Returns:
          The predictions dict of `infer`.
        """
        strategy = self.decoding_strategy(beam_width, n_best=max(n_best, 1))
        # A beam width given for this call (the evaluation's beam decode)
        # replaces greedy search, and with it the sampler.
        sampler = None if beam_width and beam_width > 1 else self.sampler()
        batch_size = tf.shape(features["source_ids"])[0]
        special = self.target_vocab_info.special_vocab
        start_ids = tf.fill([batch_size], tf.constant(special.SEQUENCE_START, tf.int32))
        result = dynamic_decode(
            decoder,
            strategy,
            sampler,
            embedding_fn,
            start_ids,
            special.SEQUENCE_END,
            state,
            memory,
            max_length or self.max_decode_length(),
            jit_compile=jit_compile,
            constraints=self.decode_constraints(features),
        )
        predictions = strategy.predictions(result)
        if n_best:
            predictions.update(strategy.nbest_predictions(result, n_best))
        if self.params["source.reverse"]:
            for key in ("attention_scores", "nbest.attention_scores"):
                if key in predictions:
                    predictions[key] = _unreverse_attention(
                        predictions[key], features["source_len"]
                    )
        return predictions

    def score(self, features):
        """Teacher-forced log-probabilities of given targets.

        Args:
          features: Preprocessed features with targets.

        Returns:
          A dict with `sequence_log_prob` [B] (sum over the target tokens after
          SEQUENCE_START, SEQUENCE_END included) and `token_log_probs`
          [B, T-1] (zero past each length).
        """
        output = self.forward(features, training=False)
        log_probs = tf.nn.log_softmax(tf.cast(output.logits, tf.float32), axis=-1)
        return target_scores(log_probs, features)

    # ------------------------------------------------------------ gradients

    def clip_gradients(self, gradients, variables):
        """Global-norm clip of all gradients, then the original's extra clip of
        embedding gradients to norm `optimizer.clip_embed_gradients`.

        Returns:
          `(clipped_gradients, global_norm)`; the norm is taken before clipping.
        """
        clipped, global_norm = ModelBase.clip_gradients(self, gradients)
        limit = self.params["optimizer.clip_embed_gradients"]
        if limit and limit > 0:
            embedding_ids = {id(v) for v in self.embedding_variables}
            result = []
            for grad, var in zip(clipped, variables):
                if grad is not None and id(var) in embedding_ids:
                    if isinstance(grad, tf.IndexedSlices):
                        grad = tf.IndexedSlices(
                            tf.clip_by_norm(grad.values, limit),
                            grad.indices,
                            grad.dense_shape,
                        )
                    else:
                        grad = tf.clip_by_norm(grad, limit)
                result.append(grad)
            clipped = result
        return clipped, global_norm


def target_scores(log_probs, features):
    """The scores of `Seq2SeqModel.score` from teacher-forced log-probabilities.

    Args:
      log_probs: [B, T-1, V] float32 log-probabilities of the tokens after
        `target_ids[:, :-1]`.
      features: Preprocessed features with `target_ids` [B, T] (or, with
        copy attention, `target_copy_ids` [B, T]) and `target_len` [B].

    Returns:
      `{"sequence_log_prob": [B], "token_log_probs": [B, T-1]}` (zero past
      each length).
    """
    # A copy-attention model scores the extended ids (copied words).
    targets = features.get("target_copy_ids", features["target_ids"])[:, 1:]
    token_log_probs = tf.gather(log_probs, targets, batch_dims=2)
    mask = tf.sequence_mask(
        features["target_len"] - 1, tf.shape(targets)[1], dtype=tf.float32
    )
    token_log_probs *= mask
    return {
        "sequence_log_prob": tf.reduce_sum(token_log_probs, axis=1),
        "token_log_probs": token_log_probs,
    }


def _read_vocabulary(path):
    """Reads a vocabulary file.

    Returns:
      `(VocabInfo, id_to_token, tables)`: `id_to_token` is a numpy array of
      the token strings by id, specials included; `tables` the result of
      `vocab.create_vocabulary_lookup_table` (token -> id table first).

    Raises:
      DataError: The file is missing or malformed.
    """
    loaded = vocab.Vocab(path)
    id_to_token = np.array(loaded.tokens, dtype=object)
    return loaded.info, id_to_token, vocab.create_vocabulary_lookup_table(path)


def _unreverse_attention(attention, source_len):
    """Maps attention over a reversed source back to the written order.

    Args:
      attention: [B, ..., T, S] scores over the reversed source (e.g.
        [B, T, S], or [B, N, T, S] for n-best lists).
      source_len: [B] source lengths.

    Returns:
      Scores of the same shape where position j refers to the j-th written
      token.
    """
    shape = tf.shape(attention)
    rows = tf.reshape(attention, [shape[0], -1, shape[-1]])  # [B, R, S]
    transposed = tf.transpose(rows, [0, 2, 1])  # [B, S, R]
    restored = tf.reverse_sequence(transposed, source_len, seq_axis=1, batch_axis=0)
    result = tf.reshape(tf.transpose(restored, [0, 2, 1]), shape)
    result.set_shape(attention.shape)
    return result
