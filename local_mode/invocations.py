"""SageMaker's inference container contract over HTTP (WSGI), for one loaded model.

``GET /ping`` answers 200 (the model is loaded before the app exists); ``POST /invocations``
hands the body, ``Content-Type`` (as sent; JSON when absent, as the containers assume) and
``Accept`` to the model's handlers (``serving.ModelServer``) and returns their answer.
Errors follow the inference toolkit's contract (the MMS-based containers): a handler that
raises ``BaseInferenceToolkitError`` answers with its status and message, the toolkit's
``UnsupportedFormatError`` (what its default decoder and encoder raise) with 415 from
decoding and 406 from encoding, anything else with 500. SageMaker's single-model
scikit-learn container (``sagemaker-containers``) answers 500 for any exception of a handler
of your own: see docs/local-mode.md. Before a handler runs, the app refuses what would not reach
one on AWS: a body over the payload limit (413; 6 MB for instance endpoints) and an empty
body (400). Every error body is one line of text and the server keeps serving. What the
handlers print goes to the log, as a container's standard output goes to CloudWatch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any, Protocol, TextIO

from sagemaker_inference.errors import BaseInferenceToolkitError, UnsupportedFormatError

from local_mode.container import ContainerRefusal
from local_mode.serving import NotAcceptable

DEFAULT_MAX_BODY_BYTES = 6 * 2**20  # InvokeEndpoint's payload limit for instance endpoints

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class Refused(Exception):
    """A request answered with a 4xx or 5xx status and a one-line reason."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class Backend(Protocol):
    """What answers the invocations: the real container (``container.Container``) or the
    in-process imitation (``serving.ModelServer``)."""

    def respond(
        self, payload: bytes, content_type: str, accept: str, timeout: float | None = None
    ) -> tuple[bytes, str]: ...

    def invoke(
        self, payload: bytes, content_type: str, accept: str, timeout: float | None = None
    ) -> bytes: ...

    def take_printed(self) -> list[str]: ...

    def stop(self) -> None: ...


class InvocationsApp:
    """The WSGI application: ``/ping`` and ``/invocations`` for ``server``'s model."""

    def __init__(
        self,
        server: Backend,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        log: TextIO = sys.stderr,
    ):
        self.server, self.max_body_bytes, self.log = server, max_body_bytes, log

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        try:
            if path == "/ping":
                if method not in ("GET", "HEAD"):
                    raise Refused(HTTPStatus.METHOD_NOT_ALLOWED, "/ping answers GET")
                return self._answer(start_response, HTTPStatus.OK, b"", "text/plain")
            if path == "/invocations":
                if method != "POST":
                    raise Refused(HTTPStatus.METHOD_NOT_ALLOWED, "/invocations answers POST")
                body, content_type = self._invoke(environ)
                return self._answer(start_response, HTTPStatus.OK, body, content_type)
            raise Refused(
                HTTPStatus.NOT_FOUND, f"no {path}: the container serves /ping and /invocations"
            )
        except ContainerRefusal as refusal:  # the container's own answer, passed on as it is
            print(f"{method} {path}: {refusal}", file=self.log)
            return self._answer(start_response, refusal.status, refusal.body, refusal.content_type)
        except Refused as refused:
            print(f"{method} {path}: {int(refused.status)} {refused.reason}", file=self.log)
            body = (refused.reason + "\n").encode()
            return self._answer(start_response, refused.status, body, "text/plain; charset=utf-8")

    def _invoke(self, environ: dict[str, Any]) -> tuple[bytes, str]:
        # the headers as sent (parameters and all); the server applies its defaults
        content_type = (environ.get("CONTENT_TYPE") or "").strip()
        accept = (environ.get("HTTP_ACCEPT") or "").strip()
        body = self._body(environ)
        try:
            return self.server.respond(body, content_type, accept)
        except ContainerRefusal:
            raise
        except BaseInferenceToolkitError as error:
            raise Refused(error.status_code, _one_line(str(error.message))) from None
        except NotAcceptable:
            raise Refused(
                HTTPStatus.NOT_ACCEPTABLE, f"Accept {accept} is not supported by this model"
            ) from None
        except UnsupportedFormatError:
            raise Refused(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"Content-Type {content_type} is not supported by this model",
            ) from None
        except Exception as error:  # the container's 500: the handler failed on this request
            raise Refused(
                HTTPStatus.INTERNAL_SERVER_ERROR, _one_line(f"{type(error).__name__}: {error}")
            ) from None
        finally:
            for line in self.server.take_printed():
                print(line, file=self.log)

    def _body(self, environ: dict[str, Any]) -> bytes:
        limit = self.max_body_bytes
        declared = environ.get("CONTENT_LENGTH") or ""
        if declared.isdigit() and int(declared) > limit:
            raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _too_large(int(declared), limit))
        body = environ["wsgi.input"].read(limit + 1)  # a chunked body has no length to check
        if len(body) > limit:
            raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _too_large(len(body), limit))
        if not body:
            raise Refused(HTTPStatus.BAD_REQUEST, "empty body: send one or more records")
        return body

    @staticmethod
    def _answer(
        start_response: StartResponse, status: int, body: bytes, content_type: str
    ) -> list[bytes]:
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        start_response(
            f"{int(status)} {phrase}".rstrip(),
            [("Content-Type", content_type), ("Content-Length", str(len(body)))],
        )
        return [body]


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "no reason given"


def _too_large(size: int, limit: int) -> str:
    more = "more than " if size == limit + 1 else ""
    return (
        f"the body is {more}{size} bytes, over the {limit}-byte payload limit: send fewer "
        "records per request (or score them in batch)"
    )
