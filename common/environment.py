"""Temporarily overridden environment variables (restored even when the block raises)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def overridden(variables: dict[str, str]) -> Iterator[None]:
    """Set ``variables`` for the block, then restore each one's previous value (or absence).

    Not thread-safe: it edits ``os.environ``.
    """
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
