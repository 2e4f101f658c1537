"""The torch-free .pt reader (on zips written here in torch's layout), the Keras copy, and locating the file."""
import collections
import contextlib
import hashlib
import http.server
import os
import pickle
import sys
import threading
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from config.errors import UserError
from models.efficientat import build_mn04, load_mn04_weights, weights_path
from models.efficientat import weights as w

_STORAGE_NAMES = {np.dtype("float32"): "FloatStorage", np.dtype("int64"): "LongStorage"}


class _Storage:
    def __init__(self, key: str, array: np.ndarray) -> None:
        self.key, self.array = key, np.ascontiguousarray(array).ravel()


class _Tensor:
    """Pickles as torch does: _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple) -> None:
        self.args = (storage, offset, size, stride)

    def __reduce__(self):
        return sys.modules["torch._utils"]._rebuild_tensor_v2, (*self.args, False, collections.OrderedDict())


@contextlib.contextmanager
def _fake_torch():
    """Stand-in modules so pickle writes the same GLOBALs torch writes (torch itself is not installed)."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    for name in _STORAGE_NAMES.values():
        setattr(torch, name, type(name, (), {"__module__": "torch", "__qualname__": name}))

    def _rebuild_tensor_v2(*args):  # never called: only its name is pickled
        raise AssertionError

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2, torch._utils = _rebuild_tensor_v2, utils
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        yield torch
    finally:
        for key, module in saved.items():
            if module is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = module


def write_torch_zip(path: Path, state: dict) -> Path:
    """A torch.save-style zip: archive/data.pkl (protocol 2, persistent ids) + archive/data/<key> storages.

    ``state`` maps names to numpy arrays (each its own storage) or to ready ``_Tensor`` views.
    """
    tensors, storages = collections.OrderedDict(), {}
    for name, value in state.items():
        if isinstance(value, np.ndarray):
            storage = _Storage(str(len(storages) + 1000), value)
            value = _Tensor(storage, 0, value.shape, tuple(s // value.itemsize for s in value.strides)
                            if value.flags.c_contiguous else None)
            if value.args[3] is None:
                raise ValueError("pass contiguous arrays or explicit views")
        tensors[name] = value
        storages[value.args[0].key] = value.args[0]
    with _fake_torch() as torch:
        class Pickler(pickle.Pickler):
            def persistent_id(self, obj):
                if isinstance(obj, _Storage):
                    kind = getattr(torch, _STORAGE_NAMES[obj.array.dtype])
                    return ("storage", kind, obj.key, "cpu", obj.array.size)
                return None

        with zipfile.ZipFile(path, "w") as archive:
            with archive.open("archive/data.pkl", "w") as handle:
                Pickler(handle, protocol=2).dump(tensors)
            for key, storage in storages.items():
                archive.writestr(f"archive/data/{key}", storage.array.astype(storage.array.dtype.newbyteorder("<")).tobytes())
            archive.writestr("archive/version", "3\n")
    return path


# ----- reading ---------------------------------------------------------------------------------

def test_reader_rebuilds_contiguous_strided_offset_and_scalar_tensors(tmp_path):
    kernel = np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3)
    shared = _Storage("7", np.arange(12, dtype=np.float32))
    state = {
        "conv.weight": kernel,
        "transposed": _Tensor(shared, 0, (4, 3), (1, 4)),  # a (3, 4) matrix's .t()
        "tail": _Tensor(shared, 8, (2, 2), (2, 1)),  # same storage, offset 8
        "bn.num_batches_tracked": np.array(5, dtype=np.int64),
    }
    tensors = w.read_state_dict(write_torch_zip(tmp_path / "m.pt", state))
    assert list(tensors) == list(state)
    np.testing.assert_array_equal(tensors["conv.weight"], kernel)
    np.testing.assert_array_equal(tensors["transposed"], np.arange(12, dtype=np.float32).reshape(3, 4).T)
    np.testing.assert_array_equal(tensors["tail"], [[8, 9], [10, 11]])
    assert tensors["bn.num_batches_tracked"] == 5 and tensors["bn.num_batches_tracked"].dtype == np.int64


