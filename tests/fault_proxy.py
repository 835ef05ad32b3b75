"""AWS's transient failures, injected in front of the emulator: a seeded share of requests is
answered with throttling, a 5xx, or a reset connection instead of reaching moto.

What AWS answers a throttled caller, by protocol: ``400 ThrottlingException`` (JSON: SageMaker,
SSM, ECR), ``400 Throttling`` (query: STS, IAM), ``503 SlowDown`` (S3); a 5xx is ``500
InternalFailure`` or ``503 ServiceUnavailable``; a reset is a TCP RST after the request was
read, before it is forwarded (the service never saw it). Point ``AWS_ENDPOINT_URL`` at
``FaultProxy.url``. Decisions come from ``random.Random(seed)`` in the order requests arrive,
so a sequential CLI meets the same faults on every run.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import socket
import struct
import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.loopback import serving

KINDS = ("throttle", "5xx", "reset")
# hop-by-hop and length headers http.client sets itself
_SKIPPED = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}


@dataclass
class FaultProxy:
    url: str
    requests: int = 0
    injected: Counter[str] = field(default_factory=Counter)  # kind -> count
    # (operation, kind) of every injected fault, in order: what a failing test prints
    log: list[tuple[str, str]] = field(default_factory=list)
    operations: list[str] = field(default_factory=list)  # every request, in order
    # the most requests failed in a row: for a client that retries one call at a time, the
    # most attempts one call lost (botocore's default gives up after 3)
    longest_streak: int = 0
    streak: int = 0
    # operation -> how many of its next requests fail (a 503 each): an outage of one API
    outages: dict[str, int] = field(default_factory=dict)


def _protocol(headers: dict[str, str], body: bytes) -> str:
    if "x-amz-target" in headers:
        return "json"
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded") and (
        b"Action=" in body
    ):
        return "query"
    return "rest-xml"  # S3


def _operation(method: str, path: str, headers: dict[str, str], body: bytes) -> str:
    if "x-amz-target" in headers:
        return headers["x-amz-target"]
    if _protocol(headers, body) == "query":
        return urllib.parse.parse_qs(body.decode()).get("Action", ["?"])[0]
    return f"{method} {urllib.parse.urlsplit(path).path}"


def _error(protocol: str, status: int, code: str, message: str) -> tuple[int, dict, bytes]:
    if protocol == "json":
        body = json.dumps({"__type": code, "message": message}).encode()
        return (
            status,
            {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code},
            body,
        )
    if protocol == "query":
        xml = (
            "<ErrorResponse><Error><Type>Sender</Type>"
            f"<Code>{code}</Code><Message>{message}</Message></Error>"
            "<RequestId>fault-proxy</RequestId></ErrorResponse>"
        )
    else:
        xml = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return status, {"Content-Type": "text/xml"}, xml.encode()


def _throttle(protocol: str) -> tuple[int, dict, bytes]:
    if protocol == "json":
        return _error(protocol, 400, "ThrottlingException", "Rate exceeded")
    if protocol == "query":
        return _error(protocol, 400, "Throttling", "Rate exceeded")
    return _error(protocol, 503, "SlowDown", "Please reduce your request rate.")


def _server_error(protocol: str, rng: random.Random) -> tuple[int, dict, bytes]:
    if rng.random() < 0.5:
        code = "InternalError" if protocol == "rest-xml" else "InternalFailure"
        return _error(protocol, 500, code, "We encountered an internal error. Please try again.")
    return _error(protocol, 503, "ServiceUnavailable", "Service is unavailable, try again.")


@contextmanager
def faulty(emulator_url: str, rate: float = 0.3, seed: int = 28) -> Iterator[FaultProxy]:
    """The emulator's APIs on a loopback URL, ``rate`` of the requests failing transiently."""
    target = urllib.parse.urlsplit(emulator_url)
    rng = random.Random(seed)
    lock = threading.Lock()
    proxy = FaultProxy("")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _handle(self) -> None:
            body = self._body()
            headers = {k.lower(): v for k, v in self.headers.items()}
            operation = _operation(self.command, self.path, headers, body)
            with lock:
                proxy.requests += 1
                proxy.operations.append(operation)
                kind = rng.choice(KINDS) if rng.random() < rate else None
                if proxy.outages.get(operation, 0) > 0:
                    proxy.outages[operation] -= 1
                    kind = "5xx"
                if kind:
                    proxy.injected[kind] += 1
                    proxy.log.append((operation, kind))
                proxy.streak = proxy.streak + 1 if kind else 0
                proxy.longest_streak = max(proxy.longest_streak, proxy.streak)
                answer = None
                if kind == "throttle":
                    answer = _throttle(_protocol(headers, body))
                elif kind == "5xx":
                    answer = _server_error(_protocol(headers, body), rng)
            if kind == "reset":
                # RST, not FIN: the client sees "connection reset by peer"
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                self.connection.close()
                return
            status, answer_headers, answer_body = answer or self._forward(body)
            self.send_response(status)
            for key, value in answer_headers.items():
                if key.lower() not in _SKIPPED:
                    self.send_header(key, value)
            length = None
            if self.command == "HEAD":  # the object's size, not the empty body's
                length = {k.lower(): v for k, v in answer_headers.items()}.get("content-length")
            self.send_header("Content-Length", length or str(len(answer_body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer_body)

        def _forward(self, body: bytes) -> tuple[int, dict, bytes]:
            upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _SKIPPED}
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                return response.status, dict(response.getheaders()), response.read()
            finally:
                upstream.close()

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        def finish(self) -> None:
            with contextlib.suppress(OSError):  # a reset connection
                super().finish()

        def log_message(self, *_: object) -> None:
            pass

    with serving(Handler, detached=True) as proxy.url:
        yield proxy
