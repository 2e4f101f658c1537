from local_run.summary import print_summary


def test_the_transform_line_names_the_cache_only_where_it_held_spans(tmp_path, capsys):
    for spans, analysed, cached in (("1", "1", False), ("1, 2", "2", True)):
        print_summary({"pipeline_root": str(tmp_path), "seconds": 1.0, "transform": {
            "spans": spans, "spans_analysed": analysed, "spans_transformed": analysed}}, "train")
        [line] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Transform:")]
        assert line.startswith(f"Transform: spans {spans}; analysed span(s) {analysed}")
        assert ("TFT's cache holds the others'" in line) == cached, line


def test_the_span_and_transform_lines_say_when_they_describe_a_cached_step(tmp_path, capsys):
    span = {"span": 2, "built_on": 1, "decoded": 10, "new": 10, "changed": 0, "unchanged": 50, "removed": 0}
    data = {"tracks": {"train": 1}, "files": {"ingested": 1, "quarantined": 0, "excluded": 0}, "span": span,
            "quarantined": [], "report": str(tmp_path)}
    transform = {"spans": "1, 2", "spans_analysed": "2", "spans_transformed": "2"}
    for reused in ([], ["AudioExampleGen", "Transform"]):
        print_summary({"pipeline_root": str(tmp_path), "seconds": 1.0, "data": data, "transform": transform,
                       "reused_from_cache": reused}, "train")
        out = capsys.readouterr().out
        reused_line = "span 2 (an earlier run's, reused from cache), built on span 1: 10 files decoded"
        assert (reused_line in out) == bool(reused), out
        assert ("Transform (an earlier run's, reused from cache): spans 1, 2" in out) == bool(reused)
        assert "span 2" in out and "Transform" in out, out
