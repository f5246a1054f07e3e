"""DumpAttention: saves the attention matrices and plots them as heat maps."""

import os
import warnings

import numpy as np
from absl import logging

from seq2seq.errors import ConfigError, DataError
from seq2seq.tasks.inference_task import InferenceTask, unbatch

SCORES_FILE = "attention_scores.npz"
# The plots are 00000.png, 00001.png, ... (more digits past 99999).
PLOT_PATTERN = "[0-9][0-9][0-9][0-9][0-9]*.png"

# Fonts tried, in order, for tick labels; those installed are used, so that
# tokens in other scripts (e.g. CJK) are drawn when a font for them exists.
_PREFERRED_FONTS = (
    "DejaVu Sans",
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans CJK TC",
    "Noto Sans CJK KR",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Droid Sans Fallback",
    "AR PL UMing CN",
    "Arial Unicode MS",
    "Noto Sans",
)

_font_families = None


def _label_fonts():
    """The installed fonts among `_PREFERRED_FONTS` (matplotlib falls back
    from one to the next glyph by glyph)."""
    global _font_families
    if _font_families is None:
        from matplotlib import font_manager

        installed = {font.name for font in font_manager.fontManager.ttflist}
        _font_families = [name for name in _PREFERRED_FONTS if name in installed]
    return _font_families or ["sans-serif"]


def plot_attention(scores, source_tokens, predicted_tokens, path, title=None):
    """Writes a heat map of one attention matrix to a PNG file.

    Source tokens label the x axis, predicted tokens the y axis. Glyphs no
    installed font has are drawn as boxes, without warnings.

    Args:
      scores: [T, S] float, the attention of each predicted token (row) over
        the source tokens (columns).
      source_tokens: [S] str.
      predicted_tokens: [T] str.
      path: The PNG file to write.
      title: An optional title.
    """
    # The object-oriented API with the Agg canvas leaves pyplot's global
    # state and backend alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scores = np.asarray(scores, dtype=np.float32)
    rows, cols = scores.shape
    width = min(4.0 + 0.35 * cols, 60.0)
    height = min(3.0 + 0.35 * rows, 60.0)
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    label_style = {"fontfamily": _label_fonts(), "parse_math": False}
    if scores.size:
        image = axes.imshow(
            scores,
            interpolation="nearest",
            cmap="Blues",
            aspect="auto",
            vmin=0.0,
            vmax=max(1.0, float(scores.max())),
        )
        figure.colorbar(image, ax=axes, fraction=0.04, pad=0.02)
    axes.set_xticks(np.arange(cols))
    axes.set_xticklabels(
        [str(token) for token in source_tokens][:cols],
        rotation=60,
        ha="right",
        rotation_mode="anchor",
        **label_style,
    )
    axes.set_yticks(np.arange(rows))
    axes.set_yticklabels(
        [str(token) for token in predicted_tokens][:rows], **label_style
    )
    axes.set_xlabel("source")
    axes.set_ylabel("prediction")
    if title:
        axes.set_title(title, **label_style)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Gg]lyph.*missing.*")
        warnings.filterwarnings("ignore", message=".*tight_layout.*")
        figure.tight_layout()
        figure.savefig(path, dpi=80)


class DumpAttention(InferenceTask):
    """Saves each example's attention matrix, and a heat map of it.

    For every example the matrix `[T, S]` is kept: one row per predicted
    token (SEQUENCE_END included when it was produced), one column per source
    token (its trailing SEQUENCE_END included). At the end they are written,
    in input order, to `output_dir/attention_scores.npz` as `arr_0`,
    `arr_1`, ... (`np.savez` with positional arrays, like the original), so
    `np.load(path)[f"arr_{i}"]` is example i's matrix. Unless plots are
    turned off, `output_dir/00000.png`, `00001.png`, ... show each matrix
    with the source on the x axis and the prediction on the y axis.

    Params:
      output_dir: The directory to write to (required; created if needed).
      dump_plots: Whether to write the PNG heat maps.
      dump_atention_no_plot: True skips the plots (the original's spelling).
      dump_attention_no_plot: The same, correctly spelled.
    """

    def __init__(self, params):
        super().__init__(params)
        if not self.params["output_dir"]:
            raise ConfigError(
                "DumpAttention: output_dir is required; set it to the directory "
                "for attention_scores.npz and the plots."
            )
        self._scores = []
        self._index = 0

    @staticmethod
    def default_params():
        return {
            "output_dir": "",
            "dump_plots": True,
            "dump_atention_no_plot": False,
            "dump_attention_no_plot": False,
        }

    @property
    def plots_enabled(self):
        """Whether PNG heat maps are written."""
        return bool(
            self.params["dump_plots"]
            and not self.params["dump_atention_no_plot"]
            and not self.params["dump_attention_no_plot"]
        )

    def output_paths(self):
        output_dir = self.params["output_dir"]
        paths = [("DumpAttention: output_dir", os.path.join(output_dir, SCORES_FILE))]
        if self.plots_enabled:
            paths.append(
                ("DumpAttention: output_dir", os.path.join(output_dir, PLOT_PATTERN))
            )
        return paths

    def begin(self):
        output_dir = self.params["output_dir"]
        try:
            os.makedirs(output_dir, exist_ok=True)
        except OSError as err:
            raise DataError(
                f"DumpAttention: cannot create output_dir {output_dir}: "
                f"{err.strerror}. Choose a writable directory."
            ) from None
        if self.plots_enabled:
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                raise ConfigError(
                    "DumpAttention: plots need matplotlib; install it "
                    "(pip install matplotlib) or set dump_plots: false."
                ) from None

    def process_batch(self, predictions):
        if "attention_scores" not in predictions:
            raise ConfigError(
                "DumpAttention: the model has no attention, so there are no "
                "attention scores to dump. Use an attention model (e.g. "
                "AttentionSeq2Seq) or remove the DumpAttention task."
            )
        for example in unbatch(predictions):
            scores = np.asarray(example["attention_scores"], dtype=np.float32)
            self._scores.append(scores)
            if self.plots_enabled:
                self._plot(example, scores)
            self._index += 1

    def _plot(self, example, scores):
        path = os.path.join(self.params["output_dir"], f"{self._index:05d}.png")
        try:
            plot_attention(
                scores,
                example["source_tokens"],
                example["predicted_tokens"],
                path,
                title=f"example {self._index}",
            )
        except (ValueError, RuntimeError, OSError) as err:
            # A plot that cannot be drawn must not lose the scores.
            logging.warning("DumpAttention: could not plot %s: %s", path, err)

    def end(self):
        path = os.path.join(self.params["output_dir"], SCORES_FILE)
        os.makedirs(self.params["output_dir"], exist_ok=True)
        np.savez(path, *self._scores)
        logging.info(
            "DumpAttention: wrote %d attention matrices to %s", len(self._scores), path
        )
