"""ForwardOutput: what a model's forward pass returns in train and eval mode."""

import collections

_ForwardFields = collections.namedtuple(
    "ForwardOutput",
    ["loss", "loss_sum", "num_tokens", "logits", "attention", "extra_metrics"],
)


class ForwardOutput(_ForwardFields):
    """What a forward pass in train or eval mode returns.

    `logits` [B, T-1, V] may be computed only when first read: the loss
    projects only the unpadded positions, so a training step that does not
    read the logits never builds the full [B, T-1, V] tensor. Pass
    `logits_fn` (a function returning them) instead of `logits` for that.

    `metrics` is the dict of summable scalars that training sums over
    micro-batches and replicas and writes to TensorBoard (see
    `seq2seq.training.train_step` and `seq2seq.training.summaries`):
    `loss_sum` and `target_tokens` always, plus the `metrics` a model passes
    (e.g. `{"correct_tokens": ...}`). Each must be a sum over the batch's
    examples or tokens, so that summing the parts gives the whole.
    """

    __slots__ = ()

    def __new__(
        cls,
        loss,
        loss_sum,
        num_tokens,
        logits=None,
        attention=None,
        logits_fn=None,
        metrics=None,
    ):
        if logits is None and logits_fn is not None:
            logits = _LazyLogits(logits_fn)
        return super().__new__(
            cls, loss, loss_sum, num_tokens, logits, attention, dict(metrics or {})
        )

    @property
    def metrics(self):
        """`{"loss_sum", "target_tokens", **extra}`: summable scalars."""
        return {
            "loss_sum": self.loss_sum,
            "target_tokens": self.num_tokens,
            **self.extra_metrics,
        }

    def __getattribute__(self, name):
        value = super().__getattribute__(name)
        if name == "logits" and isinstance(value, _LazyLogits):
            return value.get()
        return value


class _LazyLogits:
    """Computes logits once, on first use."""

    def __init__(self, fn):
        self._fn = fn
        self._value = None

    def get(self):
        if self._value is None:
            self._value = self._fn()
        return self._value
