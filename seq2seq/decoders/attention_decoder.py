"""An RNN decoder that attends over the encoder outputs at every step."""

import tensorflow as tf

from seq2seq.configurable import is_training
from seq2seq.decoders.attention import AttentionLayerBahdanau, valid_positions
from seq2seq.decoders.rnn_decoder import RNNDecoder
from seq2seq.errors import ConfigError
from seq2seq.layers.output_projection import OutputProjection
from seq2seq.rnn.cells import apply_dropout, check_keep_prob
from seq2seq.rnn.recurrence import run_cell


class AttentionDecoder(RNNDecoder):
    """RNN decoder with attention, with or without input feeding.

    At each step, with `x` the embedded previous token and `f` the vector fed
    back from the previous step (zeros at the first step):

        h, cell_state = cell(concat(x, f), cell_state)    # input feeding
        h, cell_state = cell(x, cell_state)                # input_feeding: false
        scores, c = attention(query=h, keys, values, lengths)
        a = tanh(Dense(H)(concat(h, c)))                   # attentional vector
        logits = Dense(V)(dropout(a))                      # dropout in training

    where `H` is the cell's output size. The fed vector `f` is the attention
    context `c` (`input_feeding_vector: context`, the original's decoder) or
    the attentional vector `a` (`attentional`, Luong et al. 2015, as
    OpenNMT); `a` also carries what the previous step chose to output. The
    attention keys are the encoder `outputs` (projected once in
    `prepare_memory`), the values are its `attention_values` and the lengths
    its `attention_values_length`.

    Without input feeding the recurrence does not depend on the attention,
    so teacher forcing runs the cell over the whole target first and then
    attends from all its outputs at once (batched matmuls); with input
    feeding the recurrence and the attention alternate step by step. Both
    give the same numbers as calling `step` in a loop.

    Params (besides `RNNDecoder.default_params`):
      input_feeding: Whether a vector of the previous step is part of the
        cell input (true, the original's decoder).
      input_feeding_vector: Which vector: `context` (the attention context,
        the original's) or `attentional` (the attentional vector `a`).
      attentional_keep_prob: Keep probability of dropout on `a` before the
        logits layer, in `train` mode only (1.0, none, the original's;
        OpenNMT-tf drops 0.2 of it). This dropout does not reach the
        fed-back `a`; the cell's input dropout
        (`rnn_cell.dropout_input_keep_prob`) does, since it drops all of
        `concat(x, f)`, as the original's cell wrapper did (OpenNMT-tf
        drops only the embedding `x`).
    Copy attention (pointer-generator) is `CopyAttentionDecoder`.

    State: `{"cell": cell state (structure of cell_state_size),
    "context": [B, Dv] previous attention context}`, or with
    `input_feeding_vector: attentional` `{"cell": ..., "attentional": [B, H]
    previous attentional vector}`; without input feeding only
    `{"cell": ...}`.
    Features (what `project` maps to logits): `[h; c]` [B, ..., H + Dv], or
    `a` [B, ..., H] with attentional feeding (computed in the step already).
    Memory: `{"keys": [B, S, U] projected keys, "values": [B, S, Dv],
    "lengths": [B] int32}`.

    Args:
      params: Parameter overrides; see `default_params`.
      mode: `train`, `eval` or `infer`.
      vocab_size: Number of output classes.
      attention_layer: An `AttentionLayer` (the model builds it from
        `attention.class` / `attention.params`); by default an
        `AttentionLayerBahdanau` with 128 units.
      name: Keras layer name.
      cell: Optional ready-made Keras RNN cell.
    """

    has_attention = True

    def __init__(
        self,
        params,
        mode,
        vocab_size,
        attention_layer=None,
        name="attention_decoder",
        cell=None,
    ):
        if isinstance(params, dict) and "copy_attention" in params:
            raise ConfigError(
                f"{type(self).__name__}: decoder.params.copy_attention is not a "
                "parameter; for copy attention set decoder.class: "
                "CopyAttentionDecoder and drop copy_attention."
            )
        super().__init__(params, mode, vocab_size, name=name, cell=cell)
        if self.params["input_feeding_vector"] not in ("context", "attentional"):
            raise ConfigError(
                f"{type(self).__name__}: decoder.params.input_feeding_vector must "
                "be 'context' (the attention context, the original's) or "
                f"'attentional' (Luong's), got "
                f"{self.params['input_feeding_vector']!r}."
            )
        check_keep_prob(
            f"{type(self).__name__}: decoder.params.attentional_keep_prob",
            self.params["attentional_keep_prob"],
        )
        if attention_layer is None:
            attention_layer = AttentionLayerBahdanau({"num_units": 128}, mode)
        self.attention = attention_layer
        self.attention.check_query_size(self._cell_output_size())
        self.mix_layer = self._dense(
            self._cell_output_size(), "attention_mix", activation="tanh"
        )
        self.logits_layer = self._dense(
            self.vocab_size, "logits", layer_class=OutputProjection
        )

    @staticmethod
    def default_params():
        params = RNNDecoder.default_params()
        params["input_feeding"] = True
        params["input_feeding_vector"] = "context"
        params["attentional_keep_prob"] = 1.0
        return params

    @property
    def input_feeding(self):
        """The `input_feeding` parameter."""
        return bool(self.params["input_feeding"])

    @property
    def feeds_attentional(self):
        """Whether the attentional vector (not the context) is fed back."""
        return self.input_feeding and self._feed_key == "attentional"

    @property
    def _feed_key(self):
        """The state key of the fed vector: `context` or `attentional`."""
        return self.params["input_feeding_vector"]

    def _cell_output_size(self):
        size = getattr(self.cell, "output_size", None)
        if size is None:
            size = tf.nest.flatten(self.cell.state_size)[0]
        return int(size)

    def prepare_memory(self, encoder_output):
        """Projects the attention keys once.

        Args:
          encoder_output: An `EncoderOutput`: keys are `outputs` [B, S, D],
            values `attention_values` [B, S, Dv] (static Dv), lengths
            `attention_values_length` [B].

        Returns:
          `{"keys": [B, S, U], "values": [B, S, Dv], "lengths": [B] int32,
          "valid": [B, 1, S] bool}` (`valid` masks the positions past each
          length, built once for all steps).
        """
        values = tf.convert_to_tensor(encoder_output.attention_values)
        lengths = tf.cast(encoder_output.attention_values_length, tf.int32)
        return {
            "keys": self.attention.project_keys(encoder_output.outputs),
            "values": values,
            "lengths": lengths,
            "valid": valid_positions(lengths, tf.shape(values)[1]),
        }

    def _make_state(self, memory, cell_state, batch_size):
        if not self.input_feeding:
            return {"cell": cell_state}
        if self.feeds_attentional:
            attentional = tf.zeros(
                [batch_size, self._cell_output_size()], dtype=self.compute_dtype
            )
            return {"cell": cell_state, "attentional": attentional}
        values = memory["values"]
        depth = values.shape[-1]
        if depth is None:
            raise ValueError("attention values need a static last dimension")
        context = tf.zeros([batch_size, depth], dtype=values.dtype)
        return {"cell": cell_state, "context": context}

    def _features(self, output, context):
        """[B, ..., H] cell outputs and [B, ..., Dv] contexts -> features."""
        return tf.concat(
            [
                tf.cast(output, self.compute_dtype),
                tf.cast(context, self.compute_dtype),
            ],
            axis=-1,
        )

    def _attend(self, output, memory):
        return self.attention(
            output,
            memory["keys"],
            memory["values"],
            memory["lengths"],
            valid=memory.get("valid"),
        )

    def _attended_features(self, output, memory):
        """Attention from [B, ..., H] cell outputs; returns `(features,
        scores, fed vector or None)` (see the class docstring)."""
        scores, context = self._attend(output, memory)
        features = self._features(output, context)
        if self.feeds_attentional:
            features = self.mix_layer(features)
            return features, scores, features
        return features, scores, context if self.input_feeding else None

    def _step_features(self, inputs, state, memory, training):
        dtype = self.cell.compute_dtype
        key = self._feed_key
        if self.input_feeding:
            cell_inputs = tf.concat(
                [tf.cast(inputs, dtype), tf.cast(state[key], dtype)], axis=-1
            )
        else:
            cell_inputs = tf.cast(inputs, dtype)
        output, cell_state = self._run_cell(cell_inputs, state["cell"], training)
        features, scores, fed = self._attended_features(output, memory)
        new_state = {"cell": cell_state}
        if self.input_feeding:
            new_state[key] = tf.cast(fed, state[key].dtype)
        return features, new_state, scores

    def teacher_forced_features(self, inputs, state, memory, training=None):
        inputs = tf.convert_to_tensor(inputs)
        fused = self._fused_cell()
        if not self.input_feeding:
            if fused is not None:
                outputs, _ = fused.run(inputs, state["cell"], training)
            else:
                outputs = self._cell_outputs(inputs, state["cell"], training)
            # Every query at once: [B, T, H] against the [B, S, U] keys.
            features, scores, _ = self._attended_features(outputs, memory)
            return features, scores
        if fused is None:
            return super().teacher_forced_features(inputs, state, memory, training)
        return self._fused_input_feeding(fused, inputs, state, memory, training)

    def _cell_outputs(self, inputs, cell_state, training):
        """[B, T, H] outputs of the cell stepped over [B, T, E] inputs."""
        outputs, _ = run_cell(self.cell, inputs, cell_state, training)
        return outputs

    def _fused_input_feeding(self, fused, inputs, state, memory, training):
        """Teacher forcing with input feeding: the embedding part of the
        cell's input projection is computed for all steps before the loop;
        only the fed vector's part stays in it."""
        key = self._feed_key
        embed_width = inputs.shape[-1]
        fed_width = state[key].shape[-1]
        fused.build((None, embed_width + fed_width))
        projected = fused.project_inputs(inputs, training)
        prepared = fused.prepare(extra_rows=(embed_width, fed_width))
        drawn = fused.draw_step_masks(
            tf.shape(inputs)[0], tf.shape(inputs)[1], training, fed_width
        )

        def step_fn(step_projected, state, time):
            masks = fused.step_masks(drawn, time)
            cell_input = step_projected + fused.project_extra(
                state[key], prepared, masks
            )
            output, cell_state = fused.step(cell_input, state["cell"], prepared, masks)
            features, scores, fed = self._attended_features(output, memory)
            new_state = {
                "cell": self._pack_cell_state(cell_state),
                key: tf.cast(fed, state[key].dtype),
            }
            return features, new_state, scores

        return self.run_steps(projected, state, step_fn, dtype=self.compute_dtype)

    def _project(self, features, training=None):
        training = is_training(training, self.mode)
        return self.logits_layer(self._hidden(features, training), training=training)

    def _hidden(self, features, training):
        """The attentional vector, dropout applied: [..., H]."""
        attentional = features if self.feeds_attentional else self.mix_layer(features)
        keep_prob = self.params["attentional_keep_prob"]
        if keep_prob < 1.0 and training:
            attentional = apply_dropout(attentional, keep_prob)
        return attentional
