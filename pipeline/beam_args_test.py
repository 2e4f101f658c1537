"""Beam arguments of the tagger: the pipeline's defaults, --runner, --beam-arg and the --dask preset."""
from pipeline.config import PipelineConfig
from pipeline import beam_args as runners


def test_defaults_are_the_pipelines_direct_runner():
    assert runners.beam_args() == PipelineConfig().beam_args
    assert runners.runner_of(runners.beam_args()) == "DirectRunner"


def test_beam_args_replace_the_defaults_as_for_local_runner():
    assert runners.beam_args(extra=["--runner=DirectRunner", "--direct_running_mode=in_memory"]) == [
        "--runner=DirectRunner", "--direct_running_mode=in_memory"]


def test_dask_preset_names_the_fixed_runner_and_the_scheduler():
    args = runners.beam_args(dask="10.0.0.5:8786")
    assert args == ["--runner=pipeline.dask_runner.DaskRunner", "--dask_client_address=tcp://10.0.0.5:8786"]
    assert runners.is_dask(args) and not runners.is_dask(runners.beam_args())


def test_runner_flag_drops_direct_runner_options_for_other_runners():
    args = runners.beam_args(runner="FlinkRunner")
    assert runners.runner_of(args) == "FlinkRunner" and not any(a.startswith("--direct_") for a in args)


def test_the_pipeline_flag_runs_every_beam_step_on_dask():
    import argparse

    from pipeline.config import add_cli_arguments, config_from_args
    args = add_cli_arguments(argparse.ArgumentParser()).parse_args(["--dask", "127.0.0.1:8786"])
    assert config_from_args(args).beam_args == [
        "--runner=pipeline.dask_runner.DaskRunner", "--dask_client_address=tcp://127.0.0.1:8786"]


def test_the_taggers_in_process_defaults_give_way_to_beam_args_and_the_dask_preset():
    assert runners.beam_args(defaults=runners.IN_PROCESS) == runners.IN_PROCESS
    assert runners.beam_args(extra=["--runner=DirectRunner"], defaults=runners.IN_PROCESS) == ["--runner=DirectRunner"]
    assert runners.is_dask(runners.beam_args(dask="h:1", defaults=runners.IN_PROCESS))
