#!/usr/bin/env python3
"""Writes a small synthetic image captioning data set (no downloads needed).

Every image shows one or more coloured shapes on a dark, noisy background,
and its caption names them from left to right: `red square`, or
`blue circle and yellow triangle`. The data is written as a TFRecord file of
`tf.train.Example`s in the layout `ImageCaptioningInputPipeline` reads:

    image/data         the encoded image (JPEG or PNG)
    image/format       b"jpg" or b"png"
    image/caption      the caption text, tokens separated by spaces
    image/caption_ids  the caption's token ids in vocab.txt (as the
                       original's records had; the model does not need them)

    python3 bin/tools/make_image_captioning_data.py --output_dir /tmp/shapes/train
    python3 bin/tools/make_image_captioning_data.py --output_dir /tmp/shapes/dev \\
        --num_examples 50 --seed 2

writes `captions.tfrecord`, `captions.txt` (the captions, one per line, in
record order: references for BLEU) and `vocab.txt` (every word the tool can
produce, so train and dev sets share it) into the output directory. Needs
numpy and TensorFlow (for JPEG/PNG encoding and TFRecord writing).
"""

import os
import random
import sys

import numpy as np

if __package__:
    from ._usage import ArgumentParser, UsageError, reports_usage_errors
else:  # run as a script: this directory is sys.path[0]
    from _usage import ArgumentParser, UsageError, reports_usage_errors

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 80, 230),
    "yellow": (235, 220, 50),
    "white": (245, 245, 245),
    "purple": (160, 60, 200),
}
SHAPES = ("square", "circle", "triangle")
JOIN_WORD = "and"


def build_parser():
    parser = ArgumentParser(description="Write a synthetic shapes captioning data set.")
    parser.add_argument(
        "--output_dir", required=True, help="Directory for the output files."
    )
    parser.add_argument(
        "--num_examples", type=int, default=200, help="Number of images."
    )
    parser.add_argument(
        "--image_size", type=int, default=64, help="Image height and width, pixels."
    )
    parser.add_argument(
        "--max_shapes",
        type=int,
        default=2,
        help="Up to this many shapes per image (1 or more).",
    )
    parser.add_argument(
        "--image_format", default="jpg", choices=["jpg", "png"], help="Encoding."
    )
    parser.add_argument(
        "--name", default="captions", help="Base name of the .tfrecord/.txt files."
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="Random seed (default: random)."
    )
    return parser


def vocabulary():
    """Every token a caption can contain, sorted."""
    return sorted(set(COLOURS) | set(SHAPES) | {JOIN_WORD})


def draw_shape(canvas, shape, colour, left, top, size):
    """Paints one filled shape into `canvas` in place.

    Args:
      canvas: [H, W, 3] uint8 array.
      shape: One of `SHAPES`.
      colour: An RGB tuple.
      left, top: The top-left corner of the shape's square box, pixels.
      size: The side of the box, pixels.
    """
    height, width, _ = canvas.shape
    rows, cols = np.mgrid[0:height, 0:width]
    inside_box = (
        (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    )
    if shape == "square":
        mask = inside_box
    elif shape == "circle":
        centre_r, centre_c = top + (size - 1) / 2.0, left + (size - 1) / 2.0
        mask = (rows - centre_r) ** 2 + (cols - centre_c) ** 2 <= (size / 2.0) ** 2
    elif shape == "triangle":
        # Apex at the top middle, base along the bottom of the box.
        half_width = (rows - top + 1) / 2.0
        mask = inside_box & (np.abs(cols - (left + (size - 1) / 2.0)) <= half_width)
    else:
        raise ValueError(f"unknown shape {shape!r}; use one of {SHAPES}")
    canvas[mask] = colour


def make_image(objects, image_size, rng):
    """Draws `objects` (a list of `(colour, shape)`) left to right.

    Each object gets its own vertical strip of the image, at a random size
    and position inside the strip, on a dark background with pixel noise.

    Returns:
      [image_size, image_size, 3] uint8 array.
    """
    noise = np.random.default_rng(rng.randrange(2**32))
    base = rng.randint(20, 70)
    canvas = noise.integers(base, base + 25, size=(image_size, image_size, 3))
    canvas = canvas.astype(np.uint8)
    strip = image_size // len(objects)
    for index, (colour, shape) in enumerate(objects):
        largest = max(2, min(strip, image_size) - 2)
        size = rng.randint(max(2, int(largest * 0.5)), largest)
        left = index * strip + rng.randint(0, max(0, strip - size))
        top = rng.randint(0, image_size - size)
        draw_shape(canvas, shape, COLOURS[colour], left, top, size)
    return canvas


def make_examples(num_examples, image_size, max_shapes, rng):
    """Yields `(image [S, S, 3] uint8, caption str)` pairs."""
    colours = sorted(COLOURS)
    for _ in range(num_examples):
        count = rng.randint(1, max_shapes)
        objects = [(rng.choice(colours), rng.choice(SHAPES)) for _ in range(count)]
        caption = f" {JOIN_WORD} ".join(f"{c} {s}" for c, s in objects)
        yield make_image(objects, image_size, rng), caption


def encode_image(image, image_format):
    """Encodes an [H, W, 3] uint8 array as JPEG or PNG bytes."""
    import tensorflow as tf

    if image_format == "png":
        return tf.io.encode_png(image).numpy()
    return tf.io.encode_jpeg(image, quality=95).numpy()


def make_record(image_bytes, caption, image_format, token_ids):
    """A serialized `tf.train.Example` for one image and caption."""
    import tensorflow as tf

    def _bytes(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    ids = [token_ids[token] for token in caption.split()]
    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                "image/data": _bytes(image_bytes),
                "image/format": _bytes(image_format.encode("utf-8")),
                "image/caption": _bytes(caption.encode("utf-8")),
                "image/caption_ids": tf.train.Feature(
                    int64_list=tf.train.Int64List(value=ids)
                ),
            }
        )
    )
    return example.SerializeToString()


