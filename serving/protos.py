"""Load TF Serving's protos without starting the TensorFlow runtime.

Importing any ``tensorflow.*`` module runs ``tensorflow/__init__.py`` and loads the whole runtime (seconds),
though the ``*_pb2`` modules are plain protobuf. Call :func:`skip_tensorflow_runtime` only in a process that
never uses TensorFlow itself: afterwards ``import tensorflow`` returns an empty package.
"""
from __future__ import annotations

import importlib.util
import sys
import types


def _no_runtime(name: str):
    raise AttributeError(f"tensorflow.{name} is unavailable: this process loaded TF Serving's protos without the "
                         "TensorFlow runtime (serving.protos.skip_tensorflow_runtime).")


def skip_tensorflow_runtime() -> bool:
    """Make ``tensorflow.core.*_pb2`` importable without ``tensorflow/__init__.py``; False if TF was already in."""
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
