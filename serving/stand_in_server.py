"""Stand-in for TF Serving: a TEST DOUBLE of its PredictionService and ModelService gRPC API; never deploy it.

TF Serving cannot be installed on the project's machines, so tests, benchmarks and ``make serve`` use this.
It serves the newest complete version under ``<base>/<version>/``, re-scanned per request and loaded on
first use; bad inputs get INVALID_ARGUMENT, other failures INTERNAL, and the server lives on.

Usage: ``python -m serving.stand_in_server --model-base DIR --model-name genre --port 8500
[--max-message-bytes N] [--ssl_config_file FILE]``
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import functools
import logging
import math
import os
import signal
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import grpc
import tensorflow as tf
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from tensorflow_serving.apis import (get_model_status_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

from config.settings import ServingConfig
from serving.client import SIGNATURE, readable_error
from serving.layout import version_folders

LOG = logging.getLogger("serving.stand_in_server")
# A clip of the default serving cap as float32 at 48 kHz, plus room for the rest of the request.
DEFAULT_MAX_MESSAGE_BYTES = int(ServingConfig().max_clip_seconds * 48000 * 4) + 2**20


class RpcFailure(Exception):
    """An answer other than OK, with the status code the client will see."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _invalid(message: str) -> RpcFailure:
    return RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, message)


@dataclass
class _Version:
    number: int
    path: str
    model: Any = None  # the loaded SavedModel, once loaded
    error: str = ""  # load failure, reported by GetModelStatus


class ModelRepository:
    """The versions of one model under ``<base>/<version>/``, loaded on first use."""

    def __init__(self, base: str, name: str):
        self.base, self.name = os.path.abspath(base), name
        self._versions: dict[int, _Version] = {}
        self._lock = threading.Lock()

    def scan(self) -> list[int]:
        """Re-read the base directory; return the version numbers on disk, ascending."""
        found = version_folders(self.base)
        with self._lock:  # a version removed from disk is no longer served
            self._versions = {n: self._versions.get(n) or _Version(n, path) for n, path in found.items()}
        return sorted(found)

    def get(self, version: Optional[int]) -> _Version:
        """The loaded version asked for (None: the newest); NOT_FOUND if it is not on disk."""
        numbers = self.scan()
        if not numbers:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: model '{self.name}' has no "
                             f"versions under {self.base} (expected <base>/<version>/saved_model.pb and variables/)")
        number = numbers[-1] if version is None else version
        if number not in numbers:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({self.name}, "
                             f"{number}); versions on disk: {numbers}")
        return self._load(number)

    def _load(self, number: int) -> _Version:
        entry = self._versions.get(number)
        if entry is not None and entry.model is not None:
            return entry  # loaded: no lock, so requests never wait for another version's load
        with self._lock:  # one load at a time
            entry = self._versions.get(number)
            if entry is None:  # removed from disk since the scan
                raise RpcFailure(grpc.StatusCode.NOT_FOUND, f"{self.name} version {number} is gone from {self.base}")
            if entry.model is None:
                LOG.info("loading %s version %d from %s", self.name, number, entry.path)
                try:
                    entry.model = tf.saved_model.load(entry.path)
                    entry.error = ""
                except Exception as err:  # a broken version must not take the server down
                    entry.error = f"{type(err).__name__}: {err}"
                    raise RpcFailure(grpc.StatusCode.INTERNAL,
                                     f"loading {self.name} version {number} failed: {entry.error}") from err
            return entry

    def status(self) -> list[_Version]:
        """Every version on disk, each loaded (or with its load error)."""
        numbers = self.scan()
        for number in numbers:
            with contextlib.suppress(RpcFailure):  # a failed load is reported with its error
                self._load(number)
        return [v for v in map(self._versions.get, numbers) if v is not None]


