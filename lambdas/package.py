"""Build a Lambda's deployment zip, byte for byte the same on every build.

Usage: ``python -m lambdas.package <output.zip> [--function start-upload-run|start-scheduled-run]``
(default: the dispatch Lambda of infra/dev-account).

Terraform updates the function when ``filebase64sha256()`` of the zip changes, so the zip
must depend on the sources' bytes only: ``handler.py`` at the root (and, for the stage's
functions, the ``common`` and ``stage_runtime`` packages whole, at their paths; the schedule's zip
also carries the run-outcome function as ``record_run_outcome.py``: one zip, two
functions, both importing the same modules), each with a fixed
timestamp (1980-01-01, the earliest a zip can hold), fixed permissions (0644) and a fixed
compression level, instead of the file's mtime and mode from the checkout.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HANDLER = REPO / "lambdas" / "dispatch_deploy" / "handler.py"
UPLOAD_HANDLER = REPO / "lambdas" / "start_upload_run" / "handler.py"
SCHEDULE_HANDLER = REPO / "lambdas" / "start_scheduled_run" / "handler.py"
OUTCOME_HANDLER = REPO / "lambdas" / "record_run_outcome" / "handler.py"
OUTCOME_ENTRY = "record_run_outcome.py"  # its Lambda handler: record_run_outcome.handler
# what the stage functions' handlers import besides the standard library and boto3: these
# packages, zipped whole (a module added to them is shipped without a list to keep)
RUNTIME_PACKAGES = ("common", "stage_runtime")
# data files the runtime packages read (a run's cost reads the shipped price table)
RUNTIME_DATA = ("stage_runtime/sagemaker_prices.json",)


def runtime_modules() -> tuple[str, ...]:
    """Every module of the runtime packages, by its path in the zip (sorted: reproducible)."""
    return tuple(
        sorted(
            path.relative_to(REPO).as_posix()
            for package in RUNTIME_PACKAGES
            for path in (REPO / package).rglob("*.py")
        )
    )


FUNCTIONS = {
    "dispatch-deploy": HANDLER,
    "start-upload-run": UPLOAD_HANDLER,
    "start-scheduled-run": SCHEDULE_HANDLER,
}
STAGE_HANDLERS = (SCHEDULE_HANDLER, UPLOAD_HANDLER)
# other entry points a zip carries at its root
ENTRIES = {SCHEDULE_HANDLER: ((OUTCOME_ENTRY, OUTCOME_HANDLER),)}
ENTRY_NAME = "handler.py"
FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
COMPRESS_LEVEL = 9


def _entry(name: str) -> zipfile.ZipInfo:
    entry = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
    entry.compress_type = zipfile.ZIP_DEFLATED
    entry.create_system = 3  # Unix, whatever the build machine: the mode below is a Unix one
    entry.external_attr = (0o100000 | FILE_MODE) << 16  # regular file, rw-r--r--
    return entry


def build_zip(output: Path, source: Path = HANDLER) -> str:
    """Write the zip of ``source`` (and the modules it needs) to ``output`` (parents
    created); return its sha256 in hex.

    Written to a temporary file then renamed, so a failed build never leaves a partial zip
    for Terraform to upload.
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    entries = [(ENTRY_NAME, Path(source)), *ENTRIES.get(Path(source).resolve(), ())]
    if Path(source).resolve() in STAGE_HANDLERS:
        entries += [(name, REPO / name) for name in (*runtime_modules(), *RUNTIME_DATA)]
    descriptor, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
    try:
        with os.fdopen(descriptor, "wb") as stream, zipfile.ZipFile(stream, "w") as archive:
            for name, path in entries:
                archive.writestr(_entry(name), path.read_bytes(), compresslevel=COMPRESS_LEVEL)
        os.chmod(temporary, FILE_MODE)  # mkstemp makes it 0600
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return hashlib.sha256(output.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    """CLI: build the zip and print its path and sha256 (hex, and base64 as Terraform shows it)."""
    parser = argparse.ArgumentParser(
        prog="python -m lambdas.package", description=__doc__.splitlines()[0]
    )
    parser.add_argument("output", type=Path, help="path of the zip to write")
    parser.add_argument("--function", choices=sorted(FUNCTIONS), default="dispatch-deploy")
    args = parser.parse_args(argv)
    digest = build_zip(args.output, FUNCTIONS[args.function])
    base64_digest = base64.b64encode(bytes.fromhex(digest)).decode("ascii")
    print(f"{args.output} sha256={digest} base64sha256={base64_digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
