"""Local files written whole or not at all: tfvars, rendered definitions, execution records.

A reader (Terraform, a script, the next step) must never see half a file, and a failed write
must not leave its temporary file behind: written next to the target, then renamed over it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from common.exit_codes import USAGE_ERROR, CommandFailed


def check_writable(path: Path) -> None:
    """Raise a one-line ``ValueError`` now if ``path`` could not be written later.

    Called before work whose result would otherwise be lost (a promotion, a render). It
    creates the missing folders and writes and removes a probe file beside the target, so
    read-only file systems and folders that are files count too (permission bits alone
    would not show them to root).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; name a file (e.g. {path / 'out.json'})")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".probe"
        )
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        raise ValueError(f"cannot write {path}: {error.strerror or error}") from None


def check_writable_option(option: str, path: Path) -> None:
    """:func:`check_writable` for a CLI's option, as the one line and exit 2 the pipeline CLIs
    print (``CommandFailed``): before the work whose report would be lost."""
    try:
        check_writable(path)
    except ValueError as error:
        raise CommandFailed(f"{option}: {error}", USAGE_ERROR) from None


def write_text_atomically(path: Path, text: str) -> None:
    """Raises ``ValueError`` for a target that cannot be written (see :func:`check_writable`)."""
    path = Path(path)
    check_writable(path)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o644)  # mkstemp makes it 0600; these files are meant to be read
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise ValueError(f"cannot write {path}: {error.strerror or error}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json_atomically(path: Path, document: Any, **dump_options: Any) -> None:
    """``document`` as indented JSON, keys sorted unless ``sort_keys=False`` is given."""
    options = {"indent": 2, "sort_keys": True, **dump_options}
    write_text_atomically(path, json.dumps(document, **options) + "\n")


def write_execution_record(path: Path, record: dict[str, Any]) -> None:
    """An execution record (local executor, run_pipeline --wait, the demo): times as text."""
    write_json_atomically(path, record, sort_keys=False, default=str)