def _inputs(request: predict_pb2.PredictRequest, fn, max_bytes: int) -> dict[str, tf.Tensor]:
    """Check the request's inputs against the signature (declared sizes first); convert them to tensors."""
    specs: dict[str, tf.TensorSpec] = fn.structured_input_signature[1]
    given, expected = set(request.inputs), set(specs)
    if given != expected:
        parts = [f"{what} input(s) {sorted(names)}"
                 for what, names in (("missing", expected - given), ("unknown", given - expected)) if names]
        raise _invalid(f"{'; '.join(parts)}: signature inputs are {sorted(expected)}")
    tensors = {}
    for name, spec in specs.items():
        proto = request.inputs[name]
        try:
            given_dtype = tf.dtypes.as_dtype(proto.dtype).name if proto.dtype else "no dtype"
        except TypeError:
            given_dtype = f"unknown dtype {proto.dtype}"
        if given_dtype != spec.dtype.name:
            raise _invalid(f"input '{name}' must be {spec.dtype.name}, got {given_dtype}")
        # TensorFlow's short form (one float_val for a whole tensor) lets a tiny request declare a huge shape.
        dims = [d.size for d in proto.tensor_shape.dim]
        if any(d < 0 for d in dims):
            raise _invalid(f"input '{name}' declares a negative dimension {dims}")
        size = math.prod(dims) * (1 if spec.dtype == tf.string else spec.dtype.size)
        if size > max_bytes:
            raise _invalid(f"input '{name}' declares shape {dims} ({size} bytes), more than this server accepts in "
                           f"one message ({max_bytes} bytes); send a shorter clip")
        try:
            value = tf.make_ndarray(proto)
        except Exception as err:
            raise _invalid(f"input '{name}' is not a valid tensor: {err}") from err
        if not spec.shape.is_compatible_with(value.shape):
            raise _invalid(f"input '{name}' must have shape {spec.shape}, got {list(value.shape)}")
        tensors[name] = tf.constant(value, dtype=spec.dtype)
    return tensors


# glibc keeps what a gRPC thread frees in its arena: trimming after each request stops RSS staying near its
# peak after long clips. None on another C library.
try:
    _MALLOC_TRIM = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
except (OSError, AttributeError):
    _MALLOC_TRIM = None


def _answered(handler):
    """HANDLER(self, request) as a gRPC method: every failure becomes a status code; the server lives on."""
    @functools.wraps(handler)
    def method(self, request, context: grpc.ServicerContext):
        try:
            return handler(self, request)
        except RpcFailure as err:
            code, message = err.code, err.message
        except tf.errors.InvalidArgumentError as err:
            code, message = grpc.StatusCode.INVALID_ARGUMENT, readable_error(err.message)
        except Exception as err:  # noqa: BLE001 - any other failure is the server's, reported as INTERNAL
            LOG.exception("request failed")
            code, message = grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {err}"
        finally:
            if _MALLOC_TRIM is not None:
                _MALLOC_TRIM(0)
        context.abort(code, message)
    return method


class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer, model_service_pb2_grpc.ModelServiceServicer):
    """Predict and GetModelStatus on one repository; failures become status codes (:func:`_answered`)."""

    def __init__(self, repo: ModelRepository, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES):
        self.repo, self.max_message_bytes = repo, max_message_bytes

    @_answered
    def Predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        spec = request.model_spec
        if spec.name != self.repo.name:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: model '{spec.name}' "
                             f"(this server has '{self.repo.name}')")
        if spec.version_label:
            raise _invalid("version labels are not supported by the test double")
        entry = self.repo.get(spec.version.value if spec.HasField("version") else None)
        signature_name = spec.signature_name or SIGNATURE
        signatures = entry.model.signatures
        if signature_name not in signatures:
            raise _invalid(f"Serving signature key \"{signature_name}\" not found; the model has {sorted(signatures)}")
        fn = signatures[signature_name]
        outputs = fn(**_inputs(request, fn, self.max_message_bytes))
        wanted = list(request.output_filter) or list(outputs)
        unknown = set(wanted) - set(outputs)
        if unknown:
            raise _invalid(f"output_filter names unknown output(s) {sorted(unknown)}; outputs are {sorted(outputs)}")
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.repo.name
        response.model_spec.version.value = entry.number
        response.model_spec.signature_name = signature_name
        for key in wanted:
            response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key].numpy()))
        return response

    @_answered
    def GetModelStatus(self, request) -> get_model_status_pb2.GetModelStatusResponse:
        spec = request.model_spec
        versions = self.repo.status() if spec.name == self.repo.name else []
        if versions and spec.HasField("version"):
            versions = [v for v in versions if v.number == spec.version.value]
            if not versions:
                raise RpcFailure(grpc.StatusCode.NOT_FOUND,
                                 f"Could not find version {spec.version.value} of model {spec.name}")
        if not versions:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {spec.name}")
        states = get_model_status_pb2.ModelVersionStatus
        response = get_model_status_pb2.GetModelStatusResponse()
        for v in versions:
            status = response.model_version_status.add(
                version=v.number, state=states.AVAILABLE if v.model is not None else states.END)
            if v.model is None:
                status.status.error_code = 13  # INTERNAL in tensorflow.error.Code
                status.status.error_message = v.error
        return response


