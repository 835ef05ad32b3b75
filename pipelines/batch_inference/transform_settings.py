"""How the BatchTransform step sends its requests: how many at a time per instance, how
large, how long each may take and how often a failed one is retried.

Each value is a definition-time setting of the stage file (``transform_max_concurrent``,
``transform_max_payload_mb``, ``transform_timeout_seconds``, ``transform_max_retries``);
without one, the default below, chosen for the scikit-learn image's serving stack (the
README's "Transform requests" table gives each reason):

- ``MaxConcurrentTransforms``: one request per gunicorn worker, and the image's stack
  (sagemaker-containers 2.8.6, ``_server.start``) runs ``SAGEMAKER_MODEL_SERVER_WORKERS``
  workers, by default ``multiprocessing.cpu_count()``: one per vCPU of the instance type
  (``pipelines/instance_types.py``);
- ``MaxPayloadInMB``: 6 MB mini-batches, the serving stack's measured optimum
  (docs/benchmarks.md, "The real serving stack"), lowered on large types so that
  ``MaxConcurrentTransforms x MaxPayloadInMB`` stays within AWS's 100 MB;
- ``InvocationsTimeoutInSeconds``: 60 s, the stack's own limit (gunicorn's ``--timeout`` and
  nginx's ``proxy_read_timeout`` are ``SAGEMAKER_MODEL_SERVER_TIMEOUT``, 60 by default): a
  longer wait than the container's never gets an answer;
- ``InvocationsMaxRetries``: 3, AWS's default, on purpose: a retry costs at most one timeout.

No SDK import here: ``build.py`` checks a stage file with it before any AWS call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipelines.instance_types import UnknownInstanceType, instance_type

# AWS (CreateTransformJob, MaxPayloadInMB): "cannot be greater than 100 MB. If you specify the
# MaxConcurrentTransforms parameter, the value of (MaxConcurrentTransforms * MaxPayloadInMB)
# also cannot exceed 100 MB." Both are set here, so both limits hold.
PAYLOAD_BUDGET_MB = 100
DEFAULT_PAYLOAD_MB = 6
DEFAULT_TIMEOUT_SECONDS = 60
DEFAULT_MAX_RETRIES = 3
# ModelClientConfig's ranges in botocore's SageMaker model
TIMEOUT_RANGE = (1, 3600)
RETRIES_RANGE = (0, 3)

# the stage file's names, in the order of the CreateTransformJob fields they set
SETTING_NAMES = (
    "transform_max_concurrent",
    "transform_max_payload_mb",
    "transform_timeout_seconds",
    "transform_max_retries",
)


class TransformSettingsError(ValueError):
    """Settings AWS would refuse or that cannot be resolved: the message names the stage
    file's setting and the fix."""


@dataclass(frozen=True)
class TransformRequests:
    """The resolved values, as the CreateTransformJob request carries them."""

    max_concurrent: int
    max_payload_mb: int
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    max_retries: int = DEFAULT_MAX_RETRIES

    def stage_values(self) -> dict[str, int]:
        """The values by the stage file's names (build.py writes them into the tfvars: the
        deployment records what its definition sends)."""
        values = (self.max_concurrent, self.max_payload_mb, self.timeout_seconds, self.max_retries)
        return dict(zip(SETTING_NAMES, values, strict=True))

    def model_client_config(self) -> dict[str, int]:
        return {
            "InvocationsTimeoutInSeconds": self.timeout_seconds,
            "InvocationsMaxRetries": self.max_retries,
        }


def workers_per_instance(name: str) -> int:
    """How many requests the image's serving stack answers at once on ``name``: one gunicorn
    worker per vCPU (``UnknownInstanceType`` for a type the table does not list)."""
    return instance_type(name).vcpus


def transform_requests(
    transform_instance_type: str,
    *,
    max_concurrent: int | None = None,
    max_payload_mb: int | None = None,
    timeout_seconds: int | None = None,
    max_retries: int | None = None,
) -> TransformRequests:
    """The values for ``transform_instance_type``, each given one overriding its default."""
    if max_concurrent is None:
        try:
            max_concurrent = workers_per_instance(transform_instance_type)
        except UnknownInstanceType as unknown:
            raise TransformSettingsError(
                f"transform_instance_type {transform_instance_type}: {unknown}, or set "
                "transform_max_concurrent in the stage file to its vCPU count (the image's "
                "serving stack answers one request per vCPU at a time)"
            ) from None
        derived = f"transform_instance_type {transform_instance_type}'s {max_concurrent} vCPUs"
    else:
        derived = f"transform_max_concurrent {max_concurrent}"
    _check_whole("transform_max_concurrent", max_concurrent, 1, PAYLOAD_BUDGET_MB)
    if max_payload_mb is None:
        max_payload_mb = min(DEFAULT_PAYLOAD_MB, PAYLOAD_BUDGET_MB // max_concurrent)
    _check_whole("transform_max_payload_mb", max_payload_mb, 1, PAYLOAD_BUDGET_MB)
    if max_concurrent * max_payload_mb > PAYLOAD_BUDGET_MB:
        raise TransformSettingsError(
            f"transform_max_payload_mb {max_payload_mb} x {derived} = "
            f"{max_concurrent * max_payload_mb} MB in flight per instance, over AWS's "
            f"{PAYLOAD_BUDGET_MB} MB (MaxConcurrentTransforms x MaxPayloadInMB): set "
            f"transform_max_payload_mb to {PAYLOAD_BUDGET_MB // max_concurrent} or less, or "
            f"transform_max_concurrent to {PAYLOAD_BUDGET_MB // max_payload_mb} or less"
        )
    timeout_seconds = DEFAULT_TIMEOUT_SECONDS if timeout_seconds is None else timeout_seconds
    _check_whole("transform_timeout_seconds", timeout_seconds, *TIMEOUT_RANGE)
    max_retries = DEFAULT_MAX_RETRIES if max_retries is None else max_retries
    _check_whole("transform_max_retries", max_retries, *RETRIES_RANGE)
    return TransformRequests(max_concurrent, max_payload_mb, timeout_seconds, max_retries)


def of_stage(stage_config: Mapping[str, Any], default_instance_type: str) -> TransformRequests:
    """The stage file's values (``transform_instance_type`` and the four settings; a whole
    number given as ``4.0`` counts as 4)."""

    def whole(name: str) -> int | None:
        value = stage_config.get(name)
        return None if value is None else int(value)

    return transform_requests(
        stage_config.get("transform_instance_type") or default_instance_type,
        max_concurrent=whole("transform_max_concurrent"),
        max_payload_mb=whole("transform_max_payload_mb"),
        timeout_seconds=whole("transform_timeout_seconds"),
        max_retries=whole("transform_max_retries"),
    )


def _check_whole(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise TransformSettingsError(
            f"{name} must be a whole number from {low} to {high}, got {value!r}"
        )
