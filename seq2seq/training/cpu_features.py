"""What the host computes natively: bfloat16 matrix units, and whether a GPU
is visible.

`--mixed_precision auto` multiplies in bfloat16 (the output layer's product,
`bfloat16_logits`) only on a CPU that does so in hardware (x86 `avx512_bf16`
or AMX `amx_bf16`, Arm `bf16`), read from the flags the kernel reports,
never assumed from the CPU's name: elsewhere bfloat16 is emulated and slower
than float32.
"""

import sys

CPUINFO = "/proc/cpuinfo"

# /proc/cpuinfo flags (x86 "flags", Arm "Features") of native bfloat16
# matrix arithmetic.
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def cpu_flags(cpuinfo_text):
    """The feature flags of the first processor in a /proc/cpuinfo text.

    Args:
      cpuinfo_text: The file's contents.

    Returns:
      A set of lower-case flag names (empty when there is no `flags` or
      `Features` line).
    """
    for line in cpuinfo_text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return set(value.lower().split())
    return set()


def has_native_bfloat16(flags):
    """Whether a set of CPU flags includes native bfloat16 arithmetic."""
    return any(flag in flags for flag in BF16_FLAGS)


def host_has_native_bfloat16(path=CPUINFO):
    """Whether this machine's CPU multiplies bfloat16 natively (False where
    /proc/cpuinfo cannot be read, e.g. not on Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return has_native_bfloat16(cpu_flags(handle.read()))
    except OSError:
        return False


def gpu_visible():
    """Whether TensorFlow sees a GPU (training then runs on it)."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def resolve_mixed_precision(name, has_gpu=None, native_bfloat16=None):
    """`--mixed_precision` with `auto` resolved.

    `auto` is `bfloat16_logits` (the output layer's product in bfloat16, the
    rest float32) when training runs on a CPU (no GPU visible) that has
    native bfloat16 arithmetic, else float32 (`""`); other values are
    returned unchanged. On such a CPU (`avx512_bf16`) that mode trained
    nmt_small 1.04-1.11x faster per CPU-second than float32, while Keras's
    whole `mixed_bfloat16` policy was not faster (docs/performance.md).

    Args:
      name: The flag's value.
      has_gpu: Whether TensorFlow sees a GPU (None: ask it).
      native_bfloat16: Whether the CPU has native bfloat16 (None: read
        /proc/cpuinfo).
    """
    if (name or "").strip().lower() != "auto":
        return name
    if has_gpu is None:
        has_gpu = gpu_visible()
    if has_gpu:
        return ""
    if native_bfloat16 is None:
        native_bfloat16 = host_has_native_bfloat16()
    return "bfloat16_logits" if native_bfloat16 else ""
