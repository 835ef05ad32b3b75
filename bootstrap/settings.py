"""The bootstrap's inputs: a root's tfvars file and a stage file, checked before anything
runs, so a bad input stops the command before Terraform, AWS or GitHub are touched."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2

from common.exit_codes import USAGE_ERROR, CommandFailed

REPO = Path(__file__).resolve().parents[1]
TARGET_ROOT = REPO / "infra" / "target-account"
DEV_ROOT = REPO / "infra" / "dev-account"
STAGES = ("preprod", "prod")
STAGE_FILES = {"preprod": "pre-prod-config.tfvars.json", "prod": "prod-config.tfvars.json"}
GUIDE = "docs/deploying-to-aws.md"
# what every root needs and the bootstrap reads itself
COMMON = ("region", "project_name", "model_package_group_name", "github_repository")
REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class RootVariables:
    """A root's tfvars file: its path (Terraform reads it) and the values the bootstrap uses."""

    path: Path
    values: dict[str, Any]

    @property
    def project(self) -> str:
        return str(self.values["project_name"])

    @property
    def region(self) -> str:
        return str(self.values["region"])

    @property
    def group(self) -> str:
        return str(self.values["model_package_group_name"])

    @property
    def repository(self) -> str:
        return str(self.values["github_repository"])


def check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise CommandFailed(f"unknown stage {stage!r}: use one of {', '.join(STAGES)}")
    return stage


def _unquoted(value: Any) -> Any:
    """python-hcl2 keeps a string's quotes; Terraform does not."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [_unquoted(item) for item in value]
    return value


def read_tfvars(path: Path, required: tuple[str, ...] = COMMON) -> RootVariables:
    """``path`` parsed, with the variables the bootstrap needs present."""
    if not path.is_file():
        raise CommandFailed(
            f"{path}: no such file: write it from the example in {GUIDE} (section 1)",
            USAGE_ERROR,
        )
    try:
        parsed = hcl2.loads(path.read_text(encoding="utf-8"))
    except Exception as error:  # python-hcl2 raises lark's errors, several kinds
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CommandFailed(f"{path}: not a valid tfvars file ({first}): fix its syntax") from None
    values = {k: _unquoted(v) for k, v in parsed.items() if not k.startswith("__")}
    missing = [name for name in required if values.get(name) in (None, "")]
    if missing:
        raise CommandFailed(f"{path}: {', '.join(missing)} not set: add them ({GUIDE}, section 1)")
    if not REPOSITORY.match(str(values["github_repository"])):
        raise CommandFailed(f"{path}: github_repository must be owner/name")
    return RootVariables(path, values)


def target_tfvars(stage: str, path: Path | None = None) -> RootVariables:
    """The target root's tfvars of ``stage`` (default ``infra/target-account/<stage>.tfvars``),
    whose ``environment`` must be the stage: the roles trust the GitHub environment it names."""
    variables = read_tfvars(
        path or TARGET_ROOT / f"{check_stage(stage)}.tfvars", (*COMMON, "environment")
    )
    if variables.values["environment"] != stage:
        raise CommandFailed(
            f"{variables.path}: environment = {variables.values['environment']!r}, "
            f"not {stage!r}: use the stage's own tfvars file"
        )
    return variables


def dev_tfvars(path: Path | None = None) -> RootVariables:
    return read_tfvars(path or DEV_ROOT / "dev.tfvars", (*COMMON, "model_artifacts_bucket"))


def stage_file(stage: str, path: Path | None = None) -> dict[str, Any]:
    """The stage's settings file (``pre-prod-config.tfvars.json`` / ``prod-config.tfvars.json``)."""
    path = path or REPO / STAGE_FILES[check_stage(stage)]
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CommandFailed(f"{path}: no such file: restore it from git") from None
    except json.JSONDecodeError as error:
        raise CommandFailed(f"{path}: not JSON ({error}): fix it") from None
    if not isinstance(settings, dict):
        raise CommandFailed(f"{path}: not a JSON object: fix it")
    return settings
