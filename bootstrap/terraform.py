"""Terraform in a base root, as the bootstrap runs it: argument lists (no shell), a data
directory per root and account (preprod and prod share ``infra/target-account`` but never
its ``.terraform``), and local state until the state bucket exists."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.exit_codes import EXECUTION_FAILED, USAGE_ERROR, CommandFailed

# the local backend while no state bucket exists; *_override.tf is gitignored, and the
# bootstrap removes the file as soon as Terraform has read it
OVERRIDE = "bootstrap_backend_override.tf"


@dataclass(frozen=True)
class S3Backend:
    """Where a root's state lives once bootstrapped (what ``-backend-config`` completes)."""

    bucket: str
    key: str
    region: str

    def arguments(self, extra: tuple[str, ...] = ()) -> list[str]:
        # no encrypt=true: it would write AES256 instead of the bucket's default SSE-KMS
        settings = [
            f"bucket={self.bucket}",
            f"key={self.key}",
            f"region={self.region}",
            "use_lockfile=true",
            *extra,
        ]
        return [f"-backend-config={setting}" for setting in settings]


@dataclass
class Terraform:
    root: Path
    data_dir: Path
    binary: str = "terraform"
    # more -backend-config entries: the tests' emulator endpoint, never needed on AWS
    backend_extra: tuple[str, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        found = shutil.which(self.binary)
        if found is None:
            raise CommandFailed(
                f"terraform ({self.binary}) is not on PATH: install Terraform 1.11", USAGE_ERROR
            )
        self.binary = found

    def run(self, *args: str, capture: bool = False, ok: tuple[int, ...] = (0,)) -> str:
        """Run ``terraform args``; its output goes to the terminal unless ``capture``."""
        env = {
            **os.environ,
            **self.environment,
            "TF_DATA_DIR": str(self.data_dir),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
        }
        self.data_dir.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [self.binary, *args, "-no-color"],
            cwd=self.root,
            env=env,
            capture_output=capture,
            text=True,
            check=False,
        )
        if result.returncode not in ok:
            detail = (result.stderr or "").strip().splitlines()[-1:] if capture else []
            raise CommandFailed(
                f"terraform {args[0]} failed in {self.root} (exit {result.returncode})"
                + (f": {detail[0]}" if detail else ": see its output above")
                + "; fix it and run the command again (it resumes)",
                EXECUTION_FAILED,
            )
        self.last_exit = result.returncode
        return result.stdout or ""

    @contextmanager
    def local_backend(self, state: Path) -> Iterator[None]:
        """Local state at ``state`` for the runs inside the block: the override that says so
        exists only while they run (Terraform compares it with its data directory each time)."""
        override = self.root / OVERRIDE
        override.write_text(
            'terraform {\n  backend "local" {\n    path = ' + json.dumps(str(state)) + "\n  }\n}\n"
        )
        try:
            self.run("init", "-reconfigure")
            yield
        finally:
            override.unlink(missing_ok=True)

    def init_s3(self, backend: S3Backend, migrate: bool = False) -> None:
        """Initialise on the S3 backend; ``migrate`` copies the current (local) state there."""
        mode = ["-migrate-state", "-force-copy"] if migrate else ["-reconfigure"]
        self.run("init", *mode, *backend.arguments(self.backend_extra))

    def plan(self, tfvars: Path, plan_file: Path) -> bool:
        """Write a plan; whether it changes anything."""
        plan_file.parent.mkdir(parents=True, exist_ok=True)
        self.run(
            "plan", f"-var-file={tfvars}", f"-out={plan_file}", "-detailed-exitcode", ok=(0, 2)
        )
        return self.last_exit == 2

    def apply(self, plan_file: Path) -> None:
        try:
            self.run("apply", str(plan_file))
        finally:
            plan_file.unlink(missing_ok=True)  # it holds every value, secrets included

    def outputs(self) -> dict[str, Any]:
        raw = json.loads(self.run("output", "-json", capture=True) or "{}")
        return {name: entry.get("value") for name, entry in raw.items()}
