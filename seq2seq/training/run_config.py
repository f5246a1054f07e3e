"""`RunConfig`: how long to train, how to batch, and when to save and evaluate.

The command line's training flags (`bin/train.py`) fill one; `Trainer`,
its hooks and `CurveHealth` read it.
"""

import dataclasses

from seq2seq.errors import UserError


@dataclasses.dataclass
class RunConfig:
    """How long to train, how to batch, and when to save and evaluate."""

    output_dir: str
    batch_size: int = 16
    buckets: list = None
    train_steps: int = None
    eval_every_n_steps: int = 1000
    save_checkpoints_secs: int = None
    save_checkpoints_steps: int = None
    keep_checkpoint_max: int = 5
    keep_checkpoint_every_n_hours: float = 4.0
    log_every_n_steps: int = 100
    tf_random_seed: int = None
    # Evaluation: also compute text metrics on beam search decodes (> 1).
    eval_beam_width: int = 0
    # Curve health.
    max_consecutive_nan_steps: int = 5
    loss_spike_factor: float = 3.0
    # Best checkpoint and early stopping ("" metric: keep the best by
    # loss/teacher_forced when there is a dev set, never stop early).
    early_stopping_metric: str = ""
    early_stopping_mode: str = "auto"
    early_stopping_patience: int = 5
    early_stopping_min_delta: float = 0.0
    # Performance and scale (see docs/performance.md).
    distribution_strategy: str = "default"
    distribution_devices: list = None
    effective_batch_size: int = None
    mixed_precision: str = ""
    jit_compile: bool = False
    # Plain Adam's update in one kernel per variable (`fused_adam`; the
    # same arithmetic and slots as Keras's).
    fused_optimizer: bool = True
    batch_type: str = "examples"
    pad_to_bucket: bool = False
    cache_max_bytes: int = 0
    # TensorBoard extras (see docs/training.md): per-variable gradient
    # summaries at the summary steps, and heat maps and translations of the
    # first `eval_summary_examples` dev sentences at each evaluation.
    gradient_summaries: bool = False
    eval_summary_examples: int = 0

    def accumulation_steps(self):
        """Micro-batches per update: `effective_batch_size / batch_size`.

        Raises:
          UserError: `effective_batch_size` is not a multiple of `batch_size`.
        """
        if not self.effective_batch_size:
            return 1
        steps, remainder = divmod(int(self.effective_batch_size), int(self.batch_size))
        if remainder or steps < 1:
            raise UserError(
                f"--effective_batch_size={self.effective_batch_size} must be a "
                f"multiple of --batch_size={self.batch_size} (each update "
                "accumulates effective_batch_size / batch_size batches); e.g. "
                f"--effective_batch_size={(steps + 1) * self.batch_size}."
            )
        return steps
