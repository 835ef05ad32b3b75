"""A model served by the scikit-learn image's real serving stack, in its runtime twin.

What SageMaker does when a Transform job or an endpoint starts the model's container, done
here with the image's own packages (``twin``): the model's environment is the container's,
``/opt/ml`` is a folder of this container's own, and the container's ``serve`` runs
(``sklearn_image/serve.py``: ``sagemaker_containers._server.start``): ``pip install .`` of the
model's code directory with **no package index reachable** (as under network isolation),
then gunicorn with gevent workers and the image's serving glue (``sklearn_image/
sklearn_serving.py``) on a loopback port. Requests go over HTTP, as SageMaker sends them.

Each container gets its own small virtualenv over the twin's packages (a ``.pth`` file), so
that the module install lands there, as it lands in a container's own file system, and two
models never share an installed ``inference`` module.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from local_mode import twin

CONTAINER_ROOT = "/opt/ml/"
UNREACHABLE_INDEX = "http://127.0.0.1:9/simple/"  # the discard port: nothing answers there
START_TIMEOUT_SECONDS = 120.0  # the module install and gunicorn's start, on a busy machine
INVOCATION_TIMEOUT_SECONDS = 600.0
ERROR_LINE = re.compile(r"^[\w.]*(Error|Exception)\b.*|^[\w.]+: .*", re.MULTILINE)
RAISED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Refused|Failure)\b: .*")


class ContainerFailed(Exception):
    """The container could not start or stopped: the message is its log's reason."""


