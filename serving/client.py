"""gRPC client for the genre model behind TF Serving (or the project's test double).

    python -m serving.client predict song.wav --host localhost:8500 --model genre [--version N]
                                              [--timeout 10] [--retries 3] [--json]
    python -m serving.client status --host localhost:8500 --model genre
    ... --tls [--ca-cert ca.pem] [--client-cert client.pem --client-key client.key] [--tls-server-name NAME]

Requests send the mono float32 waveform at the file's own rate (the model resamples in-graph; docs/contracts.md).
Only UNAVAILABLE and DEADLINE_EXCEEDED are retried, with backoff: an invalid input stays invalid.
"""
from __future__ import annotations

if __name__ == "__main__":  # the CLI needs protos only: skip the TF runtime (0.3 s start, not ~8 s)
    from serving.protos import skip_tensorflow_runtime

    skip_tensorflow_runtime()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any, Optional, Sequence  # noqa: E402

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from tensorflow_serving.apis import (get_model_status_pb2, model_service_pb2_grpc, predict_pb2,  # noqa: E402
                                     prediction_service_pb2_grpc)

from config.settings import AUDIO_EXTENSIONS, GENRES, AudioConfig, ServingConfig  # noqa: E402
from serving.audio_file import AudioFileError, read_audio  # noqa: E402
from serving.tensors import to_ndarray, to_tensor_proto  # noqa: E402

SIGNATURE = "serving_default"
DEFAULT_HOST = "localhost:8500"
DEFAULT_MODEL = "genre"
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# A 30-s clip at 44.1 kHz is 5.3 MB of float32; gRPC's default 4 MB receive limit is too small.
MAX_MESSAGE_BYTES = 2**31 - 1
COMPOSE_HINT = "docker compose -f serving/docker-compose.yml up -d"
# Files longer than the model accepts are refused from their header, before decoding them whole.
DEFAULT_MAX_SECONDS = ServingConfig().max_clip_seconds
EAGER_PREAMBLE = ("Graph execution error:", "Detected at node", "<stack traces unavailable>")


class ServingClientError(Exception):
    """A failure the CLI reports as one clear line (no traceback)."""


class ServerUnavailableError(ServingClientError):
    """The server could not be reached or did not answer in time, even after retries."""


class ModelInputError(ServingClientError):
    """INVALID_ARGUMENT: the model rejected the input; the message is the server's."""


class ServingRpcError(ServingClientError):
    """Any other non-OK answer (NOT_FOUND, INTERNAL, ...)."""

    def __init__(self, message: str, code: grpc.StatusCode):
        super().__init__(message)
        self.code = code


@dataclasses.dataclass(frozen=True)
class TlsConfig:
    """TLS to a TF Serving started with ``--ssl_config_file``; PEM paths, None ``ca_cert`` trusts the system roots.
    ``server_name`` checks the certificate against another name than the host dialled (an IP, a port-forward)."""

    ca_cert: Optional[str] = None
    client_cert: Optional[str] = None
    client_key: Optional[str] = None
    server_name: Optional[str] = None

    def __post_init__(self):
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("TLS client authentication needs both a client certificate and its key "
                             "(--client-cert and --client-key)")

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=_read_pem(self.ca_cert, "CA certificate"),
                                            private_key=_read_pem(self.client_key, "client key"),
                                            certificate_chain=_read_pem(self.client_cert, "client certificate"))


def _read_pem(path: Optional[str], what: str) -> Optional[bytes]:
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise ServingClientError(f"cannot read the TLS {what} {path}: {err.strerror or err}") from None
    if b"-----BEGIN " not in data:
        raise ServingClientError(f"the TLS {what} {path} is not a PEM file (no -----BEGIN line)")
    return data


def readable_error(details: str) -> str:
    """The model's own sentence from a graph error, as TF Serving or eager TensorFlow words it: the eager
    preamble, the ``assertion failed: [...]`` and node wrappers and the ``[Op:...]`` suffix go."""
    lines = details.splitlines()
    start = next((i for i, line in enumerate(lines)
                  if line.strip() and not line[0].isspace() and not line.startswith(EAGER_PREAMBLE)), 0)
    lines = [line for line in lines[start:] if not re.fullmatch(r"\s*\[\[.*\]\]\s*", line)]
    text = re.sub(r"\s*\[\[\{\{.*?\}\}\]\]", "", " ".join(line.strip() for line in lines))
    text = re.sub(r"\s*\[Op:__inference_\w+\]\s*$", "", text).strip()
    if text.startswith("assertion failed: "):
        text = text[len("assertion failed: "):].strip()
        if text.startswith("[") and text.endswith("]"):
            text = " ".join(part.strip() for part in text[1:-1].split("] ["))
    return text


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One clip's answer: top genre, per-genre scores (GENRES order) and per-segment scores."""

    genre: str
    genres: tuple[str, ...]
    scores: np.ndarray  # [10]
    segment_scores: np.ndarray  # [num_segments, 10]
    model_version: int
    # Seconds between segment starts; None from a model exported before the signature returned it.
    hop_seconds: Optional[float] = None

    def ranked(self) -> list[tuple[str, float]]:
        """(genre, score) pairs, best first."""
        order = np.argsort(-self.scores, kind="stable")
        return [(self.genres[i], float(self.scores[i])) for i in order]

    def to_dict(self) -> dict:
        return {"genre": self.genre, "model_version": self.model_version,
                "num_segments": int(self.segment_scores.shape[0]), "scores": dict(self.ranked())}


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    version: int
    state: str  # AVAILABLE, LOADING, ...
    error: str  # empty when OK


