"""Load TF Serving's protos without starting the TensorFlow runtime.

tensorflow-serving-api's generated modules import ``tensorflow.core.framework.tensor_pb2``.
Importing any ``tensorflow.*`` module first runs ``tensorflow/__init__.py``, which loads the
whole TF runtime (about 8 s on the project's 2-core machines), although the ``*_pb2``
modules themselves are plain protobuf. A command-line client needs only the protos, so
:func:`skip_tensorflow_runtime` registers an empty ``tensorflow`` package whose search path
is the real one: ``tensorflow.core.framework.*_pb2`` then import directly, in about 0.1 s.

Call it only in a process that will never use TensorFlow itself (the client's ``__main__``):
afterwards ``import tensorflow`` returns the empty package. Library imports of the client
(tests, the benchmark) never call it.
"""
from __future__ import annotations

import importlib.util
import sys
import types


def _no_runtime(name: str):
    raise AttributeError(
        f"tensorflow.{name} is unavailable: this process loaded TF Serving's protos without the "
        "TensorFlow runtime (serving.protos.skip_tensorflow_runtime).")


def skip_tensorflow_runtime() -> bool:
    """Make ``tensorflow.core.*_pb2`` importable without ``tensorflow/__init__.py``.

    Returns True if the empty package was installed, False if TensorFlow was already
    imported (or is not installed), in which case nothing changes.
    """
    if "tensorflow" in sys.modules:
        return False
    spec = importlib.util.find_spec("tensorflow")  # locates the package without running it
    if spec is None or not spec.submodule_search_locations:
        return False
    package = types.ModuleType("tensorflow", "TensorFlow's proto modules only (no runtime).")
    package.__path__ = list(spec.submodule_search_locations)
    package.__getattr__ = _no_runtime  # PEP 562: a clear error for tf.anything
    sys.modules["tensorflow"] = package
    return True
