"""Running the project's Terraform roots in tests: offline, from the provider mirror.

Terraform runs with the project's CLI config (providers from the filesystem mirror only) and
with version checks off, so nothing goes to the network. On a machine without terraform or
the mirror (or checkov's venv, built by ``make test``) the tests that need them are skipped
with the reason; in CI (``CI=true``) they fail instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import hcl2
import pytest

from local_mode.emulator import Emulator, environment

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "batch-config-template.tf"
# the modules the roots call, by relative path (./terraform/..., ../../terraform/...)
MODULES = REPO / "terraform"
MIRROR = Path("/opt/tf-plugins/registry.terraform.io/hashicorp/aws")
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
# every root module: its folder (the stage's is the repository root, whose only .tf file is
# the template)
ROOTS = {
    "stage": REPO,
    "target-account": REPO / "infra" / "target-account",
    "dev-account": REPO / "infra" / "dev-account",
}


def root_files(root: str) -> list[Path]:
    """The .tf files of a root module's own folder."""
    return sorted(ROOTS[root].glob("*.tf"))


def module_files() -> list[Path]:
    """The .tf files of every module the roots call."""
    return sorted(MODULES.rglob("*.tf"))


def blocks(files: list[Path]) -> dict[str, list]:
    """python-hcl2's view of several .tf files as one: each block kind's entries, in order."""
    merged: dict[str, list] = {}
    for path in files:
        for kind, entries in hcl2.loads(path.read_text()).items():
            merged.setdefault(kind, []).extend(entries)
    return merged


def declared_variables() -> dict[str, dict]:
    """The stage root's variables by name (python-hcl2 keeps the quotes of block labels)."""
    return {
        name.strip('"'): spec
        for block in blocks(root_files("stage"))["variable"]
        for name, spec in block.items()
    }


def require(missing: list[str], remedy: str) -> None:
    """Skip (on a user's machine) or fail (in CI) when a tool the test needs is absent."""
    if missing:
        message = "; ".join(missing) + f" ({remedy})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def terraform() -> str:
    binary = shutil.which("terraform")
    require(
        [
            reason
            for reason, absent in (
                ("terraform is not on PATH", binary is None),
                (f"the AWS provider mirror {MIRROR} does not exist", not MIRROR.is_dir()),
            )
            if absent
        ],
        "install Terraform >= 1.10 and the provider mirror",
    )
    return binary or "terraform"  # require() has stopped the session when it is None


def run_terraform(terraform: str, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(REPO / "terraform.tfrc"),
        "TF_DATA_DIR": str(workdir / ".terraform"),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
    }
    return subprocess.run(
        [terraform, *args, "-no-color"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def copy_root(root: str, directory: Path) -> Path:
    """A copy of a root module under ``directory``: its folder's .tf files at their place
    relative to the repository, and the module tree beside them, so the relative module
    sources resolve. Returns the copied root's folder."""
    copied = directory / ROOTS[root].relative_to(REPO)
    copied.mkdir(parents=True, exist_ok=True)
    for path in root_files(root):
        shutil.copy(path, copied / path.name)
    if MODULES.is_dir():
        ignore = shutil.ignore_patterns(".terraform*")
        shutil.copytree(MODULES, directory / MODULES.name, ignore=ignore)
    return copied


def local_root(root: str, directory: Path) -> Path:
    """A copy of a root module (``copy_root``) with a local backend instead of its partial
    S3 one: the folder to run terraform in."""
    copied = copy_root(root, directory)
    (copied / "backend_override.tf").write_text('terraform {\n  backend "local" {}\n}\n')
    return copied


def in_account(
    terraform: str, aws: Emulator, account: str, root: Path
) -> Callable[..., subprocess.CompletedProcess]:
    """``tf(*args)``: terraform in ``root`` with ``account``'s credentials, asserting success.

    The provider logs every request it sends to ``root/provider.log``
    (``tests.provider_requests`` reads it back).
    """
    account_env = {
        **aws.credential_variables(account),
        "TF_LOG_PROVIDER": "DEBUG",
        "TF_LOG_PATH": str(root / "provider.log"),
    }

    def tf(*args: str) -> subprocess.CompletedProcess:
        with environment(account_env):
            result = run_terraform(terraform, root, *args)
        assert result.returncode == 0, (
            f"terraform {args[0]}: {result.stdout[-4000:]}{result.stderr}"
        )
        return result

    return tf


def drifting_attributes(change: dict) -> set[str]:
    before, after = change["change"]["before"] or {}, change["change"]["after"] or {}
    unknown = change["change"].get("after_unknown") or {}
    return {
        key
        for key in set(before) | set(after)
        if before.get(key) != after.get(key) or unknown.get(key)
    }


def unexpected_drift(plan: dict, allowed: dict[str, set[str]]) -> dict[str, dict]:
    """Changes a plan right after apply wants, beyond what the emulator is known to drop.

    ``allowed`` is keyed by address; ``name[*]`` stands for every instance of ``name``.
    The values are what the emulator holds, so a failing assertion shows them.
    """
    unexpected = {}
    for change in plan.get("resource_changes", []):
        if change["change"]["actions"] == ["no-op"]:
            continue
        address = change["address"]
        patterns = [
            p for p in allowed if p == address or (p.endswith("[*]") and address.startswith(p[:-2]))
        ]
        drift = drifting_attributes(change) - set().union(*(allowed[p] for p in patterns))
        if drift or not patterns:
            before = change["change"]["before"] or {}
            unexpected[address] = {key: before.get(key) for key in drift}
    return unexpected
