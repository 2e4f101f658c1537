"""Shared test set-up: Keras 2 before TensorFlow, and the repository on sys.path."""
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Real GTZAN clips live beside the project, never in it. Tests that need them are
# marked real_data and skip, naming the folder, where it is absent.
SHARED_GTZAN = ROOT.parent / "shared" / "data" / "gtzan"

import csv  # noqa: E402
import subprocess  # noqa: E402

import pytest  # noqa: E402

from config.local_http import free_port, stop_process, wait_until_healthy  # noqa: E402,F401 (free_port: tests import it from here)


# The modules that run whole pipelines or train in processes of their own, longest first (by pytest's --durations
# on CI). pytest-xdist's loadfile hands modules to its workers in collection order (the Makefile passes
# --no-loadscope-reorder): its default order, the modules with most tests first, left these minutes-long modules to
# the end, where one worker ran them while the other had nothing left to take.
LONG_MODULES = (
    "tests/test_model_families_e2e.py",
    "tests/test_distributed_training.py",
    "tests/test_second_command_e2e.py",
    "tests/test_pretrained_families_e2e.py",
    "tests/test_mn04_families_e2e.py",
    "tests/test_pipeline_e2e.py",
    "tests/test_growing_library_e2e.py",
    "tests/test_tuner_e2e.py",
    "tests/test_library_e2e.py",
)


def pytest_collection_modifyitems(config, items):
    """Collect :data:`LONG_MODULES` first, in that order; the rest keep theirs (a stable sort)."""
    rank = {path: i for i, path in enumerate(LONG_MODULES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.fixture(autouse=True)
def _keep_main_module():
    """Undo what a test does to ``sys.modules["__main__"]``: Streamlit's AppTest replaces it with
    app/page.py for good, and every spawn-based child started later in this process (Dask workers,
    Beam's multi_processing workers) would re-run the page's module and hide TensorFlow there."""
    main = sys.modules.get("__main__")
    yield
    if main is not None and sys.modules.get("__main__") is not main:
        sys.modules["__main__"] = main


@pytest.fixture(autouse=True, scope="session")
def _no_tfx_sdist_in_tmp():
    """Fail any test whose TFX Beam executor would build TFX's 52 MB sdist in /tmp and leave it there:
    Beam args reach TFX through ``pipeline.beam_args.for_tfx``, which says the runner needs none."""
    from tfx.utils import dependency_utils

    def refuse() -> str:
        raise AssertionError("TFX got Beam args without pipeline.beam_args.for_tfx and would build (and leave) "
                             "a 52 MB sdist of itself in the temp folder")

    original, dependency_utils.build_ephemeral_package = dependency_utils.build_ephemeral_package, refuse
    yield
    dependency_utils.build_ephemeral_package = original


def shared_manifest() -> list[dict[str, str]]:
    """The rows of the real clips' manifest.csv (path, genre, split, encoding, ...); empty where it is absent.

    Tests choose clips by its ``encoding`` column: ``flac`` clips decode to the original samples bit for bit,
    ``vorbis`` ones (``.ogg``) do not, so a test that needs exact samples takes ``flac`` and the rest take both.
    """
    manifest = SHARED_GTZAN / "manifest.csv"
    if not manifest.is_file():
        return []
    with open(manifest, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def shared_gtzan() -> Path:
    """The real GTZAN clips beside the project; tests using it are marked real_data."""
    if not (SHARED_GTZAN / "audio").is_dir():
        pytest.skip(f"real GTZAN clips not found at {SHARED_GTZAN} (they are never part of the repository)")
    return SHARED_GTZAN


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> str:
    """A real `mlflow server` on 127.0.0.1 with its own SQLite store; yields its URI."""
    root = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    log = open(root / "server.log", "w")
    process = subprocess.Popen(
        [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--default-artifact-root", str(root / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(f"{uri}/health", process, root / "server.log", "mlflow server")
    except RuntimeError:
        process.kill()
        raise
    yield uri
    stop_process(process)
    log.close()
