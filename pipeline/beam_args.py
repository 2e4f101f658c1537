"""Beam arguments for the pipeline and the tagger: the DirectRunner defaults, ``--runner``, ``--dask``.

``--dask HOST:PORT`` is short for ``--runner=<DASK_RUNNER> --dask_client_address=HOST:PORT``, with the project's
corrected Dask runner; only the tagger's straight chain also runs correctly on Beam's stock one."""
from __future__ import annotations

from typing import Optional, Sequence

from config.settings import PipelineConfig

DASK_RUNNER = "pipeline.dask_runner.DaskRunner"
# The tagger's default, in the launching process: TensorFlow already uses every core, so on one machine worker
# processes only add their start-up (BENCHMARKS.md, batch tagging).
IN_PROCESS = ["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]

# Given no dependency flag, every TFX Beam executor builds a 52 MB sdist of TFX in a temp folder it never deletes,
# for remote workers to install. Runners in this Python environment install nothing, so the pipeline names an SDK
# container for them: the one dependency flag TFX checks that only Docker environments and Dataflow read.
LOCAL_SDK_FLAG = "--sdk_container_image=none-this-python-environment"
# Beam's in-process runners (not Prism, which may start SDK containers).
_DIRECT_RUNNERS = ("DirectRunner", "SwitchingDirectRunner", "BundleBasedDirectRunner", "FnApiRunner")
_DEPENDENCY_FLAGS = ("extra_package", "setup_file", "requirements_file", "worker_harness_container_image",
                     "sdk_container_image")


def dask_args(address: str, runner: str = DASK_RUNNER) -> list[str]:
    """Beam arguments that run a pipeline on the Dask scheduler at ``address`` (HOST:PORT)."""
    address = address if "://" in address else f"tcp://{address}"
    return [f"--runner={runner}", f"--dask_client_address={address}"]


def beam_args(runner: Optional[str] = None, extra: Optional[Sequence[str]] = None,
              dask: Optional[str] = None, defaults: Optional[Sequence[str]] = None) -> list[str]:
    """``defaults`` (the pipeline's if None) unless ``extra`` (``--beam-arg``) is given, as for local_runner.py."""
    args = list(extra) if extra else list(PipelineConfig().beam_args if defaults is None else defaults)
    if runner:
        args = [a for a in args if not a.startswith("--runner")] + [f"--runner={runner}"]
        if "DirectRunner" not in runner:
            args = [a for a in args if not a.startswith("--direct_")]
    if dask:
        args = [a for a in args if not a.startswith(("--runner", "--direct_"))] + dask_args(dask)
    return args


def runner_of(args: Sequence[str]) -> str:
    runners = [a.split("=", 1)[1] for a in args if a.startswith("--runner=")]
    return runners[-1] if runners else "DirectRunner"


def is_dask(args: Sequence[str]) -> bool:
    return "dask" in runner_of(args).lower()


def for_tfx(args: Sequence[str]) -> list[str]:
    """``args`` as TFX's Beam components get them: with :data:`LOCAL_SDK_FLAG` for the runners whose SDK workers use
    this Python environment (no packages staged)."""
    args = list(args)
    local = runner_of(args).rsplit(".", 1)[-1] in _DIRECT_RUNNERS or is_dask(args)
    if not local or any(a.lstrip("-").startswith(_DEPENDENCY_FLAGS) for a in args):
        return args
    return args + [LOCAL_SDK_FLAG]
