"""The stage file (``pre-prod-config.tfvars.json`` / ``prod-...``), read and checked offline.

Its keys are the variables of ``batch-config-template.tf`` a team sets per stage, and
``build.py`` copies them into the tfvars. They are checked here, before any AWS call, so a
typo (``run_on_uplaod``) or a wrong type (``"input_data_url": 5``) is one line naming the key,
not a silent default nor a Terraform error after the package was promoted. The rules repeat
the template's validations; ``tests/test_terraform.py`` keeps both in step.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.partitions import check_format
from promotion.errors import UsageError


@dataclass(frozen=True)
class Setting:
    """One settable variable: its Terraform type, whether null is allowed, and its rule."""

    terraform_type: str  # "string", "number" or "bool"
    rule: str = ""  # what a valid value looks like, for the error
    valid: Callable[[Any], bool] = lambda value: True
    nullable: bool = False


def _matches(pattern: str) -> Callable[[Any], bool]:
    return lambda value: re.fullmatch(pattern, value) is not None


def _whole(low: int, high: int | None = None) -> Callable[[Any], bool]:
    return lambda value: value == int(value) and value >= low and (high is None or value <= high)


_INSTANCE = _matches(r"ml\.[a-z0-9]+\.[a-z0-9]+")
_S3_URI = _matches(r"s3://[^/]+(/.*)?")

SETTINGS: dict[str, Setting] = {
    "environment": Setting("string", "preprod or prod", _matches("preprod|prod")),
    "schedule_expression": Setting(
        "string",
        "rate(N unit) or cron(6 fields)",
        lambda v: bool(
            re.fullmatch(r"rate\(([1-9][0-9]*) (minute|minutes|hour|hours|day|days)\)", v)
            or re.fullmatch(r"cron\(\S+ \S+ \S+ \S+ \S+ \S+\)", v)
        ),
    ),
    "processing_instance_type": Setting("string", "an instance type like ml.m5.xlarge", _INSTANCE),
    "processing_instance_count": Setting("number", "a whole number >= 1", _whole(1)),
    "transform_instance_type": Setting("string", "an instance type like ml.m5.xlarge", _INSTANCE),
    "transform_instance_count": Setting("number", "a whole number >= 1", _whole(1)),
    "run_on_upload": Setting("bool", "true or false"),
    "upload_max_running": Setting("number", "a whole number from 1 to 50", _whole(1, 50)),
    "upload_max_wait_hours": Setting("number", "a whole number from 1 to 48", _whole(1, 48)),
    "smoke_input": Setting(
        "string",
        "a repository-relative path to a .csv file, or null",
        _matches(r"[^/].*\.csv"),
        nullable=True,
    ),
    "alarm_email": Setting(
        "string", "an email address, or null", _matches(r"[^@\s]+@[^@\s]+"), nullable=True
    ),
    "pipeline_name": Setting(
        "string",
        "a SageMaker pipeline name (letters, digits and hyphens, at most 256)",
        _matches(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}"),
    ),
    "max_rejected_fraction": Setting("number", "a share from 0 to 1", lambda v: 0 <= v <= 1),
    "max_drift_score": Setting("number", "a PSI limit of 0 or more", lambda v: v >= 0),
    "quality_gate_mode": Setting("string", "fail or warn", _matches("fail|warn")),
    "partition_format": Setting(
        "string",
        "a strftime pattern of folders with %Y, %m and %d once each, like dt=%Y-%m-%d",
        lambda v: check_format(v) is None,
    ),
    "input_data_url": Setting("string", "an s3:// URI", _S3_URI),
    "output_data_url": Setting("string", "an s3:// URI", _S3_URI),
}

_PYTHON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda value: isinstance(value, str),
    # JSON numbers; true/false are not numbers to Terraform
    # (1e999 is valid JSON that Python reads as inf: no setting takes an infinite number)
    "number": lambda value: (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ),
    "bool": lambda value: isinstance(value, bool),
}


def check_setting(name: str, value: Any) -> str | None:
    """Why ``value`` is not a valid ``name``, or None."""
    setting = SETTINGS[name]
    if value is None:
        return None if setting.nullable else f"{name} must be {setting.rule}, not null"
    if not _PYTHON_TYPES[setting.terraform_type](value):
        kind = {"string": "a string", "number": "a number", "bool": "true or false"}
        return f"{name} must be {kind[setting.terraform_type]} ({setting.rule}), got {value!r}"
    if not setting.valid(value):
        return f"{name} must be {setting.rule}, got {value!r}"
    return None


class _NotJson(Exception):
    """Python's json reads NaN and Infinity; JSON and Terraform do not."""


def _not_json(constant: str) -> Any:
    raise _NotJson(constant)


def load_stage_config(path: Path, stage: str) -> dict[str, Any]:
    """The stage file's settings, every key known and every value valid, or a UsageError."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"), parse_constant=_not_json)
    except _NotJson as error:
        raise UsageError(
            f"stage config {path}: {error} is not JSON (Terraform refuses it); write a number"
        ) from None
    except FileNotFoundError:
        raise UsageError(f"stage config {path} does not exist; pass --config") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"stage config {path} cannot be read: {error}") from None
    except json.JSONDecodeError as error:
        raise UsageError(
            f"stage config {path} is not valid JSON: {error.msg} at line {error.lineno}"
        ) from None
    if not isinstance(document, dict):
        raise UsageError(f"stage config {path} must hold a JSON object")
    for name, value in document.items():
        if name not in SETTINGS:
            close = difflib.get_close_matches(name, SETTINGS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(SETTINGS)}"
            raise UsageError(f"stage config {path}: unknown setting {name!r}; {hint}")
        problem = check_setting(name, value)
        if problem:
            raise UsageError(f"stage config {path}: {problem}")
    if document.get("environment", stage) != stage:
        raise UsageError(
            f"stage config {path} is for environment {document['environment']!r}, "
            f"not {stage!r}; pass the matching --config"
        )
    return document
