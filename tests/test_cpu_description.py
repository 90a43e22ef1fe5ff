"""d2net_tf.cpu_runtime's CPU description: the machine line every benchmark table starts with, and
the note the commands print for bfloat16 on a CPU without bfloat16 matrix instructions."""

import pytest

from d2net_tf.cpu_runtime import bfloat16_notice, cpu_description


def test_cpu_description_reads_the_model_and_the_matrix_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\n"
                    "flags\t\t: fpu sse avx512f avx512_bf16 amx_tile amx_bf16 avx2\n\nprocessor\t: 1\n")
    assert cpu_description(str(info)) == ("Some CPU @ 2.0GHz", ["amx_bf16", "amx_tile", "avx512_bf16", "avx512f"])
    info.write_text("model name\t: Other CPU\nflags\t\t: fpu sse avx2\n")
    assert cpu_description(str(info)) == ("Other CPU", [])


def test_cpu_description_of_an_unreadable_file_is_empty(tmp_path):
    assert cpu_description(str(tmp_path / "missing")) == ("", [])


AVX2_ONLY = "model name\t: Plain CPU\nflags\t\t: fpu sse avx avx2 fma\n"


@pytest.mark.parametrize("flags,noted", [("avx2", True), ("avx512f avx2", True), ("avx512f avx512_bf16", False),
                                         ("amx_tile amx_bf16 avx512f", False)])
def test_bfloat16_notice_only_without_bfloat16_matrix_instructions(tmp_path, flags, noted):
    info = tmp_path / "cpuinfo"
    info.write_text(f"model name\t: Some CPU\nflags\t\t: fpu {flags}\n")
    notice = bfloat16_notice("mixed_bfloat16", 0, str(info))
    assert bool(notice) == noted
    if noted:
        assert "Some CPU" in notice and "amx_bf16 / avx512_bf16" in notice


def test_bfloat16_notice_not_for_float32_a_gpu_or_an_unknown_cpu(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(AVX2_ONLY)
    assert bfloat16_notice("float32", 0, str(info)) == ""
    assert bfloat16_notice("mixed_bfloat16", 1, str(info)) == ""  # the GPU computes
    assert bfloat16_notice("mixed_bfloat16", 0, str(tmp_path / "missing")) == ""
