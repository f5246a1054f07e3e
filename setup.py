"""Package metadata for seq2seq, the TensorFlow 2 port of google/seq2seq."""

from setuptools import find_packages, setup

SUBWORDS = ["sentencepiece>=0.2", "tensorflow-text==2.21.*"]
DATA = ["sacremoses>=0.1"]

setup(
    name="seq2seq",
    version="0.2.0",
    description="A general-purpose encoder-decoder framework for TensorFlow 2",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache 2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["seq2seq", "seq2seq.*", "bin", "bin.*"]),
    install_requires=[
        "tensorflow>=2.16",
        # ml_dtypes 0.7.0 (TensorFlow's bfloat16 and float8 types) spends about
        # 1 s of every process start registering its NumPy ufunc loops; 0.6.0
        # takes milliseconds (benchmarks/startup_time.py, docs/performance.md).
        "ml_dtypes>=0.5.1,<0.7",
        "numpy",
        "sacrebleu>=2.0",
        "pyyaml",
        "absl-py",
        "tensorboard",
        "matplotlib",
    ],
    extras_require={
        # Subword text in, plain text out: SentencePiece models
        # (bin/tools/learn_subwords.py) and their in-graph op (tensorflow-text,
        # whose version must match TensorFlow's).
        "subwords": SUBWORDS,
        # The tests exercise the subword path and the data recipes too.
        "test": ["pytest", "pytest-xdist", "black", "ruff"] + SUBWORDS + DATA,
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        # bin/data/wmt16_en_de.sh: Moses tokenization (prepare_corpus.py).
        "data": DATA,
    },
    entry_points={
        "console_scripts": [
            "seq2seq-train=bin.train:entry_point",
            "seq2seq-infer=bin.infer:entry_point",
            "seq2seq-export=bin.export:entry_point",
        ]
    },
)
