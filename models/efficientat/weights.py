"""mn04_as's pretrained weights: finding the file (explicit path, ``GENRE_EFFICIENTAT_WEIGHTS``, the cache or a
one-time download, each checked against the release's size and sha256), and reading torch's zip format with a
restricted unpickler, so the file runs no code on load and torch is never imported."""
from __future__ import annotations

import collections
import hashlib
import os
import pickle
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from config.errors import UserError

RELEASE_URL = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/mn04_as_mAP_432.pt"
RELEASE_SHA256 = "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c"
RELEASE_SIZE = 4_066_513
FILE_NAME = "mn04_as_mAP_432.pt"
ENV_VAR = "GENRE_EFFICIENTAT_WEIGHTS"
SETTING = "--efficientat-weights"
DOWNLOAD_TIMEOUT_S = 60.0

# torch storage class name -> numpy dtype of its raw bytes (little-endian, as torch writes them).
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"), "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"), "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"), "ByteStorage": np.dtype("u1"), "BoolStorage": np.dtype("?"),
}


def default_cache_dir() -> Path:
    """``~/.cache/genre-pipeline/weights``: beside the venv cache, outside any clone."""
    return Path.home() / ".cache" / "genre-pipeline" / "weights"


# ----- reading torch's zip format ------------------------------------------------------------------
def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_unused: Any) -> np.ndarray:
    """torch._utils._rebuild_tensor_v2 over a numpy storage: a strided view, copied to a contiguous array."""
    if not size:
        return storage[offset].copy()
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride))
    return np.ascontiguousarray(view)


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a torch state_dict, resolving tensors to numpy arrays over the storages under ``prefix``data/."""

    _ALLOWED: dict[tuple[str, str], Any] = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }

    def __init__(self, file: Any, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(file)
        self._archive, self._prefix = archive, prefix
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]  # a torch storage class inside the pickle: only its dtype matters
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a tensor state_dict")

    def persistent_load(self, pid: Any) -> np.ndarray:
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        dtype, key = pid[1], str(pid[2])
        if not isinstance(dtype, np.dtype):
            raise pickle.UnpicklingError(f"unknown storage type {dtype!r}")
        if key not in self._storages:
            self._storages[key] = np.frombuffer(self._archive.read(f"{self._prefix}data/{key}"), dtype=dtype)
        return self._storages[key]


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The tensors of a ``torch.save``'d state_dict as numpy arrays, by name (torch's layouts kept)."""
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"{path} is not a torch zip checkpoint: expected one data.pkl, found {len(pickles)}.")
        with archive.open(pickles[0]) as handle:
            state = _StateDictUnpickler(handle, archive, pickles[0][: -len("data.pkl")]).load()
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state_dict.")
    return {str(name): np.asarray(value) for name, value in state.items()}


