"""The stage file (``pre-prod-config.tfvars.json`` / ``prod-...``), read and checked offline.

Its keys are the variables of ``batch-config-template.tf`` a team sets per stage, and
``build.py`` copies them into the tfvars. They are checked here, before any AWS call, so a
typo (``run_on_uplaod``) or a wrong type (``"input_data_url": 5``) is one line naming the key,
not a silent default nor a Terraform error after the package was promoted. The rules repeat
the template's validations; ``tests/test_terraform.py`` keeps both in step.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
from botocore.model import StringShape

from pipelines import shadow_settings as shadow
from pipelines.batch_inference import processing_settings as processing
from pipelines.batch_inference import transform_settings as transform
from promotion.errors import UsageError
from stage_runtime import freshness
from stage_runtime.partitions import check_format
from stage_runtime.run_cost import instance_prices_problem


@dataclass(frozen=True)
class Setting:
    """One settable variable: its Terraform type, whether null is allowed, and its rule."""

    terraform_type: str  # "string", "number", "bool", "object" or "map(number)"
    rule: str = ""  # what a valid value looks like, for the error
    valid: Callable[[Any], bool] = lambda value: True
    nullable: bool = False
    # an object's own check: why a value is wrong (naming the field), or None
    problem: Callable[[Any], str | None] | None = None


def _matches(pattern: str) -> Callable[[Any], bool]:
    return lambda value: re.fullmatch(pattern, value) is not None


def _whole(low: int, high: int | None = None) -> Callable[[Any], bool]:
    return lambda value: value == int(value) and value >= low and (high is None or value <= high)


_INSTANCE = _matches(r"ml\.[a-z0-9]+\.[a-z0-9]+")


@functools.cache
def _offered(shape: str) -> frozenset[str]:
    """The instance types a SageMaker job takes, from botocore's model of the API (offline):
    ``ProcessingInstanceType``, ``TransformInstanceType``."""
    found = botocore.session.get_session().get_service_model("sagemaker").shape_for(shape)
    assert isinstance(found, StringShape), f"{shape} is not an enumeration in botocore's model"
    return frozenset(found.enum)


def _instance_problem(name: str, shape: str, job: str) -> Callable[[Any], str | None]:
    """A setting's instance type must be one the job takes: the API refuses another at run
    time (e.g. no ml.r5 for Batch Transform), long after the deploy."""

    def problem(value: Any) -> str | None:
        if not _INSTANCE(value):
            return f"{name} must be an instance type like ml.m5.xlarge, got {value!r}"
        offered = _offered(shape)
        if value in offered:
            return None
        family = value.rsplit(".", 1)[0]
        sizes = sorted(
            (v for v in offered if v.startswith(f"{family}.")), key=lambda v: (len(v), v)
        )
        instead = f"{family} offers {', '.join(sizes)}" if sizes else "e.g. ml.m5.xlarge"
        return (
            f"{name} {value!r} is not an instance type SageMaker offers for {job} (the API's "
            f"{shape}); {instead}"
        )

    return problem


_S3_URI = _matches(r"s3://[^/]+(/.*)?")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# The endpoint block's fields: (rule, check); the template's optional() defaults fill the rest.
_ENDPOINT_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "enabled": ("true or false", lambda v: isinstance(v, bool)),
    "instance_type": (
        "an instance type real-time endpoints take (the API's ProductionVariantInstanceType), "
        "like ml.m5.large",
        lambda v: isinstance(v, str) and v in _offered("ProductionVariantInstanceType"),
    ),
    "min_instance_count": ("a whole number >= 1", lambda v: _is_number(v) and _whole(1)(v)),
    "max_instance_count": ("a whole number >= 1", lambda v: _is_number(v) and _whole(1)(v)),
    "target_invocations_per_instance": ("a number > 0", lambda v: _is_number(v) and v > 0),
    "scale_in_cooldown_seconds": ("a whole number >= 0", lambda v: _is_number(v) and _whole(0)(v)),
    "latency_p99_threshold_ms": ("a number > 0", lambda v: _is_number(v) and v > 0),
    "alarm_on_no_invocations": ("true or false", lambda v: isinstance(v, bool)),
    "serverless": ("an object or null", lambda v: v is None or isinstance(v, dict)),
    "data_capture": ("an object or null", lambda v: v is None or isinstance(v, dict)),
}
_SERVERLESS_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "memory_size_in_mb": (
        "1024, 2048, 3072, 4096, 5120 or 6144",
        lambda v: _is_number(v) and v in (1024, 2048, 3072, 4096, 5120, 6144),
    ),
    "max_concurrency": (
        "a whole number from 1 to 200",
        lambda v: _is_number(v) and _whole(1, 200)(v),
    ),
    "without_network_isolation": ("true or false", lambda v: isinstance(v, bool)),
}
# the template's serverless fields that have a default (optional() there)
_SERVERLESS_OPTIONAL = {"without_network_isolation"}
_CAPTURE_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "enabled": ("true or false", lambda v: isinstance(v, bool)),
    "sampling_percentage": (
        "a whole number from 1 to 100",
        lambda v: _is_number(v) and _whole(1, 100)(v),
    ),
}


def _fields_problem(
    path: str, value: dict[str, Any], fields: dict[str, tuple[str, Callable[[Any], bool]]]
) -> str | None:
    for key, item in value.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(fields)}"
            return f"{path} has no field {key!r}; {hint}"
        rule, valid = fields[key]
        if not valid(item):
            return f"{path}.{key} must be {rule}, got {item!r}"
    return None


def endpoint_problem(value: Any) -> str | None:
    """Why the stage file's ``endpoint`` block is wrong (the template's validations), or None."""
    if not isinstance(value, dict):
        return f"endpoint must be an object (or null), got {value!r}"
    problem = _fields_problem("endpoint", value, _ENDPOINT_FIELDS)
    if problem is None and value.get("serverless") is not None:
        serverless = value["serverless"]
        missing = [
            k for k in _SERVERLESS_FIELDS if k not in serverless and k not in _SERVERLESS_OPTIONAL
        ]
        problem = _fields_problem("endpoint.serverless", serverless, _SERVERLESS_FIELDS) or (
            f"endpoint.serverless needs {' and '.join(missing)}" if missing else None
        )
        if problem is None and serverless.get("without_network_isolation") is not True:
            problem = (
                "endpoint.serverless runs without network isolation and outside the stage's VPC "
                "(AWS: Serverless Inference supports neither): set "
                "endpoint.serverless.without_network_isolation = true to accept that its "
                "container can reach the network, or use an instance-based endpoint (remove "
                "serverless)"
            )
    if problem is None and value.get("data_capture") is not None:
        problem = _fields_problem("endpoint.data_capture", value["data_capture"], _CAPTURE_FIELDS)
    capture = value.get("data_capture")
    serverless_capture = (
        value.get("serverless") and capture is not None and capture.get("enabled", True)
    )
    if problem is None and serverless_capture:
        problem = (
            "endpoint.data_capture is not available for serverless endpoints (AWS: Serverless "
            "Inference does not support data capture); remove one of the two"
        )
    low, high = value.get("min_instance_count", 1), value.get("max_instance_count", 2)
    if problem is None and high < low:
        problem = f"endpoint.max_instance_count ({high}) must be >= min_instance_count ({low})"
    return problem


# EventBridge's schedule expressions (docs: "Using cron and rate expressions to schedule
# rules"): a rate's unit is singular for 1 and plural above; a cron has six fields and a "?"
# in exactly one of day-of-month and day-of-week. Each cron field: (name, characters, range).
_RATE = re.compile(r"rate\((?P<value>[1-9][0-9]*) (?P<unit>minute|hour|day)(?P<plural>s?)\)")
_CRON_FIELDS = (
    ("minutes", r"[0-9,*/-]+", (0, 59)),
    ("hours", r"[0-9,*/-]+", (0, 23)),
    ("day-of-month", r"[0-9,*?/LW-]+", (1, 31)),
    ("month", r"[0-9A-Za-z,*/-]+", (1, 12)),
    ("day-of-week", r"[0-9A-Za-z,*?L#-]+", (1, 7)),
    ("year", r"[0-9,*/-]+", (1970, 2199)),
)


def schedule_problem(value: str) -> str | None:
    """Why EventBridge would refuse ``value`` as a rule's schedule, or None (checked here so
    the apply cannot fail after the package was promoted)."""
    rate = _RATE.fullmatch(value)
    if rate:
        one = rate["value"] == "1"
        if one == bool(rate["plural"]):
            unit = rate["unit"] + ("" if one else "s")
            return (
                f"schedule_expression {value!r}: EventBridge wants the unit singular for 1 "
                f"and plural above, e.g. rate({rate['value']} {unit})"
            )
        return None
    cron = re.fullmatch(r"cron\((.*)\)", value)
    if not cron:
        return f"schedule_expression must be rate(N unit) or cron(6 fields), got {value!r}"
    fields = cron[1].split()
    if len(fields) != 6:
        return (
            f"schedule_expression {value!r} has {len(fields)} cron fields; EventBridge wants 6: "
            "minutes hours day-of-month month day-of-week year, e.g. cron(0 2 * * ? *)"
        )
    for text, (name, characters, (low, high)) in zip(fields, _CRON_FIELDS, strict=True):
        numbers = [int(n) for n in re.findall(r"[0-9]+", text.split("#")[0].split("/")[0])]
        if not re.fullmatch(characters, text) or any(not low <= n <= high for n in numbers):
            return (
                f"schedule_expression {value!r}: its {name} field {text!r} is not "
                f"{low}-{high} with EventBridge's wildcards"
            )
    if (fields[2] == "?") == (fields[4] == "?"):
        return (
            f"schedule_expression {value!r}: EventBridge wants '?' in exactly one of "
            "day-of-month and day-of-week, e.g. cron(0 2 * * ? *)"
        )
    return None


_DAILY_CRON = re.compile(r"cron\((?P<minute>[0-9]{1,2}) (?P<hour>[0-9]{1,2}) [*?] \* [*?] \*\)")


def deadline_problem(settings: dict[str, Any]) -> str | None:
    """Why ``score_by_hours`` cannot be met by the stage's schedule, or None: a schedule that
    fires once a day at HH:MM looks at yesterday then, so a deadline at or before that finds
    every day late (the template's validation agrees). A rate's time of day is the rule's
    creation time, unknown here."""
    hours = settings.get("score_by_hours", freshness.DEFAULT_SCORE_BY_HOURS)
    daily = _DAILY_CRON.fullmatch(settings.get("schedule_expression", ""))
    if daily is None or hours * 60 > int(daily["hour"]) * 60 + int(daily["minute"]):
        return None
    return (
        f"score_by_hours {hours} puts each day's deadline at or before the schedule's run "
        f"({settings['schedule_expression']}: {int(daily['hour']):02d}:{int(daily['minute']):02d}"
        f" UTC, when it scores the day before), so every day would be late; set score_by_hours "
        f"to more than {int(daily['hour'])} plus the hours a run takes"
    )


REPO = Path(__file__).resolve().parents[1]


def smoke_input_problem(value: str, repo: Path = REPO) -> str | None:
    """Why ``value`` is not a CSV file of this repository the smoke run can upload, or None."""
    path = (repo / value).resolve()
    if not value.lower().endswith(".csv") or Path(value).is_absolute():
        return f"smoke_input must be a repository-relative path to a .csv file, got {value!r}"
    if not path.is_relative_to(repo.resolve()):
        return f"smoke_input {value!r} points outside the repository; use a path inside it"
    if not path.is_file():
        return f"smoke_input {value!r} is not a file in the repository ({path})"
    return None


SETTINGS: dict[str, Setting] = {
    "environment": Setting("string", "preprod or prod", _matches("preprod|prod")),
    "schedule_expression": Setting(
        "string", "rate(N unit) or cron(6 fields)", problem=schedule_problem
    ),
    "processing_instance_type": Setting(
        "string",
        "an instance type Processing jobs take, like ml.m5.xlarge",
        problem=_instance_problem(
            "processing_instance_type", "ProcessingInstanceType", "Processing jobs"
        ),
    ),
    "processing_instance_count": Setting("number", "a whole number >= 1", _whole(1)),
    # each Processing instance's storage volume (pipelines/batch_inference/processing_settings.py)
    "processing_volume_size_gb": Setting(
        "number",
        f"{processing.RULE} (GB per Processing instance, AWS's range for VolumeSizeInGB)",
        _whole(*processing.VOLUME_GB_RANGE),
    ),
    "transform_instance_type": Setting(
        "string",
        "an instance type Batch Transform takes, like ml.m5.xlarge",
        problem=_instance_problem(
            "transform_instance_type", "TransformInstanceType", "Batch Transform"
        ),
    ),
    "transform_instance_count": Setting("number", "a whole number >= 1", _whole(1)),
    # how BatchTransform sends its requests (pipelines/batch_inference/transform_settings.py);
    # null: the default for transform_instance_type
    "transform_max_concurrent": Setting(
        "number",
        f"a whole number from 1 to {transform.PAYLOAD_BUDGET_MB}, or null (one per vCPU)",
        _whole(1, transform.PAYLOAD_BUDGET_MB),
        nullable=True,
    ),
    "transform_max_payload_mb": Setting(
        "number",
        f"a whole number from 1 to {transform.PAYLOAD_BUDGET_MB}, or null "
        f"({transform.DEFAULT_PAYLOAD_MB}, less on types of over 16 vCPUs)",
        _whole(1, transform.PAYLOAD_BUDGET_MB),
        nullable=True,
    ),
    "transform_timeout_seconds": Setting(
        "number",
        f"a whole number from 1 to 3600, or null ({transform.DEFAULT_TIMEOUT_SECONDS})",
        _whole(*transform.TIMEOUT_RANGE),
        nullable=True,
    ),
    "transform_max_retries": Setting(
        "number",
        f"a whole number from 0 to 3, or null ({transform.DEFAULT_MAX_RETRIES})",
        _whole(*transform.RETRIES_RANGE),
        nullable=True,
    ),
    "run_on_upload": Setting("bool", "true or false"),
    "upload_max_running": Setting("number", "a whole number from 1 to 50", _whole(1, 50)),
    "upload_max_wait_hours": Setting("number", "a whole number from 1 to 48", _whole(1, 48)),
    "smoke_input": Setting(
        "string",
        "a repository-relative path to a .csv file, or null",
        nullable=True,
        problem=smoke_input_problem,
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
    "max_quality_drop": Setting(
        "number", "a fraction of 0 or more (0.05: 5 % worse than registered)", lambda v: v >= 0
    ),
    "partition_format": Setting(
        "string",
        "a strftime pattern of folders with %Y, %m and %d once each, like dt=%Y-%m-%d",
        lambda v: check_format(v) is None,
    ),
    "input_data_url": Setting("string", "an s3:// URI", _S3_URI),
    "output_data_url": Setting("string", "an s3:// URI", _S3_URI),
    "output_format": Setting("string", "csv or parquet", _matches("csv|parquet")),
    "endpoint": Setting(
        "object", "an endpoint block, or null", nullable=True, problem=endpoint_problem
    ),
    # when each day must be scored by (stage_runtime/freshness.py), and whether it is checked
    "score_by_hours": Setting(
        "number",
        f"a whole number from {freshness.SCORE_BY_HOURS[0]} to {freshness.SCORE_BY_HOURS[1]} "
        "(hours after the day's end, UTC)",
        _whole(*freshness.SCORE_BY_HOURS),
    ),
    "freshness_alarms": Setting("bool", "true or false"),
    # what each run costs (stage_runtime/run_cost.py): the stage's prices over the table's
    "instance_prices": Setting(
        "map(number)",
        'an object of instance types to USD per instance-hour, like {"ml.m5.xlarge": 0.23}',
        problem=instance_prices_problem,
    ),
    "max_backfill_cost_usd": Setting(
        "number",
        "a number of USD of 0 or more, or null (no limit)",
        lambda v: v >= 0,
        nullable=True,
    ),
    # the shadow run in prod's plan job (pipelines/shadow_settings.py): read from the tfvars
    shadow.DAYS: Setting("number", shadow.DAYS_RULE, _whole(*shadow.DAYS_RANGE)),
    shadow.MAX_FLIP_RATE: Setting(
        "number", shadow.FLIP_RATE_RULE, lambda v: 0 <= v <= 1, nullable=True
    ),
    shadow.SHOW_IDS: Setting("bool", "true or false"),
}

_PYTHON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda value: isinstance(value, str),
    # JSON numbers; true/false are not numbers to Terraform
    # (1e999 is valid JSON that Python reads as inf: no setting takes an infinite number)
    "number": lambda value: (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ),
    "bool": lambda value: isinstance(value, bool),
    "object": lambda value: isinstance(value, dict),
    "map(number)": lambda value: isinstance(value, dict),
}


def check_setting(name: str, value: Any) -> str | None:
    """Why ``value`` is not a valid ``name``, or None."""
    setting = SETTINGS[name]
    if value is None:
        return None if setting.nullable else f"{name} must be {setting.rule}, not null"
    if not _PYTHON_TYPES[setting.terraform_type](value):
        kind = {"string": "a string", "number": "a number", "bool": "true or false"}
        kind["object"] = kind["map(number)"] = "an object"
        return f"{name} must be {kind[setting.terraform_type]} ({setting.rule}), got {value!r}"
    if setting.problem is not None:
        return setting.problem(value)
    if not setting.valid(value):
        return f"{name} must be {setting.rule}, got {value!r}"
    return None


class _NotJson(Exception):
    """Python's json reads NaN and Infinity; JSON and Terraform do not."""


def _not_json(constant: str) -> Any:
    raise _NotJson(constant)


class _Repeated(Exception):
    """A key given twice in one object: Python's json keeps the last, Terraform refuses it."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise _Repeated(", ".join(repr(key) for key in repeated))
    return dict(pairs)


def load_stage_config(path: Path, stage: str) -> dict[str, Any]:
    """The stage file's settings, every key known and every value valid, or a UsageError."""
    try:
        document = json.loads(
            path.read_text(encoding="utf-8"),
            parse_constant=_not_json,
            object_pairs_hook=_unique_keys,
        )
    except _NotJson as error:
        raise UsageError(
            f"stage config {path}: {error} is not JSON (Terraform refuses it); write a number"
        ) from None
    except _Repeated as error:
        raise UsageError(
            f"stage config {path}: {error} is given more than once (which one counts cannot "
            "be known; Terraform refuses it); keep one"
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
    problem = deadline_problem(document)
    if problem:
        raise UsageError(f"stage config {path}: {problem}")
    if document.get("environment", stage) != stage:
        raise UsageError(
            f"stage config {path} is for environment {document['environment']!r}, "
            f"not {stage!r}; pass the matching --config"
        )
    return document
