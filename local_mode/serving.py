"""The in-process option of local serving: a model's handlers called in this process, the way
SageMaker's scikit-learn container calls them (``LOCAL_SERVING=in-process``).

Local mode serves models in the image's real serving stack by default (``container``); this
imitation starts faster and is held to it, request kind by request kind, by
``tests/test_container_contract.py``. It imports the entry point named by
``SAGEMAKER_PROGRAM`` from the artifact's ``code/`` folder and calls, per request,
``input_fn`` -> ``predict_fn`` -> ``output_fn`` (or ``transform_fn`` instead of all three) on
the model from ``model_fn``. Missing handlers fall back to defaults with the
``sagemaker-inference`` toolkit's decoder and encoder; there is no default ``model_fn`` (the
container has none either). The handlers see the container's environment (the model's and
the job's variables) while they run, and what they print is kept (``take_printed``): on AWS
it is the job's log.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from sagemaker_inference import content_types, decoder, encoder
from sagemaker_inference.errors import UnsupportedFormatError

from common.environment import overridden
from local_mode.container import InvocationTimeout

DEFAULT_ACCEPT_VARIABLE = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"


class NotAcceptable(Exception):
    """``output_fn`` cannot write the ``Accept`` type (the toolkit's ``UnsupportedFormatError``
    raised while encoding): the container answers 406, not 415."""


class ModelLoadError(Exception):
    """The artifact cannot be served: no entry point, no ``model_fn``, a broken archive."""


def extract_artifact(archive: Path, destination: Path) -> Path:
    """Unpack ``model.tar.gz`` safely (no absolute paths, no escaping links)."""
    destination.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as bundle:
            bundle.extractall(destination, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise ModelLoadError(f"cannot unpack the model artifact: {error}") from None
    return destination


def default_input_fn(input_data: Any, content_type: str) -> np.ndarray:
    """The scikit-learn container's default: decode, and use float32 for text formats."""
    array = decoder.decode(input_data, content_type)
    return array.astype(np.float32) if content_type in content_types.UTF8_TYPES else array


def default_predict_fn(data: Any, model: Any) -> Any:
    return model.predict(data)


def default_output_fn(prediction: Any, accept: str) -> Any:
    return encoder.encode(prediction, accept)


class ModelServer:
    """One loaded model and its handlers; ``invoke`` answers one request."""

    def __init__(self, model_dir: Path, environment: dict[str, str]):
        self.model_dir = model_dir
        self.environment = dict(environment)
        self._printed: list[str] = []
        # the handlers run with this process's environment and standard output swapped, so
        # one request at a time (a Transform's concurrent requests queue here)
        self._serving = threading.Lock()
        with self._container():
            module = self._entry_point(environment.get("SAGEMAKER_PROGRAM"))
            model_fn = getattr(module, "model_fn", None)
            if model_fn is None:
                raise ModelLoadError(
                    "the model's entry point defines no model_fn (the scikit-learn container "
                    "has no default): add model_fn(model_dir) to the artifact's inference script"
                )
            self.model = model_fn(str(model_dir))
        self.transform_fn = getattr(module, "transform_fn", None)
        handlers = [getattr(module, name, None) for name in ("input_fn", "predict_fn", "output_fn")]
        if self.transform_fn is not None and any(handlers):
            raise ModelLoadError(  # the container refuses the same script at its first request
                "the model's entry point defines transform_fn and input_fn/predict_fn/output_fn: "
                "the scikit-learn container takes one or the other"
            )
        self.input_fn = getattr(module, "input_fn", default_input_fn)
        self.predict_fn = getattr(module, "predict_fn", default_predict_fn)
        self.output_fn = getattr(module, "output_fn", default_output_fn)

    def _entry_point(self, program: str | None) -> ModuleType | None:
        if not program:
            return None
        for folder in (self.model_dir / "code", self.model_dir):
            path = folder / program
            if path.is_file():
                break
        else:
            raise ModelLoadError(
                f"SAGEMAKER_PROGRAM={program} is neither in the artifact's code/ folder nor at "
                "its top level"
            )
        sys.path.insert(0, str(path.parent))  # the container puts code/ on the path too
        name = f"_sagemaker_entry_{abs(hash(path))}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ModelLoadError(
                f"SAGEMAKER_PROGRAM={program} is not a Python file; name the entry point's .py file"
            )
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    @contextlib.contextmanager
    def _container(self) -> Iterator[None]:
        """The handlers' view while they run: the container's environment variables set, their
        standard output kept (not mixed into the caller's). Restored afterwards."""
        printed = io.StringIO()
        try:
            with overridden(self.environment), contextlib.redirect_stdout(printed):
                yield
        finally:
            self._printed.extend(printed.getvalue().splitlines())

    def stop(self) -> None:
        """Nothing to stop: the model lives in this process (a container's ``stop`` ends it)."""

    def take_printed(self) -> list[str]:
        """The lines the handlers printed since the last call (what the job's log holds)."""
        with self._serving:
            printed, self._printed = self._printed, []
        return printed

    def invoke(
        self, payload: bytes, content_type: str, accept: str, timeout: float | None = None
    ) -> bytes:
        """One request: the body as the container receives it, the response body back."""
        return self.respond(payload, content_type, accept, timeout)[0]

    def respond(
        self, payload: bytes, content_type: str, accept: str, timeout: float | None = None
    ) -> tuple[bytes, str]:
        """One request: the response body and its content type (``accept`` unless the
        handler returned ``(body, content type)``, as the container allows).
        ``InvocationTimeout`` when it took over ``timeout`` seconds: a handler in this
        process cannot be interrupted, so the answer is dropped once it comes.

        As the container's request object: no ``Content-Type`` is JSON; no ``Accept`` (or
        ``*/*``) is ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``, else JSON; a text body is decoded
        from UTF-8 with replacement characters for bytes that are not (werkzeug's way)."""
        content_type = content_type or content_types.JSON
        if not accept or accept == content_types.ANY:
            accept = self.environment.get(DEFAULT_ACCEPT_VARIABLE) or content_types.JSON
        data: Any = payload
        if content_type in content_types.UTF8_TYPES:
            data = payload.decode("utf-8", errors="replace")
        with self._serving:
            started = time.monotonic()
            answer = self._answer(data, content_type, accept)
            if timeout is not None and time.monotonic() - started > timeout:
                raise InvocationTimeout(timeout)
            return answer

    def _answer(self, data: Any, content_type: str, accept: str) -> tuple[bytes, str]:
        with self._container():
            if self.transform_fn is not None:
                result = self.transform_fn(self.model, data, content_type, accept)
            else:
                prediction = self.predict_fn(self.input_fn(data, content_type), self.model)
                try:
                    result = self.output_fn(prediction, accept)
                except UnsupportedFormatError as error:  # the answer's type, not the request's
                    raise NotAcceptable(str(error)) from error
        response_type = accept
        if isinstance(result, tuple):  # (body, content type), as handlers may return
            result, response_type = result[0], result[1]
        if isinstance(result, str):
            return result.encode("utf-8"), response_type
        if isinstance(result, bytes | bytearray | memoryview):
            return bytes(result), response_type
        raise TypeError(f"the model's output handler returned {type(result).__name__}, not bytes")