class InvocationTimeout(Exception):
    """No answer within the request's time limit (Batch Transform's
    ``InvocationsTimeoutInSeconds``): the connection is dropped, as the caller gives up."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        super().__init__(f"no answer within {seconds:g} s")


class ContainerRefusal(Exception):
    """A request the container answered with a status other than 200. Its message is the
    handler's own error for a 5xx when the log has it (``ValueError: ...``: the container
    answers an HTML page), else the status and the body's first line."""

    def __init__(self, status: int, content_type: str, body: bytes, logged: str | None = None):
        self.status, self.content_type, self.body = status, content_type, body
        text = body.decode("utf-8", errors="replace").strip()
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        super().__init__(logged or f"HTTP {status}: {first[:500] or 'no body'}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def request(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, str, bytes]:
    """One request to a server on loopback ``port`` on a new connection: (status,
    Content-Type, body). A server may refuse a large body before reading it and close: its
    answer is still read."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        connection.close()


def container_variables(environment: dict[str, str], opt_ml: Path) -> dict[str, str]:
    """The model's variables as the container sees them: ``/opt/ml/...`` values point into
    this container's own ``/opt/ml`` (``opt_ml``)."""
    return {
        name: str(opt_ml / value[len(CONTAINER_ROOT) :])
        if value.startswith(CONTAINER_ROOT)
        else value
        for name, value in environment.items()
    }


class Container:
    """The model in ``model_dir`` (an unpacked ``model.tar.gz``) served with ``environment``
    (the model's container variables). ``start()`` returns once ``/ping`` answers 200."""

    def __init__(
        self,
        model_dir: Path,
        environment: dict[str, str],
        *,
        port: int | None = None,
        workers: int | None = None,
        work_dir: Path | None = None,
        start_timeout: float = START_TIMEOUT_SECONDS,
        log_to_terminal: bool = False,
    ):
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self._own_dir = work_dir is None
        self.root = Path(tempfile.mkdtemp(prefix="container-")) if work_dir is None else work_dir
        self.root.mkdir(parents=True, exist_ok=True)
        self.opt_ml = self.root / "opt" / "ml"
        self.model_dir = self.opt_ml / "model"
        if model_dir.resolve() != self.model_dir.resolve():
            # the unpacked artifact is the container's /opt/ml/model (no copy of a large model;
            # the module install works on its own copy of code/, in /opt/ml/code)
            self.model_dir.parent.mkdir(parents=True, exist_ok=True)
            self.model_dir.symlink_to(model_dir.resolve(), target_is_directory=True)
        self.environment = environment
        self.workers = workers
        self.log_to_terminal = log_to_terminal  # make serve: the log as CloudWatch would show it
        self.stdout_path, self.stderr_path = self.root / "stdout.log", self.root / "stderr.log"
        self._printed_offset = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._owner = os.getpid()
        # requests may come from several threads at a time (a Transform's
        # MaxConcurrentTransforms): each thread keeps its own kept-alive connection
        self._local = threading.local()
        self._connections: set[http.client.HTTPConnection] = set()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def _environment(self, overlay: Path, interpreter: Path) -> dict[str, str]:
        home = self.root / "home"
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        base = {
            # the image's ENV (Dockerfile) and what a container needs to run
            "PATH": f"{overlay / 'bin'}:{interpreter.parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "PYTHONIOENCODING": "utf-8",
            "TEMP": str(home / "tmp"),
            "SM_MODEL_DIR": str(self.model_dir),
            # no package index is reachable, as under the model's network isolation; no
            # configuration file of this machine's applies (a local wheel folder would hide it)
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_INDEX_URL": UNREACHABLE_INDEX,
            "PIP_RETRIES": "0",
        }
        if self.workers:
            base["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(self.workers)
        local = {
            "SAGEMAKER_BASE_DIR": str(self.opt_ml),
            "SAGEMAKER_SERVING_MODULE": "sklearn_serving:main",
            "SAGEMAKER_BIND_TO_PORT": str(self.port),
            "SAGEMAKER_USE_NGINX": "false",
        }
        return {**base, **container_variables(self.environment, self.opt_ml), **local}

    def _overlay(self, interpreter: Path) -> Path:
        """A virtualenv of this container's own that sees the twin's packages."""
        overlay = self.root / "venv"
        subprocess.run(
            [str(interpreter), "-m", "venv", "--without-pip", str(overlay)],
            check=True,
            capture_output=True,
        )
        major, minor = twin.PYTHON_VERSION
        own = overlay / "lib" / f"python{major}.{minor}" / "site-packages"
        # a site directory, not a bare path: its own .pth files run too, as in the image
        # (setuptools' distutils-precedence.pth gives Python 3.12 the distutils that
        # sagemaker-containers imports)
        (own / "_image_packages.pth").write_text(
            f"import site; site.addsitedir({str(twin.site_packages(interpreter))!r})\n"
        )
        return overlay

    def start(self) -> Container:
        interpreter = twin.python()
        overlay = self._overlay(interpreter)
        with self.stdout_path.open("wb") as stdout, self.stderr_path.open("wb") as stderr:
            self._process = subprocess.Popen(
                [str(overlay / "bin" / "python"), str(twin.CONTAINER_CODE / "serve.py")],
                cwd=self.root,
                env=self._environment(overlay, interpreter),
                stdout=None if self.log_to_terminal else stdout,
                stderr=None if self.log_to_terminal else stderr,
                start_new_session=True,  # stop() ends gunicorn and its workers with it
            )
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._process.poll() is not None:
                raise ContainerFailed(
                    f"the container exited ({self._process.returncode}): {self.reason()}"
                )
            status = self._ping()
            if status == 200:
                self.take_printed()  # the start-up's output (pip's) is not a request's
                return self
            if status is not None and status >= 500:
                self.stop()
                raise ContainerFailed(f"/ping answered {status}: {self.reason()}")
            if time.monotonic() > deadline:
                self.stop()
                raise ContainerFailed(
                    f"/ping did not answer 200 within {self.start_timeout:.0f} s: {self.reason()}"
                )
            time.sleep(0.1)

    def _ping(self) -> int | None:
        try:
            return self.request("GET", "/ping", timeout=10)[0]
        except OSError:
            return None

    def stop(self) -> None:
        """Stop the container at once, as a job's end or an endpoint's replacement does, with
        every process it started (its own session); only in the process that started it (a
        forked child, e.g. a gunicorn worker in front of it, leaves it running when it exits).
        No graceful shutdown: nothing is in flight when a caller stops it, and gunicorn's with
        gevent workers takes two seconds, which every local Transform would pay."""
        if os.getpid() != self._owner:
            return
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            connection.close()
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):  # the launcher and all it started
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def close(self) -> None:
        self.stop()
        if self._own_dir and os.getpid() == self._owner:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Container:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ the log

    def log(self) -> str:
        """Everything the container wrote (standard output, then standard error)."""
        return "".join(
            path.read_text(encoding="utf-8", errors="replace")
            for path in (self.stdout_path, self.stderr_path)
            if path.is_file()
        )

    def reason(self) -> str:
        """One line that says why the container failed: its traceback's last line (and the
        line after, when that one ends with a colon), and pip's own ``ERROR:`` line if it
        wrote one; else the log's last line."""
        lines = [line.strip() for line in self.log().splitlines() if line.strip()]
        found = [
            index
            for index, line in enumerate(lines)
            if ERROR_LINE.match(line) and not line.startswith(("[", "ERROR: "))
        ]
        if found:
            index = found[-1]
            chosen = lines[index]
            if chosen.endswith(":") and index + 1 < len(lines):
                chosen = f"{chosen} {lines[index + 1]}"
        elif lines:
            chosen = lines[-1]
        else:
            chosen = "its log is above" if self.log_to_terminal else "it wrote nothing"
        pip = [line for line in lines if line.startswith("ERROR: ")]
        if pip:
            chosen = f"{chosen} (pip: {pip[-1][len('ERROR: ') :]})"
        return chosen[:1000]

    def take_printed(self) -> list[str]:
        """Lines the container printed to standard output since the last call (the handlers'
        metric lines: on AWS, the job's log); each line once, whichever thread asks."""
        with self._lock, self.stdout_path.open("rb") as stdout:
            stdout.seek(self._printed_offset)
            data = stdout.read()
            whole = data[: data.rfind(b"\n") + 1]
            self._printed_offset += len(whole)
        return whole.decode("utf-8", errors="replace").splitlines()

    # ------------------------------------------------------------------ requests

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = INVOCATION_TIMEOUT_SECONDS,
    ) -> tuple[int, str, bytes]:
        """One request to this container on a new connection: (status, Content-Type, body)."""
        return request(self.port, method, path, body, headers, timeout)

    def respond(
        self, payload: bytes, content_type: str, accept: str, timeout: float | None = None
    ) -> tuple[bytes, str]:
        """One invocation, as Batch Transform sends it (one kept-alive connection per
        thread): the body and its Content-Type; ``ContainerRefusal`` for any other status
        than 200, ``InvocationTimeout`` when no answer comes within ``timeout`` seconds
        (``INVOCATION_TIMEOUT_SECONDS`` by default)."""
        headers = {"Content-Type": content_type, "Accept": accept}
        limit = timeout or INVOCATION_TIMEOUT_SECONDS
        self._local.errors_offset = self._size(self.stderr_path)
        for attempt in (1, 2):
            connection = self._thread_connection(limit)
            try:
                connection.request("POST", "/invocations", body=payload, headers=headers)
                response = connection.getresponse()
                status, body = response.status, response.read()
                returned_type = response.getheader("Content-Type") or ""
                break
            except TimeoutError:  # the answer may still come: this connection is given up
                self._drop_connection()
                raise InvocationTimeout(limit) from None
            except (http.client.HTTPException, ConnectionError):
                self._drop_connection()
                if attempt == 2 or self._exited():
                    raise ContainerFailed(
                        f"the container stopped answering: {self.reason()}"
                    ) from None
        if status != 200:
            raise ContainerRefusal(
                status, returned_type, body, self._raised() if status >= 500 else None
            )
        return body, returned_type

    def _thread_connection(self, timeout: float) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            self._local.connection = connection
            with self._lock:
                self._connections.add(connection)
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
            with self._lock:
                self._connections.discard(connection)

    def _exited(self) -> bool:
        """Whether the container's process is gone, asked in a way that holds in any process:
        in a forked one (a gunicorn worker of ``make serve``'s front) ``Popen.poll`` cannot
        wait for a child that is not its own and answers 0, which made every dropped kept-alive
        connection there a failed container instead of a retry."""
        if self._process is None:
            return False
        if os.getpid() == self._owner:
            return self._process.poll() is not None
        try:
            os.kill(self._process.pid, 0)
        except ProcessLookupError:
            return True
        return False

    @staticmethod
    def _size(path: Path) -> int:
        return path.stat().st_size if path.is_file() else 0

    def _raised(self) -> str | None:
        """The first exception the container logged since the request began: the handler's
        own, before the toolkit's wrapper (``ClientError``) around it."""
        with self.stderr_path.open("rb") as stderr:
            stderr.seek(getattr(self._local, "errors_offset", 0))
            logged = stderr.read().decode("utf-8", errors="replace")
        return next((line for line in logged.splitlines() if RAISED.match(line)), None)

    def invoke(
        self, payload: bytes, content_type: str, accept: str, timeout: float | None = None
    ) -> bytes:
        return self.respond(payload, content_type, accept, timeout)[0]

    def __repr__(self) -> str:
        return f"Container({self.model_dir}, port={self.port})"