def write_dataset(
    output_dir,
    num_examples=200,
    image_size=64,
    max_shapes=2,
    image_format="jpg",
    seed=None,
    name="captions",
):
    """Writes `<name>.tfrecord`, `<name>.txt` and `vocab.txt` to `output_dir`.

    Returns:
      A dict of the written paths: `tfrecord`, `captions`, `vocab`.
    """
    import tensorflow as tf

    rng = random.Random(seed)
    os.makedirs(output_dir, exist_ok=True)
    paths = {
        "tfrecord": os.path.join(output_dir, f"{name}.tfrecord"),
        "captions": os.path.join(output_dir, f"{name}.txt"),
        "vocab": os.path.join(output_dir, "vocab.txt"),
    }
    tokens = vocabulary()
    token_ids = {token: index for index, token in enumerate(tokens)}
    captions = []
    with tf.io.TFRecordWriter(paths["tfrecord"]) as writer:
        for image, caption in make_examples(num_examples, image_size, max_shapes, rng):
            writer.write(
                make_record(
                    encode_image(image, image_format), caption, image_format, token_ids
                )
            )
            captions.append(caption)
    with open(paths["captions"], "w", encoding="utf-8", newline="\n") as out:
        out.writelines(caption + "\n" for caption in captions)
    with open(paths["vocab"], "w", encoding="utf-8", newline="\n") as out:
        out.writelines(token + "\n" for token in tokens)
    return paths


def _check(args):
    if args.num_examples < 1:
        raise UsageError(f"--num_examples must be >= 1, got {args.num_examples}")
    if args.image_size < 8:
        raise UsageError(f"--image_size must be >= 8, got {args.image_size}")
    if args.max_shapes < 1:
        raise UsageError(f"--max_shapes must be >= 1, got {args.max_shapes}")
    if args.image_size // args.max_shapes < 4:
        raise UsageError(
            f"--image_size {args.image_size} is too small for --max_shapes "
            f"{args.max_shapes}; give each shape at least 4 pixels of width."
        )
    if not args.name or os.sep in args.name:
        raise UsageError(f"--name must be a plain file name, got {args.name!r}")
    if os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
        raise UsageError(
            f"--output_dir exists and is not a directory: {args.output_dir}"
        )


@reports_usage_errors("make_image_captioning_data")
def main(argv=None):
    """Runs the tool; returns the exit status."""
    args = build_parser().parse_args(argv)
    _check(args)
    try:
        os.makedirs(args.output_dir, exist_ok=True)
    except OSError as err:  # a parent is a file, no permission, ...
        raise UsageError(
            f"cannot create --output_dir {args.output_dir}: {err.strerror}"
        ) from None
    paths = write_dataset(
        args.output_dir,
        num_examples=args.num_examples,
        image_size=args.image_size,
        max_shapes=args.max_shapes,
        image_format=args.image_format,
        seed=args.seed,
        name=args.name,
    )
    for key in ("tfrecord", "captions", "vocab"):
        print(f"Wrote {paths[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