class GenreClient:
    """A channel to one server; reuse it for many requests (the benchmark does)."""

    def __init__(self, host: str = DEFAULT_HOST, model: str = DEFAULT_MODEL, timeout: float = 10.0,
                 retries: int = 3, backoff: float = 0.2, tls: Optional[TlsConfig] = None,
                 max_seconds: float = DEFAULT_MAX_SECONDS):
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.host, self.model, self.timeout, self.retries, self.backoff = host, model, timeout, retries, backoff
        self.tls, self.max_seconds = tls, max_seconds
        options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
        if tls is not None and tls.server_name:
            options.append(("grpc.ssl_target_name_override", tls.server_name))
        self._channel = (grpc.insecure_channel(host, options=options) if tls is None
                         else grpc.secure_channel(host, tls.credentials(), options=options))
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "GenreClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----- requests ------------------------------------------------------
    def predict_waveform(self, waveform: np.ndarray, sample_rate: int, version: Optional[int] = None) -> Prediction:
        """Classify a mono clip, sent with its own dtype (anything but float32 is the server's to reject)."""
        request = predict_pb2.PredictRequest()
        request.model_spec.signature_name = SIGNATURE
        request.inputs["waveform"].CopyFrom(to_tensor_proto(np.asarray(waveform)))
        request.inputs["sample_rate"].CopyFrom(to_tensor_proto(np.int32(sample_rate)))
        return _prediction(self._call(self._predict, "Predict", request, version))

    def predict_file(self, path: str | os.PathLike, version: Optional[int] = None) -> Prediction:
        """Decode an audio file to mono and classify it, after ingestion's checks (serving/audio_file.py)."""
        waveform, sample_rate = read_audio(path, self.max_seconds, AudioConfig().silence_dbfs)
        return self.predict_waveform(waveform, sample_rate, version)

    def model_status(self, version: Optional[int] = None) -> list[VersionStatus]:
        """GetModelStatus: every version the server knows, or only VERSION."""
        response = self._call(self._models, "GetModelStatus", get_model_status_pb2.GetModelStatusRequest(), version)
        states = get_model_status_pb2.ModelVersionStatus.State
        return [VersionStatus(int(s.version), states.Name(s.state), s.status.error_message)
                for s in response.model_version_status]

    # ----- plumbing ------------------------------------------------------
    def _call(self, stub: Any, rpc: str, request: Any, version: Optional[int]) -> Any:
        """RPC on VERSION (None: the latest), a deadline per attempt; retries only where retrying helps."""
        request.model_spec.name = self.model
        if version is not None:
            request.model_spec.version.value = int(version)
        what = f"{rpc} on model '{self.model}'" + (f" version {version}" if version is not None else "")
        for attempt in itertools.count(1):
            try:
                return getattr(stub, rpc)(request, timeout=self.timeout)
            except grpc.RpcError as err:
                if err.code() not in RETRYABLE or attempt > self.retries:
                    raise self._error(err.code(), err.details() or "", what, attempt) from None
            time.sleep(self.backoff * 2 ** (attempt - 1))

    def _error(self, code: grpc.StatusCode, details: str, what: str, attempts: int) -> ServingClientError:
        if code == grpc.StatusCode.UNAVAILABLE:
            return ServerUnavailableError(
                f"cannot reach the model server at {self.host} ({what}: UNAVAILABLE after {attempts} "
                f"attempt(s): {details}). Is TF Serving running? Start it with: {COMPOSE_HINT}"
                + (". With --tls, also check --ca-cert and that the server's certificate names this host "
                   "(or pass --tls-server-name)" if self.tls else ""))
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return ServerUnavailableError(
                f"the model server at {self.host} did not answer within {self.timeout:g} s ({what}, {attempts} "
                f"attempt(s)). Raise --timeout, or check the server (started with: {COMPOSE_HINT})")
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return ServingRpcError(f"{what} failed at {self.host}: RESOURCE_EXHAUSTED: {details}. The request is "
                                   "larger than the server accepts: send a shorter clip (the model's limit is "
                                   "serving.max_clip_seconds, docs/contracts.md)", code)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return ModelInputError(f"the model rejected the input (INVALID_ARGUMENT): {readable_error(details)}")
        return ServingRpcError(f"{what} failed at {self.host}: {code.name}: {details}", code)


