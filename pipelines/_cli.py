"""What the pipeline CLIs share: loading a pipeline module and validating ``--kwargs``.

Errors are ``CliError``: the CLIs print them as one line and exit with code 2, before
anything is written or sent. The SageMaker SDK is imported only once ``check_environment``
has passed: importing it builds a client, which a bad ``AWS_MAX_ATTEMPTS`` or
``AWS_ENDPOINT_URL`` turns into a traceback.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable
from typing import Any

from common import aws_sessions
from common.exit_codes import USAGE_ERROR

__all__ = [
    "USAGE_ERROR",
    "CliError",
    "build_pipeline",
    "check_environment",
    "check_kwargs",
    "load_get_pipeline",
    "parse_json_option",
]


class CliError(Exception):
    """A usage error: bad module, bad or incomplete ``--kwargs``."""


def check_environment() -> None:
    """The AWS settings of the environment botocore would fail on, as a ``CliError``."""
    try:
        aws_sessions.check_environment()
    except aws_sessions.AwsSettingError as error:
        raise CliError(str(error)) from None


def load_get_pipeline(module_name: str) -> Callable[..., Any]:
    """Import ``module_name`` and return its ``get_pipeline`` function."""
    check_environment()  # the module imports the SDK, which builds a client
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise CliError(
            f"--module-name {module_name!r}: cannot import {error.name!r}; "
            "use a dotted path such as pipelines.batch_inference.pipeline"
        ) from None
    from pipelines import sdk

    sdk.quiet_sdk_logging()  # after the import: the SDK sets its loggers up while importing
    get_pipeline = getattr(module, "get_pipeline", None)
    if not callable(get_pipeline):
        raise CliError(f"--module-name {module_name!r} has no get_pipeline() function")
    return get_pipeline


def parse_json_option(option: str, text: str | None, expected: type) -> Any:
    """Parse a JSON-valued option, naming the option in the error."""
    if text is None:
        return expected()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise CliError(f"{option} is not valid JSON ({error.msg} at char {error.pos})") from None
    if not isinstance(value, expected):
        raise CliError(f"{option} must be a JSON {expected.__name__}, got {type(value).__name__}")
    return value


def check_kwargs(
    get_pipeline: Callable[..., Any], kwargs: dict[str, Any], provided: tuple[str, ...] = ()
) -> None:
    """Reject unknown and missing keyword arguments of ``get_pipeline`` by name.

    ``provided`` names arguments the CLI itself supplies (e.g. the SageMaker session).
    """
    signature = inspect.signature(get_pipeline)
    accepted = {
        name
        for name, p in signature.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise CliError(
            f"--kwargs has unknown key(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(sorted(accepted - set(provided)))}"
        )
    missing = sorted(
        name
        for name, p in signature.parameters.items()
        if name in accepted and p.default is p.empty and name not in kwargs and name not in provided
    )
    if missing:
        raise CliError(f"--kwargs is missing required key(s) {', '.join(missing)}")


def build_pipeline(get_pipeline: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """Call ``get_pipeline``; argument values it rejects become a usage error."""
    try:
        return get_pipeline(**kwargs)
    except (TypeError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise CliError(f"--kwargs rejected by get_pipeline: {first_line}") from None


def describe(definition: dict[str, Any]) -> str:
    """A short human summary of a pipeline definition: steps in order and parameters."""
    steps = " -> ".join(f"{s['Name']} ({s['Type']})" for s in definition["Steps"])
    parameters = ", ".join(
        f"{p['Name']}={p['DefaultValue']}" if "DefaultValue" in p else f"{p['Name']} (required)"
        for p in definition["Parameters"]
    )
    return f"steps: {steps}\nparameters: {parameters}"
