"""benchmarks.common: the machine description every benchmark table starts with."""

from benchmarks.common import cpu_description


def test_cpu_description_reads_the_model_and_the_matrix_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\n"
                    "flags\t\t: fpu sse avx512f avx512_bf16 amx_tile amx_bf16 avx2\n\nprocessor\t: 1\n")
    assert cpu_description(str(info)) == ("Some CPU @ 2.0GHz", ["amx_bf16", "amx_tile", "avx512_bf16", "avx512f"])
    info.write_text("model name\t: Other CPU\nflags\t\t: fpu sse avx2\n")
    assert cpu_description(str(info)) == ("Other CPU", [])


def test_cpu_description_of_an_unreadable_file_is_empty(tmp_path):
    assert cpu_description(str(tmp_path / "missing")) == ("", [])
