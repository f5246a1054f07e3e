"""The installation check of the original: train a tiny model for a few steps
with `bin/train.py`, then decode with `bin/infer.py` (greedy with attention
dumps, and beam search), as a user runs them, in a temporary directory.

  python -m unittest seq2seq.test.pipeline_test

It prints OK when everything works. Run it from the repository root (where
`bin/` is).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TRAIN_STEPS = 50

# As in the original: four parallel sentences, non-ASCII tokens included.
TRAIN = (
    ["a a a a", "b b b b", "c c c c", "笑 笑 笑 笑"],
    ["b b b b", "a a a a", "c c c c", "泣 泣 泣 泣"],
)
DEV = (["a a", "b b", "c c c", "笑 笑 笑"], ["b b", "a a", "c c c", "泣 泣 泣"])


def _write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    return path


def _pipeline(sources, targets=None):
    params = {"source_files": [sources]}
    if targets:
        params["target_files"] = [targets]
    return {"class": "ParallelTextInputPipeline", "params": params}


class PipelineTest(unittest.TestCase):
    """Runs bin/train.py and bin/infer.py end to end."""

    def setUp(self):
        self.work_dir = tempfile.mkdtemp(prefix="seq2seq_pipeline_test_")
        self.model_dir = os.path.join(self.work_dir, "model")

    def tearDown(self):
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def _path(self, name):
        return os.path.join(self.work_dir, name)

    def _run(self, module, *args):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p
        )
        result = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        self.assertEqual(
            result.returncode,
            0,
            f"python -m {module} failed:\n{result.stderr[-4000:]}",
        )
        return result.stdout

    def test_train_infer(self):
        sources_train = _write_lines(self._path("train.sources"), TRAIN[0])
        targets_train = _write_lines(self._path("train.targets"), TRAIN[1])
        sources_dev = _write_lines(self._path("dev.sources"), DEV[0])
        targets_dev = _write_lines(self._path("dev.targets"), DEV[1])
        vocab_source = _write_lines(self._path("vocab.sources"), ["a", "b", "c", "笑"])
        vocab_target = _write_lines(self._path("vocab.targets"), ["a", "b", "c", "泣"])
        cell = {"cell_class": "GRUCell", "cell_params": {"num_units": 8}}
        # Some flags through a config file, the others on the command line.
        config_path = self._path("train_config.yml")
        with open(config_path, "w", encoding="utf-8") as out:
            yaml.safe_dump(
                {
                    "input_pipeline_train": _pipeline(sources_train, targets_train),
                    "input_pipeline_dev": _pipeline(sources_dev, targets_dev),
                    "train_steps": TRAIN_STEPS,
                    "model_params": {
                        "embedding.dim": 10,
                        "encoder.params": {"rnn_cell": cell},
                        "decoder.params": {"rnn_cell": cell},
                    },
                },
                out,
                allow_unicode=True,
            )
        self._run(
            "bin.train",
            "--config_paths",
            config_path,
            "--model",
            "AttentionSeq2Seq",
            "--model_params",
            f"attention.params: {{num_units: 10}}\n"
            f"vocab_source: {vocab_source}\nvocab_target: {vocab_target}",
            "--hooks",
            "[{class: PrintModelAnalysisHook}, {class: TrainSampleHook}]",
            "--metrics",
            "[{class: LogPerplexityMetricSpec}, {class: BleuMetricSpec}, "
            "{class: RougeMetricSpec, params: {rouge_type: rouge_1/f_score}}]",
            "--batch_size",
            "2",
            "--save_checkpoints_steps",
            str(TRAIN_STEPS),
            "--eval_every_n_steps",
            str(TRAIN_STEPS),
            "--output_dir",
            self.model_dir,
        )
        checkpoint = os.path.join(self.model_dir, f"ckpt-{TRAIN_STEPS}")
        self.assertTrue(os.path.exists(checkpoint + ".index"))
        self.assertTrue(os.path.isdir(os.path.join(self.model_dir, "eval")))

        # Greedy decoding with attention dumps.
        attention_dir = self._path("attention")
        dev_pipeline = yaml.safe_dump(_pipeline(sources_dev, targets_dev))
        predictions = self._run(
            "bin.infer",
            "--model_dir",
            self.model_dir,
            "--checkpoint_path",
            checkpoint,
            "--input_pipeline",
            dev_pipeline,
            "--batch_size",
            "2",
            "--tasks",
            f"[{{class: DecodeText}}, {{class: DumpAttention, "
            f"params: {{output_dir: {attention_dir}}}}}]",
        )
        self.assertEqual(len(predictions.splitlines()), len(DEV[0]))
        scores = np.load(os.path.join(attention_dir, "attention_scores.npz"))
        self.assertEqual(len(scores.files), len(DEV[0]))
        # One column per source token plus SEQUENCE_END.
        for index, source in enumerate(DEV[0]):
            self.assertEqual(scores[f"arr_{index}"].shape[1], len(source.split()) + 1)
        self.assertTrue(os.path.exists(os.path.join(attention_dir, "00002.png")))

        # Beam search, with the beams dumped.
        beams = self._path("beams.npz")
        predictions = self._run(
            "bin.infer",
            "--model_dir",
            self.model_dir,
            "--input_pipeline",
            dev_pipeline,
            "--model_params",
            "inference.beam_search.beam_width: 5",
            "--tasks",
            f"[{{class: DecodeText}}, {{class: DumpBeams, params: {{file: {beams}}}}}]",
        )
        self.assertEqual(len(predictions.splitlines()), len(DEV[0]))
        self.assertEqual(np.load(beams)["predicted_ids"].shape[2], 5)


if __name__ == "__main__":
    unittest.main()
