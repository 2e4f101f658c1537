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


def test_put_row_replaces_the_row_of_its_first_cell_keeps_the_others_and_orders_them():
    rows = ["| b | 1 |", "| a | 2 |"]
    assert report.put_row(rows, "| b | 3 |", rank=str) == ["| a | 2 |", "| b | 3 |"]
    assert report.put_row(rows, "| c | 4 |", rank=lambda key: -ord(key)) == ["| c | 4 |", "| b | 1 |", "| a | 2 |"]
    assert report.put_row([], "| a | 5 |", rank=str) == ["| a | 5 |"]


def test_table_rows_are_the_first_tables_rows_without_header_and_rule():
    text = "intro\n\n| k | v |\n|---|---|\n| a | 1 |\n| b | 2 |\n\n| x |\n|---|\n| other |\n"
    assert report.table_rows(text) == ["| a | 1 |", "| b | 2 |"]
    assert report.table_rows("no table\n") == []


def test_a_section_of_several_runs_names_its_command_only_and_reads_back(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "BENCHMARKS_MD", tmp_path / "BENCHMARKS.md")
    assert report.read_section("shared") == ""
    report.write_section("shared", "Shared", "| k |\n|---|\n| a |", command="make x", stamped=False)
    report.write_section("own", "Own", "figures", command="make y")
    shared = report.read_section("shared")
    assert shared.startswith("<!-- bench:shared -->\n## Shared\n\n- Command: `make x`\n\n| k |")
    assert "- Date:" not in shared and "- Machine:" not in shared
    assert "- Date:" in report.read_section("own") and report.table_rows(shared) == ["| a |"]


def test_publish_prints_always_and_writes_only_when_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report, "BENCHMARKS_MD", tmp_path / "BENCHMARKS.md")
    report.publish("figures one", False, "s", "S", "make s")
    assert "figures one" in capsys.readouterr().out and not report.BENCHMARKS_MD.exists()
    report.publish("figures two", True, "s", "S", "make s")
    assert "figures two" in report.read_section("s")


def test_load_text_gives_the_three_averages_before_and_after():
    assert report.load_text((0.5, 1.25, 2.0), (1.0, 1.0, 1.0)) == (
        "Load average (1/5/15 min) before: 0.50 / 1.25 / 2.00, after: 1.00 / 1.00 / 1.00")