# ----- copying into Keras layers -------------------------------------------------------------------
def _keras_values(kind: str, prefix: str, tensors: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """A torch module's tensors in the order and layout of the Keras layer of ``kind``."""
    if kind == "conv":  # (out, in, kh, kw) -> (kh, kw, in, out)
        return [tensors[f"{prefix}.weight"].transpose(2, 3, 1, 0)]
    if kind == "depthwise":  # (channels, 1, kh, kw) -> (kh, kw, channels, 1)
        return [tensors[f"{prefix}.weight"].transpose(2, 3, 0, 1)]
    if kind == "batchnorm":
        return [tensors[f"{prefix}.{name}"] for name in ("weight", "bias", "running_mean", "running_var")]
    return [tensors[f"{prefix}.weight"].T, tensors[f"{prefix}.bias"]]  # "dense": (out, in) -> (in, out)


def assign_state_dict(model: Any, tensors: Mapping[str, np.ndarray]) -> int:
    """Copy ``tensors`` into every layer with ``torch_prefix`` / ``torch_kind`` (network.py); returns how many. A
    missing, misshapen or unused tensor raises, so another architecture cannot load silently."""
    used: set[str] = set()
    for layer in model.layers:
        prefix = getattr(layer, "torch_prefix", None)
        if prefix is None:
            continue
        try:
            values = _keras_values(layer.torch_kind, prefix, tensors)
        except KeyError as missing:
            raise KeyError(f"The state_dict has no {missing.args[0]!r} for layer {layer.name!r}.") from None
        for weight, value in zip(layer.weights, values):
            if tuple(weight.shape) != value.shape:
                raise ValueError(f"{prefix}: state_dict shape {value.shape} != layer {layer.name!r} "
                                 f"weight {weight.name} shape {tuple(weight.shape)}.")
        layer.set_weights([v.astype(np.float32) for v in values])
        used.update(n for n in tensors if n.startswith(prefix + ".") and n[len(prefix) + 1:].count(".") == 0)
    unused = sorted(n for n in tensors if n not in used and not n.endswith(".num_batches_tracked"))
    if unused:
        raise ValueError(f"{len(unused)} tensors of the state_dict fit no layer, e.g. {unused[:3]}.")
    return len(used)


def load_mn04_weights(model: Any, path: str | os.PathLike) -> int:
    """Load the ``.pt`` state_dict at ``path`` into a model from ``build_mn04``; returns the tensors copied."""
    return assign_state_dict(model, read_state_dict(path))


# ----- locating (and once downloading) the file --------------------------------------------------
def _fix_text() -> str:
    return (f"pass the downloaded file with {SETTING} PATH or set {ENV_VAR}=PATH, or let the project "
            f"download it into the cache ({default_cache_dir()}) from {RELEASE_URL} (sha256 {RELEASE_SHA256}, "
            f"{RELEASE_SIZE} bytes).")


def verify(path: Path, source: str) -> Path:
    """``path`` if it is the release file (size, then sha256); a UserError naming ``source`` otherwise."""
    if not path.is_file():
        problem = "does not exist"
    elif (size := path.stat().st_size) != RELEASE_SIZE:
        problem = f"has {size} bytes, not the release's {RELEASE_SIZE}: it is another or a truncated file"
    else:
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        if digest == RELEASE_SHA256:
            return path
        problem = f"has sha256 {digest}, not the release's {RELEASE_SHA256}: it is another or a damaged file"
    raise UserError(f"The EfficientAT mn04_as weights file {path} {problem}", where=source, fix=_fix_text())


def download(url: str, target: Path) -> Path:
    """Fetch ``url`` into ``target`` through a temporary file, kept only if it is the release file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                    shutil.copyfileobj(response, out)
            except OSError as error:
                raise UserError(f"Downloading the EfficientAT mn04_as weights from {url} failed: {error}",
                                where=f"{ENV_VAR} unset, no cached {target}", fix=_fix_text()) from error
        verify(Path(partial), f"downloaded from {url}")
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target


def weights_path(explicit: Optional[str | os.PathLike] = None, *, environ: Optional[Mapping[str, str]] = None,
                 cache_dir: Optional[Path] = None, allow_download: bool = True) -> Path:
    """The verified mn04_as weights file: explicit path, else $GENRE_EFFICIENTAT_WEIGHTS, else the cache, downloaded
    once if absent; the URL and checksum are read at call time, so a test can point them at a local server."""
    environ = os.environ if environ is None else environ
    if explicit:
        return verify(Path(explicit).expanduser(), SETTING)
    if environ.get(ENV_VAR):
        return verify(Path(environ[ENV_VAR]).expanduser(), ENV_VAR)
    cached = (cache_dir or default_cache_dir()) / FILE_NAME
    if cached.is_file():
        return verify(cached, "the weights cache")
    if not allow_download:
        raise UserError(f"The EfficientAT mn04_as weights are not in the cache ({cached}) and downloading is off",
                        where=f"{SETTING} / {ENV_VAR} unset", fix=_fix_text())
    return download(RELEASE_URL, cached)
