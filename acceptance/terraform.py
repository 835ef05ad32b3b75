"""Terraform for the acceptance run: the stage template applied from a copy in the run's folder.

The copy has a local backend (the state stays with the run's report, not in the stage's state
bucket, where a team's own deployments keep theirs) and is applied with the caller's
credentials and Terraform configuration: ``TF_CLI_CONFIG_FILE`` is honoured when set (the test
suite's provider mirror), else Terraform installs the provider from its registry as the
deploy workflow does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# an endpoint's blue/green update alone may take over an hour (deploy-stage.yml)
TIMEOUT_SECONDS = 3 * 60 * 60


AUTOMATION = {"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"}


class TerraformFailed(RuntimeError):
    """A Terraform command exited non-zero; the message ends with its last output lines."""


@dataclass
class Root:
    """A root module's copy in ``directory``, run with ``binary`` in ``environment`` (the
    stage profile's, ``Run.stage_environment``); ``var_file`` is the last one applied (what a
    plan or the destroy must read: its zips, its models)."""

    directory: Path
    binary: str
    environment: dict[str, str]
    var_file: Path | None = None

    @classmethod
    def copy(cls, source: Path, directory: Path, environment: dict[str, str]) -> Root:
        """The root module whose template is ``source`` (with the other .tf files of its
        folder: the moved blocks) copied into ``directory`` with a local backend, and the
        module tree it calls (``terraform/`` beside it) with it, so its relative module
        sources resolve."""
        binary = shutil.which("terraform")
        if binary is None:
            raise TerraformFailed(
                "terraform is not on PATH: install Terraform >= 1.10 (the stage is applied "
                "with it, as the deploy workflow applies it)"
            )
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, directory / "main.tf")
        for other in sorted(source.parent.glob("*.tf")):
            if other != source:
                shutil.copy(other, directory / other.name)
        modules = source.parent / "terraform"
        shutil.copytree(
            modules, directory / modules.name, ignore=shutil.ignore_patterns(".terraform*")
        )
        (directory / "backend_override.tf").write_text('terraform {\n  backend "local" {}\n}\n')
        return cls(directory, binary, environment)

    def run(
        self, *args: str, ok: tuple[int, ...] = (0,), environment: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``terraform <args>`` (in ``environment``, else the root's); ``TerraformFailed`` on
        an exit code not in ``ok``."""
        try:
            result = subprocess.run(
                [self.binary, args[0], "-no-color", *args[1:]],  # options before a path
                cwd=self.directory,
                env={**(environment or self.environment), **AUTOMATION},
                capture_output=True,
                text=True,
                timeout=TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise TerraformFailed(f"terraform {args[0]} did not finish: {error}") from None
        if result.returncode not in ok:
            tail = " ".join((result.stdout[-1500:] + result.stderr[-1500:]).split())
            raise TerraformFailed(f"terraform {args[0]} exited {result.returncode}: {tail}")
        return result

    def apply(self, var_file: Path) -> subprocess.CompletedProcess[str]:
        self.var_file = var_file
        return self.run("apply", "-auto-approve", f"-var-file={var_file}")

    def destroy(
        self, environment: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str] | None:
        """Everything the applies made (nothing to do when none ran)."""
        if self.var_file is None:
            return None
        return self.run("destroy", "-auto-approve", f"-var-file={self.var_file}",
                        environment=environment)  # fmt: skip

    def changes(self) -> list[str]:
        """What a plan right after the last apply would change: ``["address (action)"]``."""
        planned = self.directory / "after-apply.tfplan"
        self.run("plan", "-detailed-exitcode", f"-var-file={self.var_file}", f"-out={planned}",
                 ok=(0, 2))  # fmt: skip
        shown = json.loads(self.run("show", "-json", str(planned)).stdout)
        return [
            f"{change['address']} ({'/'.join(change['change']['actions'])})"
            for change in shown.get("resource_changes", [])
            if change["change"]["actions"] != ["no-op"]
        ]
