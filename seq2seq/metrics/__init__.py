"""Evaluation metrics: BLEU and chrF (sacrebleu), ROUGE and log perplexity.

The metric spec classes are exported here so that a config can name them by
their short name (`class: BleuMetricSpec`).
"""

from seq2seq.metrics.metric_specs import (
    BleuMetricSpec,
    ChrfMetricSpec,
    CorpusTextMetricSpec,
    LogPerplexityMetricSpec,
    MetricSpec,
    RougeMetricSpec,
    TextMetricSpec,
)

__all__ = [
    "BleuMetricSpec",
    "ChrfMetricSpec",
    "CorpusTextMetricSpec",
    "LogPerplexityMetricSpec",
    "MetricSpec",
    "RougeMetricSpec",
    "TextMetricSpec",
]
