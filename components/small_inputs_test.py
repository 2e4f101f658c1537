from pathlib import Path

from components import small_inputs

PROCESSES = ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=0",
             "--sdk_container_image=none"]


def test_a_small_input_runs_in_process_and_a_large_one_keeps_the_workers():
    small = small_inputs.beam_args_for(PROCESSES, small_inputs.IN_PROCESS_BELOW_BYTES - 1)
    assert small == ["--runner=DirectRunner", "--sdk_container_image=none", "--direct_running_mode=in_memory",
                     "--direct_num_workers=1"]
    assert small_inputs.beam_args_for(PROCESSES, small_inputs.IN_PROCESS_BELOW_BYTES) == PROCESSES


def test_a_worker_count_or_runner_asked_for_is_left_as_configured():
    two = [a.replace("=0", "=2") for a in PROCESSES]
    dask = ["--runner=pipeline.dask_runner.DaskRunner", "--dask_client_address=tcp://127.0.0.1:1"]
    for args in (two, dask, [a.replace("DirectRunner", "FlinkRunner") for a in PROCESSES]):
        assert small_inputs.beam_args_for(args, 0) == args


def test_split_bytes_counts_the_named_splits_files(tmp_path: Path):
    for split, size in (("train", 300), ("eval", 20), ("retired", 5)):
        (tmp_path / "a" / f"Split-{split}").mkdir(parents=True)
        (tmp_path / "a" / f"Split-{split}" / "data.gz").write_bytes(b"x" * size)
    assert small_inputs.split_bytes([str(tmp_path / "a"), str(tmp_path / "missing")], ["train", "eval"]) == 320
