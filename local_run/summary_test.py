from local_run.summary import print_summary


def test_the_transform_line_names_the_cache_only_where_it_held_spans(tmp_path, capsys):
    for spans, analysed, cached in (("1", "1", False), ("1, 2", "2", True)):
        print_summary({"pipeline_root": str(tmp_path), "seconds": 1.0, "transform": {
            "spans": spans, "spans_analysed": analysed, "spans_transformed": analysed}}, "train")
        [line] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Transform:")]
        assert line.startswith(f"Transform: spans {spans}; analysed span(s) {analysed}")
        assert ("TFT's cache holds the others'" in line) == cached, line
