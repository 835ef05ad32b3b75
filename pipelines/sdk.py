"""The one module that imports the SageMaker Python SDK (v3).

Every other module takes SDK classes from here, so an SDK upgrade that moves an import path
touches this file only. Importing SDK v3 has two side effects we neutralise:

* ``sagemaker.mlops`` builds a boto3 client at import time and raises ``NoRegionError`` when no
  region is configured;
* with no credentials in the environment, that client creation probes the EC2 instance
  metadata service, i.e. a network call from a mere ``import``;
* ``sagemaker.core.experiments._metrics`` calls ``logging.basicConfig(level=INFO)``, which
  makes every library's INFO lines (botocore's credential and endpoint lookups) print on
  stderr of any program that imports this module.

Building steps has the same needs (``ProcessingStep`` creates a local-mode client from the
default boto3 session). :func:`quiet_environment` confines both to the block that needs them:
the environment is restored right after it.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from common.environment import overridden


@contextmanager
def quiet_environment(region: str | None = None) -> Iterator[None]:
    """Give the SDK a region and no metadata probing for the duration of the block.

    ``region`` overrides the configured region; without it a placeholder is used only when
    none is configured. Not thread-safe (it edits ``os.environ``): build pipelines from one
    thread.
    """
    # botocore reads AWS_DEFAULT_REGION only, while the docs (and GitHub's AWS actions) set
    # AWS_REGION: the SDK's import-time client needs the region under the name botocore reads
    configured = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    overrides = {
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": region or configured or "us-east-1",
    }
    with overridden(overrides):
        yield


@contextmanager
def _root_logger_untouched() -> Iterator[None]:
    """Undo what the block does to the root logger (the SDK's import-time basicConfig)."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


with quiet_environment(), _root_logger_untouched():
    from sagemaker.core import image_uris
    from sagemaker.core.common_utils import instance_supports_kms
    from sagemaker.core.helper.iam_role_resolver import RoleValidationError
    from sagemaker.core.network import NetworkConfig
    from sagemaker.core.processing import ScriptProcessor
    from sagemaker.core.shapes import (
        ProcessingInput,
        ProcessingOutput,
        ProcessingS3Input,
        ProcessingS3Output,
    )
    from sagemaker.core.transformer import Transformer
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join
    from sagemaker.core.workflow.parameters import (
        ParameterFloat,
        ParameterInteger,
        ParameterString,
    )
    from sagemaker.core.workflow.pipeline_context import PipelineSession
    from sagemaker.core.workflow.pipeline_definition_config import PipelineDefinitionConfig
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.retry import (
        SageMakerJobExceptionTypeEnum,
        SageMakerJobStepRetryPolicy,
        StepExceptionTypeEnum,
        StepRetryPolicy,
    )
    from sagemaker.mlops.workflow.steps import ProcessingStep, TransformStep


def quiet_sdk_logging() -> None:
    """Hide the SDK's build-time chatter (config lookups, popped job names, session notes).

    Command-line tools print their own summary; these INFO/WARNING lines are expected for
    every definition and only bury it.
    """
    for name in ("sagemaker", "sagemaker.config"):  # the SDK sets the latter to INFO if unset
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Running within a PipelineSession")


def _disable_sdk_telemetry() -> None:
    """Stop the SDK from reporting usage to AWS from background threads.

    ``ScriptProcessor.run`` and ``Pipeline.create/start`` each send a request to a public
    telemetry endpoint, even while only *building* a definition; a deployment tool should
    send nothing its user did not ask for, and offline builds must make no connection. The
    SDK's own opt-out (``TelemetryOptOut`` in its config) re-validates the whole config
    schema on every lookup, 0.4 s each and about 25 per build, so the sender is replaced
    instead. Set ``BATCH_MLOPS_SDK_TELEMETRY=on`` to keep the SDK's default behaviour.
    """
    if os.environ.get("BATCH_MLOPS_SDK_TELEMETRY", "").lower() == "on":
        return
    from sagemaker.core.telemetry import telemetry_logging

    telemetry_logging._send_telemetry_request = lambda *args, **kwargs: None
    telemetry_logging._telemetry_msg_shown = True  # its "will collect" banner would be false


_disable_sdk_telemetry()

__all__ = [
    "ExecutionVariables",
    "Join",
    "NetworkConfig",
    "ParameterFloat",
    "ParameterInteger",
    "ParameterString",
    "ParameterizedPipeline",
    "PipelineDefinitionConfig",
    "PipelineSession",
    "ProcessingInput",
    "ProcessingOutput",
    "ProcessingS3Input",
    "ProcessingS3Output",
    "ProcessingStep",
    "RoleValidationError",
    "SageMakerJobExceptionTypeEnum",
    "SageMakerJobStepRetryPolicy",
    "ScriptProcessor",
    "StepExceptionTypeEnum",
    "StepRetryPolicy",
    "TransformStep",
    "Transformer",
    "image_uris",
    "instance_supports_kms",
    "parameterize_definition",
    "quiet_environment",
    "quiet_sdk_logging",
]


def parameterize_definition(
    definition: dict[str, Any], overrides: dict[tuple[str, ...], str]
) -> dict[str, Any]:
    """Replace constants in a definition with ``{"Get": "Parameters.<name>"}`` references.

    SDK v3 types some job fields as plain ``int`` in pydantic shapes, so e.g.
    ``Transformer(instance_count=ParameterInteger(...))`` fails validation although the
    service accepts a parameter there. We build with a constant, then point the field at the
    parameter here. ``overrides`` maps ``(step name, *path inside Arguments)`` to a parameter
    name; a path that does not exist is an error, so an SDK change cannot silently drop it.
    """
    steps = {step["Name"]: step for step in definition["Steps"]}
    for (step_name, *path), parameter in overrides.items():
        if step_name not in steps:
            raise KeyError(f"no step {step_name!r} in the pipeline definition")
        node = steps[step_name]["Arguments"]
        for key in path[:-1]:
            node = node[key]
        if path[-1] not in node:
            raise KeyError(f"step {step_name!r} has no field {'.'.join(path)}")
        node[path[-1]] = {"Get": f"Parameters.{parameter}"}
    return definition


class ParameterizedPipeline(Pipeline):
    """A ``Pipeline`` whose JSON definition gets :func:`parameterize_definition` applied.

    ``upsert()``/``create()`` serialise through ``definition()``, so the deployed pipeline and
    the JSON we write to disk are the same document.
    """

    def __init__(self, *args: Any, parameter_overrides: dict[tuple[str, ...], str], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._parameter_overrides = parameter_overrides

    def definition(self) -> str:
        """Return the SDK's definition with the parameter overrides applied."""
        document = json.loads(super().definition())
        return json.dumps(parameterize_definition(document, self._parameter_overrides))
