"""Compile the genre pipeline for Kubeflow Pipelines v2 (KubeflowV2DagRunner).

    python -m kubeflow.runner --image REGISTRY/genre-pipeline:TAG \\
        --pipeline-root gs://BUCKET/genre-pipeline --data-root gs://BUCKET/gtzan \\
        --mlflow-uri http://mlflow.mlflow.svc.cluster.local:5000 --output genre-pipeline.json

The local runner's create_pipeline(), compiled: .json is the PipelineJob (Vertex AI Pipelines submits it,
kubeflow.schedule reads it), .yaml the bare PipelineSpec (KFP UI upload). Every path in it is remote and MLMD is
the cluster's. Step by step: kubeflow/README.md.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is imported anywhere
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import sys  # noqa: E402
from typing import Any, Optional  # noqa: E402

from config.settings import PROJECT_ROOT, PipelineConfig  # noqa: E402
from kubeflow import cluster, resources as resources_lib, spec as spec_lib, worker_pools  # noqa: E402
from pipeline.flags import add_cli_arguments, config_from_args  # noqa: E402

DEFAULT_OUTPUT = str(PROJECT_ROOT / "outputs" / "kubeflow" / "genre-pipeline.json")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kubeflow.runner", description=__doc__,
                                     epilog=cluster.presets_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cli_arguments(parser)
    g = parser.add_argument_group("kubeflow")
    g.add_argument("--image",
                   help="pipeline image for every step, pinned by tag or digest (REGISTRY/genre-pipeline:TAG)")
    g.add_argument("--gpu-image",
                   help="image of the steps given an accelerator by --resources, pinned by tag or digest "
                        "(kubeflow/Dockerfile.gpu: REGISTRY/genre-pipeline-gpu:TAG)")
    g.add_argument("--resources", action="append", default=[], metavar="STEP=cpu:N,memory:GB[,accelerator:T,count:N]",
                   help="limits of one step's container, repeatable, e.g. Trainer=cpu:8,memory:32,"
                        "accelerator:NVIDIA_TESLA_T4,count:1 (a step with an accelerator runs --gpu-image; "
                        "several GPUs: add --strategy mirrored; docs/distributed.md)")
    g.add_argument("--trainer-workers", type=int, metavar="N",
                   help="train on N machines as a Vertex AI custom job (a chief and N-1 workers, --strategy "
                        "multi-worker); each replica is a --trainer-machine-type machine with the accelerator of "
                        "--resources Trainer=accelerator:T,count:N if given (docs/distributed.md)")
    g.add_argument("--trainer-machine-type", metavar="TYPE",
                   help=f"machine type of each --trainer-workers replica (default {worker_pools.DEFAULT_MACHINE_TYPE}"
                        "; NVIDIA_L4 needs g2-*, NVIDIA_TESLA_A100 a2-highgpu-*)")
    g.add_argument("--vertex-region", metavar="REGION",
                   help="region of the Trainer's Vertex AI custom job (--trainer-workers), e.g. europe-west4")
    g.add_argument("--vertex-project", metavar="PROJECT",
                   help="Google Cloud project of the Trainer's Vertex AI custom job (--trainer-workers)")
    g.add_argument("--output", default=DEFAULT_OUTPUT,
                   help=".json: PipelineJob (Vertex, kubeflow.schedule); .yaml: bare PipelineSpec "
                        "(default: %(default)s)")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.image:
        raise SystemExit("error: --image is required: the image every step runs, pinned by tag or digest. Build "
                         "and push it with `docker build -f kubeflow/Dockerfile -t REGISTRY/genre-pipeline:TAG . && "
                         "docker push REGISTRY/genre-pipeline:TAG` (kubeflow/README.md), then pass "
                         "--image REGISTRY/genre-pipeline:TAG.")
    if args.output_dir != parser.get_default("output_dir"):
        parser.error("--output-dir is a local folder; on Kubeflow everything goes under --pipeline-root "
                     "(pushed models: --serving-dir, default <pipeline-root>/serving/genre).")
    for flag, image in (("--image", args.image), ("--gpu-image", args.gpu_image)):
        if image and ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
            parser.error(f"{flag} {image} has no tag or digest; pin it (REGISTRY/genre-pipeline:TAG) so "
                         "every run of the schedule uses the image it was compiled for.")
    try:
        args.step_resources = resources_lib.parse_all(args.resources)
        accelerated = resources_lib.accelerated_steps(args.step_resources)
        if accelerated and not args.gpu_image:
            raise ValueError(f"--resources gives {', '.join(accelerated)} an accelerator, which the CPU image cannot "
                             "use: build kubeflow/Dockerfile.gpu and pass it as --gpu-image "
                             "REGISTRY/genre-pipeline-gpu:TAG.")
        args.worker_pools = worker_pools.from_flags(
            args.trainer_workers, args.trainer_machine_type, args.vertex_region, args.vertex_project,
            args.step_resources.get(worker_pools.TRAINER), args.image, args.gpu_image)
        if args.worker_pools:
            args.strategy = worker_pools.training_strategy(args.strategy)
            # The steps' own container limits: the Trainer's accelerator is the replicas', not the step's.
            args.step_resources.pop(worker_pools.TRAINER, None)
    except ValueError as err:
        parser.error(str(err))
    return args


def kubeflow_config(args: argparse.Namespace) -> cluster.ClusterConfig:
    """The shared flags' config with cluster paths and checked, completed Beam args."""
    try:
        config = cluster.cluster_config(
            config_from_args(args, on_this_machine=False), pipeline_root=args.pipeline_root, data_root=args.data_root,
            serving_dir=args.serving_dir, mlflow_uri=args.mlflow_uri)
        beam_args, notes = cluster.complete_beam_args(config.beam_args, args.image)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    for note in notes:
        print(f"[beam] {note}", file=sys.stderr)
    return dataclasses.replace(config, beam_args=beam_args)


