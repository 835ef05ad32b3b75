"""What the stage's functions (schedule, run on upload, run outcome) read from the
environment the stage template sets: a missing or malformed variable is a ``ConfigError``
naming it, so the invocation fails with the fix in its message rather than a KeyError."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from stage_runtime import partitions


class ConfigError(ValueError):
    """An environment variable of the function is missing or invalid: fix the deployment."""


def required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise ConfigError(f"environment variable {name} is required and is not set")
    return value


def pipeline_parameters(env: Mapping[str, str]) -> dict[str, str]:
    """``PIPELINE_PARAMETERS``: the runs' pipeline parameters, a JSON object of strings."""
    try:
        parameters = json.loads(required(env, "PIPELINE_PARAMETERS"))
    except json.JSONDecodeError as error:
        raise ConfigError(f"PIPELINE_PARAMETERS is not JSON: {error}") from None
    if not isinstance(parameters, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in parameters.items()
    ):
        raise ConfigError("PIPELINE_PARAMETERS must be a JSON object of strings")
    return parameters


def layout(env: Mapping[str, str]) -> partitions.Layout:
    """``INPUT_DATA_URL``, ``OUTPUT_DATA_URL`` and ``PARTITION_FORMAT``: the stage's days."""
    try:
        return partitions.Layout(
            required(env, "INPUT_DATA_URL"),
            required(env, "OUTPUT_DATA_URL"),
            required(env, "PARTITION_FORMAT"),
        )
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(str(error)) from None


UNBOUNDED = 10**9  # no upper bound: more than nine digits never passes ``whole_number``


def whole_number(env: Mapping[str, str], name: str, least: int, most: int) -> int:
    """``name`` as a whole number from ``least`` to ``most``: ASCII digits only (``str.isdigit``
    takes ``²``, which ``int`` refuses), so a bad value is a ``ConfigError`` naming it."""
    value = required(env, name)
    if not re.fullmatch(r"[0-9]{1,9}", value) or not least <= int(value) <= most:
        bound = f"from {least} to {most}" if most < UNBOUNDED else f">= {least}"
        raise ConfigError(f"{name} must be a whole number {bound}, got {value!r}")
    return int(value)
