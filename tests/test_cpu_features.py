"""Tests for seq2seq.training.cpu_features (bfloat16 detection)."""

from seq2seq.training import cpu_features

X86_BF16 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu vme avx2 avx512f avx512_bf16 avx512_vnni

processor\t: 1
flags\t\t: fpu vme avx2 avx512f avx512_bf16 avx512_vnni
"""
X86_PLAIN = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) bf16 edition\n" + (
    "flags\t\t: fpu avx2 avx512f avx512bw\n"
)
ARM_BF16 = "processor\t: 0\nFeatures\t: fp asimd sve i8mm bf16\n"


def test_cpu_flags_read_the_first_processor():
    flags = cpu_features.cpu_flags(X86_BF16)
    assert {"avx512_bf16", "avx2", "fpu"} <= flags
    assert cpu_features.cpu_flags("processor: 0\n") == set()


def test_native_bfloat16_from_flags_not_names():
    assert cpu_features.has_native_bfloat16(cpu_features.cpu_flags(X86_BF16))
    assert cpu_features.has_native_bfloat16(cpu_features.cpu_flags(ARM_BF16))
    # "bf16" in the model name is not a flag.
    assert not cpu_features.has_native_bfloat16(cpu_features.cpu_flags(X86_PLAIN))
    amx = cpu_features.cpu_flags("flags : avx512f amx_tile amx_bf16\n")
    assert cpu_features.has_native_bfloat16(amx)


def test_host_detection_reads_a_file(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(X86_BF16)
    assert cpu_features.host_has_native_bfloat16(str(path))
    path.write_text(X86_PLAIN)
    assert not cpu_features.host_has_native_bfloat16(str(path))
    assert not cpu_features.host_has_native_bfloat16(str(tmp_path / "missing"))


def test_resolve_auto():
    resolve = cpu_features.resolve_mixed_precision
    assert resolve("auto", has_gpu=False, native_bfloat16=True) == "bfloat16_logits"
    assert resolve("auto", has_gpu=False, native_bfloat16=False) == ""
    assert resolve("auto", has_gpu=True, native_bfloat16=True) == ""
    assert resolve("float16", has_gpu=False, native_bfloat16=True) == "float16"
    assert resolve("", has_gpu=False, native_bfloat16=True) == ""
    assert resolve("bfloat16", has_gpu=False, native_bfloat16=True) == "bfloat16"
