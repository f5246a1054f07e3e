#!/usr/bin/env python3
"""A decoding step's attention products: element-wise against batched
matmuls, by operand size.

    python benchmarks/attention_step.py [--batch 32 --lengths 8,12,16,24,32
        --depths 128,256 --steps 10 --repeats 5]

At each step of an attention decoder every sentence multiplies one row by
its own matrix twice: the query by its [S, U] keys (the dot scores) and the
[S] weights by its [S, D] values (the context). `seq2seq.decoders.attention`
computes them with element-wise products and sums while the [B, S, D]
operand holds at most `ELEMENTWISE_MAX_ELEMENTS` elements, and with batched
matmuls above. This script measures both ways (the module's own
`ONE_ROW_PRODUCTS`) inside a `tf.while_loop` of
`--steps` steps, forward and backward (as in training), for each length S
and depth D, and prints the median process CPU-milliseconds per loop over
`--repeats` timings, with the operand's size and the way the threshold
picks. CPU time, not wall time: the loop runs on one thread at a time.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO_ROOT = os.path.dirname(_HERE)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from benchmarks import common  # noqa: E402
from benchmarks.common import BenchmarkError  # noqa: E402


def loop_cpu_ms(tf, product, fn, batch, length, depth, steps, repeats):
    """Median CPU-ms of a `steps`-step loop applying `fn`, with gradients."""
    matrices = tf.random.normal([batch, length, depth], seed=1)
    start = tf.random.normal([batch, depth], seed=2)
    mix = tf.Variable(tf.random.normal([depth, length], seed=3) * 0.05)

    @tf.function
    def run():
        with tf.GradientTape() as tape:
            tape.watch(matrices)

            def body(t, rows, total):
                if product == "scores":
                    out = tf.linalg.matmul(fn(rows, matrices), mix, transpose_b=True)
                else:
                    out = fn(tf.nn.softmax(tf.linalg.matmul(rows, mix)), matrices)
                return t + 1, tf.tanh(out), total + tf.reduce_sum(out)

            total = tf.while_loop(
                lambda t, rows, total: t < steps, body, (0, start, 0.0)
            )[2]
        return tape.gradient(total, [mix, matrices])

    run()
    times = []
    for _ in range(repeats):
        clock = common.Stopwatch()
        for _ in range(20):
            grads = run()
        grads[0].numpy()
        times.append(clock.cpu_seconds() * 1000.0 / 20)
    return common.median(times)


def measure(args):
    import tensorflow as tf

    from seq2seq.decoders.attention import ELEMENTWISE_MAX_ELEMENTS, ONE_ROW_PRODUCTS

    lengths = common.number_list(args.lengths, "lengths")
    depths = common.number_list(args.depths, "depths")
    for flag in ("batch", "steps", "repeats"):
        if getattr(args, flag) <= 0:
            raise BenchmarkError(f"--{flag} must be positive.")
    print(common.load_at_start(), flush=True)
    rows = [
        [
            "product",
            "B x S x D",
            "elements",
            "element-wise (ms)",
            "batched matmul (ms)",
            "matmul / element-wise",
            "threshold picks",
        ]
    ]
    for product in ("scores", "context"):
        for depth in depths:
            for length in lengths:
                ms = {
                    way: loop_cpu_ms(
                        tf,
                        product,
                        ONE_ROW_PRODUCTS[(product, way)],
                        args.batch,
                        length,
                        depth,
                        args.steps,
                        args.repeats,
                    )
                    for way in ("element-wise", "batched matmul")
                }
                size = args.batch * length * depth
                rows.append(
                    [
                        product,
                        f"{args.batch} x {length} x {depth}",
                        str(size),
                        f"{ms['element-wise']:.2f}",
                        f"{ms['batched matmul']:.2f}",
                        f"{ms['batched matmul'] / ms['element-wise']:.2f}",
                        (
                            "element-wise"
                            if size <= ELEMENTWISE_MAX_ELEMENTS
                            else "batched matmul"
                        ),
                    ]
                )
                print(" | ".join(rows[-1]), flush=True)
    print(
        f"CPU-ms per {args.steps}-step loop, forward and backward, median of "
        f"{args.repeats}; ELEMENTWISE_MAX_ELEMENTS = {ELEMENTWISE_MAX_ELEMENTS}."
    )
    print(common.format_table(rows))
    print(common.load_at_end(with_cpus=True))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lengths", default="8,12,16,24,32")
    parser.add_argument("--depths", default="128,256")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return measure(args)
    except BenchmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
