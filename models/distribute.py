"""Which tf.distribute strategy the Trainer trains under (:class:`Plan`), and what it means for the input and the
export: each worker reads only its own shards, and only the chief writes the export, MLflow and the run record."""
from __future__ import annotations

import dataclasses
import json
import os
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # TensorFlow is imported where a strategy is made: the flags import this module's names
    import tensorflow as tf

STRATEGIES = ("one", "mirrored", "multi-worker", "tpu", "auto")
POLICIES = {"none": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
PRECISIONS = tuple(POLICIES)
# Where a TPU is asked for without naming one: TPU_NAME names a TPU node; a TPU VM has its chips locally.
TPU_ENV = "TPU_NAME"
TPU_VM_DEVICE = "/dev/accel0"


@dataclasses.dataclass(frozen=True)
class Cluster:
    """This task's place in ``TF_CONFIG``: its worker index among ``workers`` (the chief counts as worker 0)."""

    workers: int = 1
    index: int = 0
    is_chief: bool = True


def cluster_from_tf_config(tf_config: Optional[str] = None) -> Cluster:
    """This task in ``TF_CONFIG`` (the environment's unless given); one worker when it is unset. The chief is the
    ``chief`` task if any (Vertex AI), else worker 0 (TF's convention); workers follow in index order."""
    text = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    if not text.strip():
        return Cluster()
    try:
        parsed = json.loads(text)
        cluster, task = parsed.get("cluster", {}), parsed.get("task", {})
        kind, index = task.get("type", "worker"), int(task.get("index", 0))
    except (ValueError, AttributeError, TypeError) as err:
        raise ValueError(f"TF_CONFIG is not valid JSON with a cluster and a task ({err}); set it as "
                         'TF_CONFIG=\'{"cluster": {"worker": ["host1:port", "host2:port"]}, '
                         '"task": {"type": "worker", "index": 0}}\' (docs/distributed.md).') from None
    chiefs, workers = len(cluster.get("chief", [])), len(cluster.get("worker", []))
    if kind == "chief":
        return Cluster(chiefs + workers, 0, True)
    if kind != "worker":  # an evaluator or a parameter server trains nothing here
        raise ValueError(f"TF_CONFIG names this task {kind!r}; MultiWorkerMirroredStrategy runs chief and worker "
                         "tasks only.")
    return Cluster(chiefs + workers, chiefs + index, chiefs == 0 and index == 0)


@dataclasses.dataclass(frozen=True)
class Plan:
    """The chosen strategy and what follows from it for this process."""

    name: str  # one, mirrored, multi-worker, tpu: what "auto" resolved to
    strategy: tf.distribute.Strategy
    cluster: Cluster
    static_shapes: bool  # training batches of exactly the global batch size (TPU)
    devices: tuple[str, ...]

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    def per_replica_batch(self, global_batch: int) -> int:
        """The examples each replica takes of a global batch (the last replica fewer when it does not divide)."""
        if global_batch < self.replicas:
            raise ValueError(f"--batch-size {global_batch} is the global batch, split over {self.replicas} replicas "
                             f"({self.name}): give at least one example per replica, --batch-size >= {self.replicas}.")
        return -(-global_batch // self.replicas)

    def describe(self, global_batch: int) -> str:
        """One line for the Trainer's output."""
        where = ", ".join(self.devices) if self.devices else "default device"
        workers = (f"; worker {self.cluster.index} of {self.cluster.workers}"
                   f"{' (chief)' if self.cluster.is_chief else ''}" if self.cluster.workers > 1 else "")
        return (f"strategy {self.name}: {self.replicas} replica(s) on {where}{workers}; global batch "
                f"{global_batch} = {self.per_replica_batch(global_batch)} per replica x {self.replicas}"
                f"{'; static batch shapes' if self.static_shapes else ''}")


def _devices(kind: str) -> list[str]:
    import tensorflow as tf
    return [d.name for d in tf.config.list_logical_devices(kind)]


def resolve_name(name: str, cluster: Cluster) -> str:
    """``auto`` -> multi-worker for 2+ workers, tpu when requested and found, mirrored with 2+ GPUs, else one."""
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")
    if name != "auto":
        return name
    if cluster.workers > 1:
        return "multi-worker"
    if os.environ.get(TPU_ENV) or os.path.exists(TPU_VM_DEVICE):  # a TPU named or held: only then a resolver
        import tensorflow as tf
        try:
            _tpu_resolver()
            return "tpu"
        except (ValueError, RuntimeError, tf.errors.OpError):
            pass
    return "mirrored" if len(_devices("GPU")) >= 2 else "one"


def _tpu_resolver():
    import tensorflow as tf
    return tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get(TPU_ENV) or "local")


def make_plan(name: str) -> Plan:
    """The strategy ``name`` asks for, created once per process before any model (multi-worker before TensorFlow
    runs any op); ``mirrored`` uses every GPU, else every logical CPU."""
    import tensorflow as tf
    cluster = cluster_from_tf_config()
    resolved = resolve_name(name, cluster)
    if resolved == "multi-worker":
        # Collectives over the network: each worker's devices plus the others'. The strategy reads TF_CONFIG.
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        devices = tuple(strategy.extended.worker_devices)
    elif resolved == "mirrored":
        devices = tuple(_devices("GPU") or _devices("CPU"))
        strategy = tf.distribute.MirroredStrategy(devices=list(devices))
    elif resolved == "tpu":
        try:
            resolver = _tpu_resolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as err:
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise ValueError(f"--strategy tpu: no TPU found ({reason}). Run on a TPU VM, or set {TPU_ENV} to "
                             "the TPU's name (docs/distributed.md), or choose another --strategy.") from None
        strategy = tf.distribute.TPUStrategy(resolver)
        devices = tuple(strategy.extended.worker_devices)
    else:
        strategy, devices = tf.distribute.get_strategy(), ()
    if resolved != "multi-worker":
        cluster = Cluster()
    return Plan(resolved, strategy, cluster, static_shapes=needs_static_shapes(strategy), devices=devices)


def needs_static_shapes(strategy: Optional["tf.distribute.Strategy"] = None) -> bool:
    """Whether training batches must all have the global batch's shape: on a TPU (XLA compiles one shape)."""
    import tensorflow as tf
    strategy = strategy or tf.distribute.get_strategy()
    return isinstance(strategy, (tf.distribute.TPUStrategy, tf.distribute.experimental.TPUStrategy))


def precision_problem(precision: str) -> Optional[str]:
    """None when this process's devices train convolutions in ``precision``, else the kernel's complaint: a small
    convolution and its gradient tell before Keras' first step fails deep in a kernel (a CPU without AVX-512 BF16)."""
    if precision == "none":
        return None
    import tensorflow as tf
    dtype = tf.bfloat16 if precision == "bfloat16" else tf.float16
    try:
        kernel = tf.Variable(tf.ones([3, 3, 2, 4], dtype))
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(tf.nn.conv2d(tf.ones([1, 8, 8, 2], dtype), kernel, 1, "SAME"))
        tape.gradient(total, kernel)
    except tf.errors.OpError as err:
        return str(err).strip().splitlines()[0][:300]
    return None


def require_precision(precision: str) -> None:
    """A UserError naming the fix when this machine's devices cannot train in ``precision``."""
    problem = precision_problem(precision)
    if problem:
        from config.errors import UserError
        raise UserError(f"This machine cannot train in {precision}: a {precision} convolution fails on its devices "
                        f"({problem}). On a CPU, oneDNN needs AVX-512 BF16/FP16 or AMX for it",
                        where="Trainer, --mixed-precision",
                        fix="train without --mixed-precision here (float32), or on a GPU or TPU, or a CPU with "
                            "AMX or AVX-512 BF16 (and no lower ONEDNN_MAX_CPU_ISA cap).")


def set_precision(precision: str) -> None:
    """Keras' global dtype policy for ``precision`` (``none``: float32); set before a model is built."""
    if precision not in POLICIES:
        raise ValueError(f"Unknown mixed precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    import tf_keras as keras
    keras.mixed_precision.set_global_policy(POLICIES[precision])
