"""bench.report: the machine line every benchmark section carries."""
from bench import report


def test_vector_extensions_name_avx2_avx512_and_amx_in_order():
    assert report.vector_extensions({"fma", "avx2"}) == ["AVX2"]
    assert report.vector_extensions({"amx_tile", "avx512f", "avx2", "avx512_bf16"}) == [
        "AVX2", "AVX-512", "AVX-512 BF16", "AMX"]
    assert report.vector_extensions(set()) == []


def test_machine_description_names_cores_and_the_onednn_cap(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    text = report.machine_description()
    assert " cores (" in text and "oneDNN capped at AVX2" in text
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert "oneDNN capped" not in report.machine_description()
