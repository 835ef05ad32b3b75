"""Repository hygiene that CI must enforce: lint, formatting, pre-commit hooks, CI wiring."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*command: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False, **kwargs
    )


def test_ruff_check_is_clean() -> None:
    result = run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = run(str(BIN / "ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_no_type_errors() -> None:
    """The files, the stubs and the strictness are pyproject.toml's [tool.mypy]."""
    result = run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout + result.stderr


def _tracked_files() -> list[str] | None:
    result = run("git", "ls-files")
    return result.stdout.split() if result.returncode == 0 and result.stdout.strip() else None


def test_pre_commit_hooks_pass_on_all_files(tmp_path: Path) -> None:
    if _tracked_files() is None:
        pytest.fail("not a git checkout with tracked files: pre-commit needs one")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    result = run(str(BIN / "pre-commit"), "run", "--all-files", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_json_file_parses() -> None:
    for name in _tracked_files() or []:
        if name.endswith(".json"):
            json.loads((REPO / name).read_text(encoding="utf-8"))


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    assert "make test" in ci and "set -euo pipefail" in ci
    assert "make test" in readme and "make demo" in readme
    assert os.access(REPO / ".ci" / "run", os.X_OK)


def test_only_the_sdk_module_imports_sagemaker() -> None:
    offenders = [
        path.relative_to(REPO).as_posix()
        for path in REPO.rglob("*.py")
        if not any(part.startswith(".venv") for part in path.parts)
        and path.name != "sdk.py"
        and path.parent.name != "tests"
        and any(
            re.match(r"(import|from)\s+sagemaker(\.|\s|$)", line.strip())
            for line in path.read_text(encoding="utf-8").splitlines()
        )
    ]
    assert offenders == []


def test_workflow_actions_are_pinned_to_commit_shas() -> None:
    for workflow in (REPO / ".github" / "workflows").glob("*.yml"):
        for match in re.finditer(r"uses:\s*([^\s#]+)", workflow.read_text()):
            reference = match.group(1)
            if reference.startswith("./"):
                continue
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", reference), (
                f"{workflow.name}: {reference} is not pinned to a full commit SHA"
            )
