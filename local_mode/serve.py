"""Serve a stage's promoted model on loopback, behind SageMaker's container contract.

    python -m local_mode.serve --stage preprod [--workdir build/demo] [--port 8080]
    python -m local_mode.serve --stage prod --from-aws   # the stage account's model

The model is the one the stage's batch Transform uses: ``make demo`` leaves each stage's copy
in ``<workdir>/<stage>-model/`` (the promoted artifact, unpacked, and its container
environment); ``--from-aws`` makes that copy first from the SageMaker Model named in
``<workdir>/<stage>.tfvars.json`` (``build.py``'s output), with the current AWS credentials.
It is served by the scikit-learn image's real serving stack in its runtime twin
(``container.Container``: the module install with no index, gunicorn with gevent workers,
sagemaker-containers' worker), on a private loopback port, behind a front
(``invocations.InvocationsApp``) that does what InvokeEndpoint does before a request reaches
the container: the 6 MB payload limit. The container's log is this process's.
``LOCAL_SERVING=in-process`` serves the model in the front's own process instead.

The front reads each request whole on an event loop (gunicorn's asyncio worker) before the
model sees it, as the image's nginx buffers a body before its gunicorn does and as
InvokeEndpoint takes the whole payload before it calls the container: a client that sends
its body slowly, or not at all, holds a connection, not a worker, and ``/ping`` and the
other clients are answered meanwhile. A body that stops arriving for
``INVOCATION_TIMEOUT_SECONDS`` is dropped (nginx's ``client_body_timeout``: 60 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
from gunicorn.app.base import BaseApplication

from common.s3_locations import parse_s3_uri
from local_mode import storage, transform, twin
from local_mode.container import Container, ContainerFailed, free_port, request
from local_mode.invocations import DEFAULT_MAX_BODY_BYTES, Backend, InvocationsApp
from local_mode.processing import StepFailed
from local_mode.serving import ModelLoadError, ModelServer, extract_artifact

ENVIRONMENT_FILE = "environment.json"
INVOCATION_TIMEOUT_SECONDS = 60  # a real-time endpoint's limit for one invocation


class ServeError(Exception):
    """Nothing to serve, or it cannot be served: the message says why and what to do."""


def model_copy(workdir: Path, stage: str) -> Path:
    return workdir / f"{stage}-model"


def copy_stage_model(session: boto3.Session, model_name: str, destination: Path) -> Path:
    """Unpack SageMaker Model ``model_name``'s artifact (its package's, for a package-based
    model) and its container environment into ``destination``, replacing an older copy only
    once the new one is complete."""
    spec = transform.resolve_model(session.client("sagemaker"), model_name)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:
        bucket, key = parse_s3_uri(spec.model_data_url)
        archive = staging / "model.tar.gz"
        storage.download(session.client("s3"), bucket, key, archive)
        extract_artifact(archive, staging / "model")
        archive.unlink()
        (staging / ENVIRONMENT_FILE).write_text(json.dumps(spec.environment, indent=2) + "\n")
        (staging / "source.json").write_text(
            json.dumps({"model_name": model_name, "model_data_url": spec.model_data_url}) + "\n"
        )
        shutil.rmtree(destination, ignore_errors=True)
        staging.rename(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return destination


def load_model_copy(copy: Path, workers: int = 1) -> Backend:
    """The copy made by :func:`copy_stage_model`, served: its container started with
    ``workers`` gunicorn workers (stop it with ``.stop()``), or ``LOCAL_SERVING=in-process``
    loaded here."""
    environment_file = copy / ENVIRONMENT_FILE
    if not environment_file.is_file():
        raise ServeError(f"no model copy in {copy}")
    environment = json.loads(environment_file.read_text())
    try:
        if transform.serving_mode() == "in-process":
            return ModelServer(copy / "model", environment)
        return Container(copy / "model", environment, workers=workers, log_to_terminal=True).start()
    except (ModelLoadError, ContainerFailed, twin.TwinMissing) as error:
        raise ServeError(f"the model in {copy} cannot be served: {error}") from None


Message = dict[str, Any]


class BufferingFront:
    """The ASGI front of ``app``: each request's body is read whole on the event loop, then
    ``app`` answers it; ``/invocations`` in a thread, one at a time per worker process (the
    backend is one model over one connection, as with the synchronous workers before), every
    other path at once (``/ping`` never waits for a model or a client)."""

    def __init__(self, app: InvocationsApp):
        self.app = app
        self._backend = asyncio.Lock()  # bound to the worker's loop at its first use

    async def __call__(
        self,
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":  # no lifespan (it is off) and no websockets
            return
        environ = self._environ(scope)
        body = await self._body(environ, receive)
        if body is None:  # the client left (nothing is sent then), or its body stopped arriving
            line = f"the body stopped arriving for {INVOCATION_TIMEOUT_SECONDS} s: send it whole\n"
            content, status = line.encode(), 408
            headers = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(content)).encode()),
            ]
        elif environ["PATH_INFO"] == "/invocations" and environ["REQUEST_METHOD"] == "POST":
            environ["wsgi.input"] = io.BytesIO(body)
            async with self._backend:
                status, headers, content = await asyncio.to_thread(self._answer, environ)
        else:
            environ["wsgi.input"] = io.BytesIO(body)
            status, headers, content = self._answer(environ)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _body(
        self, environ: dict[str, Any], receive: Callable[[], Awaitable[Message]]
    ) -> bytes | None:
        """The whole body; at most one read past the payload limit (the app refuses it with
        413 and gunicorn closes a connection whose body was not read to its end); ``None``
        when the client left or its body stopped arriving (gunicorn's ``timeout``)."""
        limit = self.app.max_body_bytes
        declared = environ.get("CONTENT_LENGTH", "")
        if declared.isdigit() and int(declared) > limit:
            return b""  # refused on its length alone, as before
        body = bytearray()
        while len(body) <= limit:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        return bytes(body)

    @staticmethod
    def _environ(scope: Message) -> dict[str, Any]:
        """The WSGI environment of the request (what ``InvocationsApp`` reads)."""
        environ: dict[str, Any] = {
            "REQUEST_METHOD": scope["method"],
            "PATH_INFO": scope["path"],
            "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
            "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
            "wsgi.url_scheme": scope.get("scheme", "http"),
        }
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").upper().replace("-", "_")
            value = raw_value.decode("latin-1")
            key = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _answer(self, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            started[:] = [status, headers]

        content = b"".join(self.app(environ, start_response))
        status, headers = started
        encoded = [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers
        ]
        return int(status.split(" ", 1)[0]), encoded, content


class GunicornServer(BaseApplication):
    """gunicorn running one already-built application (gunicorn's documented custom-app way)."""

    def __init__(self, app: BufferingFront, options: dict[str, Any]):
        self.app, self.options = app, options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> BufferingFront:
        return self.app


def check_port_free(host: str, port: int) -> None:
    """Fail at once, in one line, where gunicorn would retry the bind for seconds."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ServeError(
                f"cannot listen on {host}:{port} ({error.strerror}): choose another --port"
            ) from None


def serve(app: InvocationsApp, host: str, port: int, workers: int) -> None:
    check_port_free(host, port)
    GunicornServer(
        BufferingFront(app),
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "asgi",  # asyncio: a slow client holds a connection, not a worker
            "asgi_lifespan": "off",
            "asgi_loop": "asyncio",
            "timeout": INVOCATION_TIMEOUT_SECONDS,  # also how long a body may stop arriving
            "graceful_timeout": 5,
            "loglevel": "warning",
            "errorlog": "-",
            "accesslog": None,
            "limit_request_line": 8190,
        },
    ).run()


@contextlib.contextmanager
def running_endpoint(
    stage: str, workdir: Path, workers: int = 1, extra: Sequence[str] = (), timeout: float = 60
) -> Iterator[int]:
    """This CLI in a child process on a free loopback port, serving ``stage``'s model copy;
    yields the port once ``/ping`` answers, stops it afterwards (the demo, the tests and the
    benchmark use it)."""
    port = free_port()
    command = [
        sys.executable, "-m", "local_mode.serve", "--stage", stage, "--workdir", str(workdir),
        "--port", str(port), "--workers", str(workers), *extra,
    ]  # fmt: skip
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, stderr=log)
        try:
            deadline = time.monotonic() + timeout
            while not _pings(port):
                if process.poll() is not None:
                    log.seek(0)
                    raise ServeError(f"the server stopped: {log.read().strip()}")
                if time.monotonic() > deadline:
                    raise ServeError(f"the server did not answer /ping in {timeout:.0f} s")
                time.sleep(0.05)  # its workers are starting
            yield port
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:  # never leave a server behind
                process.kill()
                process.wait()


def _pings(port: int) -> bool:
    try:
        return request(port, "GET", "/ping", timeout=5)[0] == 200
    except OSError:
        return False


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local_mode.serve", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--stage", required=True, help="e.g. preprod or prod")
    parser.add_argument("--workdir", type=Path, default=Path("build/demo"))
    parser.add_argument(
        "--from-aws",
        action="store_true",
        help="first copy the stage's model from AWS (the model named in <stage>.tfvars.json)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--max-body-mb",
        type=float,
        default=DEFAULT_MAX_BODY_BYTES / 2**20,
        help="payload limit (6 for instance endpoints, 4 for serverless ones)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    copy = model_copy(args.workdir, args.stage)
    try:
        if args.workers < 1 or not 0 < args.port < 65536 or not 0 < args.max_body_mb < math.inf:
            raise ServeError("--workers, --port and --max-body-mb must be positive (port < 65536)")
        if args.from_aws:
            tfvars = args.workdir / f"{args.stage}.tfvars.json"
            if not tfvars.is_file():
                raise ServeError(
                    f"no {tfvars}: build.py --stage {args.stage} --output {tfvars} writes it"
                )
            try:
                model_name = json.loads(tfvars.read_text())["model_name"]
            except (ValueError, KeyError, TypeError):
                raise ServeError(f"{tfvars} names no model_name: write it with build.py") from None
            try:
                copy_stage_model(boto3.Session(), model_name, copy)
            except (
                StepFailed,
                ModelLoadError,
                OSError,
                botocore.exceptions.BotoCoreError,
                botocore.exceptions.ClientError,
            ) as error:
                raise ServeError(f"cannot copy model {model_name}: {error}") from None
        elif not (copy / ENVIRONMENT_FILE).is_file():
            raise ServeError(
                f"no {args.stage} model in {copy}: run `make demo` first (it promotes the model "
                f"and leaves each stage's copy there), or add --from-aws"
            )
        check_port_free(args.host, args.port)
        backend = load_model_copy(copy, args.workers)
        try:
            app = InvocationsApp(backend, int(args.max_body_mb * 2**20))
            print(
                f"serving {args.stage}'s model ({copy}) on http://{args.host}:{args.port}: "
                "GET /ping, POST /invocations",
                file=sys.stderr,
                flush=True,
            )
            serve(app, args.host, args.port, args.workers)
        finally:
            backend.stop()
    except ServeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
