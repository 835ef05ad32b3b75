"""A request handler served on a free loopback port: the stand-in servers the tests talk to
(GitHub's API, proxies in front of the emulator) start and stop the same way."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], *, detached: bool = False) -> Iterator[str]:
    """``handler`` on ``127.0.0.1``, its base URL; shut down and closed afterwards.
    ``detached``: closing does not wait for requests still being handled (a test's slow or
    vanished clients)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = detached
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
