"""The console summary of a run: a library's groups per split, and quarantined files beyond the listed few."""
from local_run.summary import print_summary


def _summary(groups, quarantined_listed, quarantined_total):
    tracks = {"train": 140, "eval": 30, "test": 30}
    return {"data": {"files": {"ingested": 200, "quarantined": quarantined_total, "excluded": 0},
                     "report": "/r", "tracks": tracks, "groups": groups, "group_by": "album",
                     "quarantined": [{"path": f"rock/a/b/{i:02d} x.wav", "reason": "silent", "detail": "quiet"}
                                     for i in range(quarantined_listed)]},
            "pipeline_root": "/p", "seconds": 1.0}


def test_a_library_run_names_its_groups_per_split_and_counts_the_unlisted_bad_files(capsys):
    print_summary(_summary({"train": 28, "eval": 6, "test": 6}, 20, 23), until="validate")
    out = capsys.readouterr().out
    assert "split by album (all tracks of one on one side): train 28, eval 6, test 6 groups" in out
    assert out.count("  quarantined rock/a/b/") == 20
    assert "... and 3 more quarantined files" in out


def test_loose_clips_print_no_group_line_and_no_remainder(capsys):
    print_summary(_summary({"train": 140, "eval": 30, "test": 30}, 2, 2), until="validate")
    out = capsys.readouterr().out
    assert "split by" not in out and "more quarantined" not in out


def test_a_tuned_run_names_the_chosen_settings_and_every_trials_score(capsys):
    summary = {**_summary({"train": 140, "eval": 30, "test": 30}, 0, 0),
               "tuning": {"chosen": {"learning_rate": 0.003, "heads": 3},
                          "trials": [{"trial": 2, "score": 0.8125, "values": {"learning_rate": 0.003, "heads": 3}},
                                     {"trial": 1, "score": 0.75, "values": {"learning_rate": 0.001, "heads": 5}}]}}
    print_summary(summary, until="train")
    out = capsys.readouterr().out
    assert "tuned: heads 3, learning_rate 0.003 (chosen from 2 trials" in out
    assert "  trial 2: 0.812 heads 3, learning_rate 0.003" in out and "  trial 1: 0.750 heads 5, learning_rate 0.001" in out


def test_an_untuned_run_prints_no_tuning_line(capsys):
    print_summary(_summary({"train": 140, "eval": 30, "test": 30}, 0, 0), until="train")
    assert "tuned" not in capsys.readouterr().out


def test_the_summary_says_how_the_model_began(capsys):
    summary = {**_summary({"train": 140, "eval": 30, "test": 30}, 0, 0),
               "warm_start": "warm start from the champion (model 12): up to 5 epochs"}
    print_summary(summary, until="train")
    assert "trained: warm start from the champion (model 12): up to 5 epochs" in capsys.readouterr().out
    print_summary(_summary({"train": 140, "eval": 30, "test": 30}, 0, 0), until="train")
    assert "trained:" not in capsys.readouterr().out