def compile_pipeline(config: PipelineConfig, image: str,
                     step_resources: Optional[dict[str, resources_lib.StepResources]] = None,
                     gpu_image: Optional[str] = None,
                     pools: Optional[worker_pools.WorkerPools] = None) -> dict[str, Any]:
    """The PipelineJob dict for ``config``, fixed up and checked for local paths; accelerated steps run
    ``gpu_image``, and with ``pools`` the Trainer trains as a Vertex AI custom job."""
    from tfx import v1 as tfx
    from pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(config, config.paths.data_root or "", metadata_connection_config=None)
    step_resources = step_resources or {}
    try:
        resources_lib.apply(pipeline, step_resources)
        if pools:
            worker_pools.apply(pipeline, pools)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image))
    job = spec_lib.finalize(runner.run(pipeline, write_out=False), config.pipeline_root)
    resources_lib.use_image(job["pipelineSpec"], resources_lib.accelerated_steps(step_resources), gpu_image)
    leaks = spec_lib.local_path_leaks(job)
    if leaks:
        raise SystemExit(f"error: the compiled spec names paths of this machine, which no pod can read: "
                         f"{', '.join(leaks)}. Pass remote URIs for them.")
    return job


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    config = kubeflow_config(args)
    job = compile_pipeline(config, args.image, args.step_resources, args.gpu_image, args.worker_pools)
    spec_lib.write(job, args.output)
    spec = job["pipelineSpec"]
    print(f"[kubeflow] wrote {args.output}: {len(spec['root']['dag']['tasks'])} tasks, image {args.image}, "
          f"pipeline root {config.pipeline_root}")
    pools = args.worker_pools
    if pools:
        print(f"[kubeflow] Trainer: a Vertex AI custom job in {pools.project}/{pools.region} on {pools.workers} "
              f"{pools.machine_type} machines (chief + {pools.workers - 1}), image {pools.image}, "
              f"--strategy {config.train.strategy}")
    unsupported = spec_lib.unsupported_on_open_source_kfp(spec)
    if unsupported:
        print(f"[kubeflow] note: {', '.join(unsupported)} are resolver executors (the latest-blessed-model "
              "baseline). Vertex AI Pipelines runs them; the open-source KFP v2 backend refuses them "
              "('resolver executors not implemented'): compile with --no-baseline for it. See kubeflow/README.md.",
              file=sys.stderr)
    return job


if __name__ == "__main__":
    main(sys.argv[1:])