def _ssl_config_class():
    """TF Serving's ``SSLConfig`` message, which tensorflow-serving-api does not ship: built from its four fields."""
    fields = [("server_key", 1, "TYPE_STRING"), ("server_cert", 2, "TYPE_STRING"),
              ("custom_ca", 3, "TYPE_STRING"), ("client_verify", 4, "TYPE_BOOL")]
    proto = descriptor_pb2.FileDescriptorProto(name="genre_test_double/ssl_config.proto",
                                               package="tensorflow.serving", syntax="proto3")
    message = proto.message_type.add(name="SSLConfig")
    for name, number, kind in fields:
        message.field.add(name=name, number=number, type=getattr(descriptor_pb2.FieldDescriptorProto, kind),
                          label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.SSLConfig"))


SSLConfig = _ssl_config_class()


def start_server(model_base: str, model_name: str = "genre", port: int = 0, host: str = "127.0.0.1",
                 workers: int = 4, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 ssl_config_text: Optional[str] = None) -> tuple[grpc.Server, int]:
    """Serve on HOST:PORT (0: any free port), the newest version preloaded; return the server and its port."""
    if max_message_bytes <= 0:
        raise ValueError(f"max_message_bytes must be positive, got {max_message_bytes}")
    repo = ModelRepository(model_base, model_name)
    if repo.scan():
        repo.get(None)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=[
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes)])
    servicer = Servicer(repo, max_message_bytes)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(servicer, server)
    address = f"{host}:{port}"
    if ssl_config_text is None:
        bound = server.add_insecure_port(address)
    else:  # TF Serving's meaning of each SSLConfig field
        config = text_format.Parse(ssl_config_text, SSLConfig())
        if not config.server_key or not config.server_cert:
            raise ValueError("the SSL config needs server_key and server_cert (PEM text)")
        bound = server.add_secure_port(address, grpc.ssl_server_credentials(
            [(config.server_key.encode(), config.server_cert.encode())],
            root_certificates=config.custom_ca.encode() or None, require_client_auth=config.client_verify))
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}")
    server.start()
    return server, bound


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m serving.stand_in_server",
        description="TEST DOUBLE of TF Serving's gRPC API (Predict, GetModelStatus) in Python, for tests "
                    "and benchmarks only. Production runs TF Serving's container: see serving/README.md.")
    parser.add_argument("--model-base", required=True, help="TF Serving layout base dir: <base>/<version>/saved_model.pb")
    parser.add_argument("--model-name", default="genre", help="model name clients ask for (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8500, help="gRPC port; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=4, help="request threads (default: %(default)s)")
    parser.add_argument("--max-message-bytes", type=int, default=DEFAULT_MAX_MESSAGE_BYTES,
                        help="largest request or answer; larger ones get RESOURCE_EXHAUSTED (default: %(default)s)")
    parser.add_argument("--ssl_config_file", "--ssl-config-file", dest="ssl_config_file",
                        help="serve TLS: TF Serving's SSLConfig text proto (server_key, server_cert, custom_ca, "
                             "client_verify; PEM text)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not os.path.isdir(args.model_base):
        parser.error(f"--model-base {args.model_base} is not a directory")
    ssl_text = Path(args.ssl_config_file).read_text(encoding="utf-8") if args.ssl_config_file else None
    server, port = start_server(args.model_base, args.model_name, args.port, args.host, args.workers,
                                max_message_bytes=args.max_message_bytes, ssl_config_text=ssl_text)
    # One line on stdout when ready, so scripts (bench/serving.py) can wait for it and read the port.
    print(f"serving {args.model_name} from {os.path.abspath(args.model_base)} on {args.host}:{port}"
          + (" (TLS)" if ssl_text else ""), flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=2).wait()


if __name__ == "__main__":
    main()