def test_reader_refuses_a_pickle_that_calls_code(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"x": Payload()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        w.read_state_dict(path)
    assert not marker.exists()


def test_reader_refuses_a_zip_without_data_pkl(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="not a torch zip checkpoint"):
        w.read_state_dict(path)


# ----- copying into Keras ----------------------------------------------------------------------

def _torch_layout(model) -> dict:
    """The model's weights as a torch state_dict (the inverse of weights.py's layout conversion)."""
    state = {}
    for layer in model.layers:
        prefix, kind = getattr(layer, "torch_prefix", None), getattr(layer, "torch_kind", None)
        values = layer.get_weights()
        if kind == "conv":
            state[f"{prefix}.weight"] = values[0].transpose(3, 2, 0, 1)
        elif kind == "depthwise":
            state[f"{prefix}.weight"] = values[0].transpose(2, 3, 0, 1)
        elif kind == "dense":
            state[f"{prefix}.weight"], state[f"{prefix}.bias"] = values[0].T, values[1]
        elif kind == "batchnorm":
            for name, value in zip(("weight", "bias", "running_mean", "running_var"), values):
                state[f"{prefix}.{name}"] = value
            state[f"{prefix}.num_batches_tracked"] = np.array(100, dtype=np.int64)
    return {k: np.ascontiguousarray(v) for k, v in state.items()}


@pytest.fixture(scope="module")
def randomised_model():
    model = build_mn04(waveform_input=False)
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.uniform(0.5, 1.5, v.shape).astype(np.float32) if "variance" in v.name
                               else rng.normal(0, 0.3, v.shape).astype(np.float32) for v in layer.weights])
    return model


def test_state_dict_in_torch_layout_loads_into_an_identical_model(tmp_path, randomised_model):
    state = _torch_layout(randomised_model)
    assert len(state) == 312 and state["features.1.block.0.0.weight"].shape == (8, 1, 3, 3)
    path = write_torch_zip(tmp_path / "mn04.pt", state)
    fresh = build_mn04(waveform_input=False)
    assert load_mn04_weights(fresh, path) == 312
    mel = np.random.default_rng(4).normal(size=(2, 128, 64)).astype(np.float32)
    expected, got = randomised_model(mel, training=False), fresh(mel, training=False)
    for name in ("features", "hidden", "logits"):
        np.testing.assert_allclose(got[name].numpy(), expected[name].numpy(), rtol=1e-5, atol=1e-5)