def _prediction(response: predict_pb2.PredictResponse) -> Prediction:
    outputs = response.outputs
    missing = {"scores", "genre"} - set(outputs)
    if missing:
        raise ServingClientError(f"the model's answer lacks output(s) {sorted(missing)}; got {sorted(outputs)}")
    scores = to_ndarray(outputs["scores"]).astype(np.float32).reshape(-1)
    genres = tuple(g.decode() for g in to_ndarray(outputs["genres"]).reshape(-1)) if "genres" in outputs else GENRES
    if len(genres) != scores.size:
        raise ServingClientError(f"the model returned {scores.size} scores for {len(genres)} genres")
    segments = to_ndarray(outputs["segment_scores"]) if "segment_scores" in outputs else scores[None, :]
    genre = to_ndarray(outputs["genre"]).reshape(-1)[0]
    hop = float(to_ndarray(outputs["hop_seconds"]).reshape(-1)[0]) if "hop_seconds" in outputs else None
    return Prediction(genre=genre.decode() if isinstance(genre, bytes) else str(genre), genres=genres,
                      scores=scores, segment_scores=np.asarray(segments, dtype=np.float32),
                      model_version=int(response.model_spec.version.value), hop_seconds=hop)


# ----- one-shot helpers (a channel per call; OPTIONS are GenreClient's) ---------
def predict_waveform(waveform: np.ndarray, sample_rate: int, host: str = DEFAULT_HOST,
                     model: str = DEFAULT_MODEL, version: Optional[int] = None, **options: Any) -> Prediction:
    with GenreClient(host, model, **options) as client:
        return client.predict_waveform(waveform, sample_rate, version)


def predict_file(path: str | os.PathLike, host: str = DEFAULT_HOST, model: str = DEFAULT_MODEL,
                 version: Optional[int] = None, **options: Any) -> Prediction:
    with GenreClient(host, model, **options) as client:
        return client.predict_file(path, version)


def model_status(host: str = DEFAULT_HOST, model: str = DEFAULT_MODEL, version: Optional[int] = None,
                 **options: Any) -> list[VersionStatus]:
    with GenreClient(host, model, **options) as client:
        return client.model_status(version)


# ----- command line -----------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serving.client", description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--host", default=DEFAULT_HOST, help="gRPC address of TF Serving (default: %(default)s)")
    common.add_argument("--model", default=DEFAULT_MODEL, help="model name (default: %(default)s)")
    common.add_argument("--version", type=int, help="model version (default: the server's latest)")
    common.add_argument("--timeout", type=float, default=10.0, help="deadline per call, seconds (default: %(default)s)")
    common.add_argument("--retries", type=int, default=3,
                        help="retries on UNAVAILABLE / DEADLINE_EXCEEDED (default: %(default)s)")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    tls = common.add_argument_group("TLS (a TF Serving started with --ssl_config_file)")
    tls.add_argument("--tls", action="store_true", help="connect with TLS instead of plaintext")
    tls.add_argument("--ca-cert", help="PEM file of the CA that signed the server's certificate "
                                       "(default: the system's trusted roots)")
    tls.add_argument("--client-cert", help="PEM client certificate, for a server with client_verify: true")
    tls.add_argument("--client-key", help="PEM key of --client-cert")
    tls.add_argument("--tls-server-name", help="name to check the server's certificate against (default: the host)")
    sub = parser.add_subparsers(dest="command", required=True)
    predict = sub.add_parser("predict", parents=[common], help="classify an audio file")
    predict.add_argument("audio", help=f"audio file ({', '.join(AUDIO_EXTENSIONS)})")
    predict.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                         help="refuse longer files from their header, before decoding (default: the model's "
                              "serving.max_clip_seconds, %(default)s)")
    sub.add_parser("status", parents=[common], help="show the model's versions (GetModelStatus)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    tls_flags = {"--ca-cert": args.ca_cert, "--client-cert": args.client_cert,
                 "--client-key": args.client_key, "--tls-server-name": args.tls_server_name}
    try:
        given = [flag for flag, value in tls_flags.items() if value]
        if given and not args.tls:
            raise ValueError(f"{', '.join(given)} only apply with --tls")
        tls = TlsConfig(*tls_flags.values()) if args.tls else None
        with GenreClient(args.host, args.model, args.timeout, args.retries, tls=tls,
                         max_seconds=getattr(args, "max_seconds", DEFAULT_MAX_SECONDS)) as client:
            if args.command == "predict":
                result = client.predict_file(args.audio, args.version)
                answer = {"file": args.audio, **result.to_dict()}
                table = [f"{args.audio}: {result.genre}  (model version {result.model_version}, "
                         f"{result.segment_scores.shape[0]} segment(s))"]
                table += [f"  {genre:<10} {score:7.4f}" for genre, score in result.ranked()]
            else:
                statuses = client.model_status(args.version)
                answer = {"model": args.model, "versions": [dataclasses.asdict(s) for s in statuses]}
                table = [f"model {args.model} version {s.version}: {s.state}"
                         + (f" ({s.error})" if s.error else "") for s in statuses]
            print(json.dumps(answer, indent=2) if args.json else "\n".join(table))
    except (ServingClientError, AudioFileError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
