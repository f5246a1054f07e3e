"""Evaluation metrics: BLEU (sacrebleu), ROUGE and log perplexity.

The metric spec classes are exported here so that a config can name them by
their short name (`class: BleuMetricSpec`).
"""

from seq2seq.metrics.metric_specs import (
    BleuMetricSpec,
    LogPerplexityMetricSpec,
    MetricSpec,
    RougeMetricSpec,
    TextMetricSpec,
)

__all__ = [
    "BleuMetricSpec",
    "LogPerplexityMetricSpec",
    "MetricSpec",
    "RougeMetricSpec",
    "TextMetricSpec",
]
