"""The container's ``serve`` entry point, for the runtime twin.

In the image, ``serve`` calls ``sagemaker_containers._server.start(SAGEMAKER_SERVING_MODULE)``:
it installs the model's code directory with pip (a generated ``setup.py``, ``python -m pip
install .``), then starts gunicorn with gevent workers on the serving module. This runs that
same function, with two local changes only: nginx is off (``SAGEMAKER_USE_NGINX=false``, set
by the caller), and gunicorn's bind address ``0.0.0.0:<port>`` becomes ``127.0.0.1:<port>``
so that nothing listens beyond loopback. Everything else (the install, gunicorn's command,
the signal handling, the wait) is the library's own code.
"""

from __future__ import annotations

import subprocess
from typing import Any

ANY_ADDRESS = "0.0.0.0:"
LOOPBACK = "127.0.0.1:"


def loopback_popen(popen: Any) -> Any:
    """``subprocess.Popen`` that starts gunicorn on loopback instead of every interface."""

    def start(command: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(command, list) and command[:1] == ["gunicorn"]:
            command = [
                LOOPBACK + part[len(ANY_ADDRESS) :] if part.startswith(ANY_ADDRESS) else part
                for part in command
            ]
        return popen(command, *args, **kwargs)

    return start


def main() -> None:
    from sagemaker_containers import _env, _server

    subprocess.Popen = loopback_popen(subprocess.Popen)  # type: ignore[misc]
    _server.start(_env.ServingEnv().framework_module)


if __name__ == "__main__":
    main()
