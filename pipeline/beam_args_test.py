"""Beam arguments of the tagger: the pipeline's defaults, --runner, --beam-arg and the --dask preset."""
from config.settings import PipelineConfig
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

    from pipeline.flags import add_cli_arguments, config_from_args
    args = add_cli_arguments(argparse.ArgumentParser()).parse_args(["--dask", "127.0.0.1:8786"])
    assert config_from_args(args).beam_args == [
        "--runner=pipeline.dask_runner.DaskRunner", "--dask_client_address=tcp://127.0.0.1:8786"]


def test_the_taggers_in_process_defaults_give_way_to_beam_args_and_the_dask_preset():
    assert runners.beam_args(defaults=runners.IN_PROCESS) == runners.IN_PROCESS
    assert runners.beam_args(extra=["--runner=DirectRunner"], defaults=runners.IN_PROCESS) == ["--runner=DirectRunner"]
    assert runners.is_dask(runners.beam_args(dask="h:1", defaults=runners.IN_PROCESS))


def test_tfx_builds_no_sdist_of_itself_for_the_runners_that_run_here():
    """TFX's own check (real code) leaves for_tfx's args alone: no 52 MB sdist in /tmp per component
    run. The test session's guard in conftest.py would fail this test if TFX still tried to build one."""
    from tfx.utils import dependency_utils
    for args in (PipelineConfig().beam_args, runners.IN_PROCESS, runners.beam_args(dask="127.0.0.1:8786")):
        assert runners.LOCAL_SDK_FLAG in runners.for_tfx(args)
        assert dependency_utils.make_beam_dependency_flags(runners.for_tfx(args)) == runners.for_tfx(args)
    assert runners.for_tfx(runners.for_tfx(runners.IN_PROCESS)) == runners.for_tfx(runners.IN_PROCESS)


def test_remote_runners_and_given_dependencies_keep_tfxs_packaging():
    flink = runners.beam_args(runner="FlinkRunner")
    assert runners.for_tfx(flink) == flink  # remote workers may need the TFX package TFX builds
    with_package = runners.IN_PROCESS + ["--extra_package=/opt/dist/project.tar.gz"]
    assert runners.for_tfx(with_package) == with_package