def test_a_state_dict_of_another_shape_or_with_extra_tensors_is_refused(randomised_model):
    state = _torch_layout(randomised_model)
    model = build_mn04(waveform_input=False)
    with pytest.raises(ValueError, match="fit no layer"):
        w.assign_state_dict(model, {**state, "extra.weight": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="classifier.5"):
        w.assign_state_dict(model, {**state, "classifier.5.bias": np.zeros(10, np.float32)})
    del state["features.0.1.running_var"]
    with pytest.raises(KeyError, match="features.0.1.running_var"):
        w.assign_state_dict(model, state)


# ----- locating the file -----------------------------------------------------------------------

PAYLOAD = b"not really mn04 weights, but pinned like them\n" * 10


@pytest.fixture
def pinned(monkeypatch, tmp_path):
    """Pin the release constants to PAYLOAD; an empty environment and a cache folder of the test's own."""
    monkeypatch.setattr(w, "RELEASE_SIZE", len(PAYLOAD))
    monkeypatch.setattr(w, "RELEASE_SHA256", hashlib.sha256(PAYLOAD).hexdigest())
    monkeypatch.setattr(w, "RELEASE_URL", "http://127.0.0.1:9/unreachable")
    good = tmp_path / "good.pt"
    good.write_bytes(PAYLOAD)
    return types.SimpleNamespace(good=good, cache=tmp_path / "cache", env={})


def _assert_one_paragraph_with_fix(error: UserError, *names: str) -> None:
    text = str(error)
    for name in (*names, w.SETTING, w.ENV_VAR, "Fix:"):
        assert name in text
    assert text.count("\n") == 1  # problem, then the fix


def test_explicit_path_then_env_variable(pinned, tmp_path):
    assert weights_path(pinned.good, environ=pinned.env, cache_dir=pinned.cache) == pinned.good
    assert weights_path(environ={w.ENV_VAR: str(pinned.good)}, cache_dir=pinned.cache) == pinned.good
    assert not pinned.cache.exists()


def test_missing_file_names_where_it_was_looked_for(pinned, tmp_path):
    missing = tmp_path / "nowhere.pt"
    with pytest.raises(UserError, match="does not exist") as error:
        weights_path(missing, environ=pinned.env, cache_dir=pinned.cache)
    _assert_one_paragraph_with_fix(error.value, str(missing), w.RELEASE_URL)
    with pytest.raises(UserError, match="does not exist") as error:
        weights_path(environ={w.ENV_VAR: str(missing)}, cache_dir=pinned.cache)
    assert f"({w.ENV_VAR})" in str(error.value)


def test_wrong_size_and_wrong_sha256_are_refused(pinned, tmp_path):
    short = tmp_path / "short.pt"
    short.write_bytes(PAYLOAD[:-1])
    with pytest.raises(UserError, match="bytes") as error:
        weights_path(short, environ=pinned.env, cache_dir=pinned.cache)
    _assert_one_paragraph_with_fix(error.value, str(short))
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(PAYLOAD[:-1] + b"?")
    with pytest.raises(UserError, match="sha256") as error:
        weights_path(environ={w.ENV_VAR: str(damaged)}, cache_dir=pinned.cache)
    _assert_one_paragraph_with_fix(error.value, str(damaged), w.RELEASE_SHA256)


@contextlib.contextmanager
def _serve(folder: Path):
    """A real HTTP server on 127.0.0.1 (a free port the OS picks) serving ``folder``; yields (base URL, request log)."""
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_absent_cache_downloads_once_then_reuses(pinned, monkeypatch, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / w.FILE_NAME).write_bytes(PAYLOAD)
    with _serve(site) as (base, requests):
        monkeypatch.setattr(w, "RELEASE_URL", f"{base}/{w.FILE_NAME}")
        path = weights_path(environ=pinned.env, cache_dir=pinned.cache)
        assert path == pinned.cache / w.FILE_NAME and path.read_bytes() == PAYLOAD
        assert weights_path(environ=pinned.env, cache_dir=pinned.cache) == path
    assert requests == [f"/{w.FILE_NAME}"]
    assert sorted(p.name for p in pinned.cache.iterdir()) == [w.FILE_NAME]


def test_a_wrong_download_leaves_nothing_in_the_cache(pinned, monkeypatch, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / w.FILE_NAME).write_bytes(PAYLOAD.upper())
    with _serve(site) as (base, _):
        monkeypatch.setattr(w, "RELEASE_URL", f"{base}/{w.FILE_NAME}")
        with pytest.raises(UserError, match="sha256") as error:
            weights_path(environ=pinned.env, cache_dir=pinned.cache)
        _assert_one_paragraph_with_fix(error.value, "downloaded from")
        monkeypatch.setattr(w, "RELEASE_URL", f"{base}/absent.pt")
        with pytest.raises(UserError, match="Downloading .* failed") as error:
            weights_path(environ=pinned.env, cache_dir=pinned.cache)
        _assert_one_paragraph_with_fix(error.value, f"{base}/absent.pt")
    assert list(pinned.cache.iterdir()) == []


def test_file_url_download_and_no_download_mode(pinned, monkeypatch):
    with pytest.raises(UserError, match="downloading is off") as error:
        weights_path(environ=pinned.env, cache_dir=pinned.cache, allow_download=False)
    _assert_one_paragraph_with_fix(error.value, str(pinned.cache / w.FILE_NAME))
    monkeypatch.setattr(w, "RELEASE_URL", pinned.good.as_uri())
    assert weights_path(environ=pinned.env, cache_dir=pinned.cache).read_bytes() == PAYLOAD


@pytest.mark.real_data
def test_the_shared_release_file_passes_its_checks(mn04_weights_file):
    assert weights_path(mn04_weights_file, environ={}) == mn04_weights_file
    assert len(w.read_state_dict(mn04_weights_file)) == 312
