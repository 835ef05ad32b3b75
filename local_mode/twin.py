"""Where the runtime twin of SageMaker's scikit-learn image lives, and which image it is.

The twin is a virtualenv on the image's Python with the image's packages at its versions
(``requirements-sklearn-1.9-0.lock``, installed by ``make twin``). Local mode runs the
Processing script, the model's serving stack and the sample model's training in it, so what
passes here passes on the versions SageMaker runs.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

IMAGE_VERSION = "1.9-0"  # the sagemaker-scikit-learn image tag the twin follows
PYTHON_VERSION = (3, 12)
REPOSITORY = Path(__file__).resolve().parents[1]
LOCK = REPOSITORY / f"requirements-sklearn-{IMAGE_VERSION}.lock"
VENV = REPOSITORY / f".venv-sklearn-{IMAGE_VERSION}"
PYTHON_VARIABLE = "SKLEARN_TWIN_PYTHON"  # another twin's interpreter, e.g. in a packaged setup
CONTAINER_CODE = Path(__file__).with_name("sklearn_image")  # what runs inside the twin


class TwinMissing(Exception):
    """The twin is not installed: the message says how to install it."""


def python() -> Path:
    """The twin's interpreter (``$SKLEARN_TWIN_PYTHON``, else the repository's venv)."""
    configured = os.environ.get(PYTHON_VARIABLE)
    interpreter = Path(configured) if configured else VENV / "bin" / "python"
    if not interpreter.is_file():
        raise TwinMissing(
            f"the scikit-learn {IMAGE_VERSION} image's runtime twin is not installed "
            f"({interpreter} is missing): run `make twin`"
        )
    return interpreter


@functools.cache
def site_packages(interpreter: Path) -> Path:
    """The interpreter's site-packages folder (asked once per interpreter)."""
    return Path(
        subprocess.run(
            [str(interpreter), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )


def lock_pins(lock: Path = LOCK) -> dict[str, str]:
    """``{package: version}`` of the twin's lock file."""
    pins = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        name, separator, version = line.partition("==")
        if separator and not line.startswith("#"):
            pins[name.strip().lower()] = version.strip()
    return pins
