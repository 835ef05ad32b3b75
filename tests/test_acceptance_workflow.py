"""The optional acceptance workflow (.github/workflows/acceptance.yml, #35): weekly and on
demand, one run at a time, never cancelled; three OIDC sessions handed to `make aws-acceptance`
as the profiles acceptance-dev, acceptance-stage and acceptance-deploy (no credentials in the
environment); the
report in the job summary and as an artifact whatever happened; the job fails unless the run
exited 0. Its scripts are run here as the runner runs them (bash -eo pipefail), with stand-ins
for make. The generic checks (pinned actions, actionlint, zizmor, ...) are in test_workflows.py.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from acceptance.__main__ import _parser
from tests.terraform_cli import blocks, root_files
from tests.workflow_steps import assert_project_toolchain, named, step, uses

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / ".github" / "workflows"
CONFIGURE = "aws-actions/configure-aws-credentials"
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
SETTINGS = {
    "AWS_REGION": "eu-west-1",
    "ACCEPTANCE_DEV_ROLE_ARN": "arn:aws:iam::111111111111:role/acceptance-dev",
    "ACCEPTANCE_STAGE_ROLE_ARN": "arn:aws:iam::222222222222:role/acceptance-stage",
    "ACCEPTANCE_DEPLOY_ROLE_ARN": "arn:aws:iam::222222222222:role/acc-1-preprod-deploy",
    "ACCEPTANCE_PROJECT_NAME": "acc-1",
    "ACCEPTANCE_DEV_BUCKET": "sandbox-dev-artifacts",
    "ACCEPTANCE_PRICES": "",
}


def load(path: Path) -> dict[Any, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    return load(WORKFLOWS / "acceptance.yml")


@pytest.fixture(scope="module")
def job(workflow: dict[Any, Any]) -> dict[str, Any]:
    assert list(workflow["jobs"]) == ["acceptance"], "one job"
    return workflow["jobs"]["acceptance"]


def bash(
    script: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The script as the runner runs a `shell: bash` step."""
    return subprocess.run(
        [shutil.which("bash") or "/bin/bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
         script],
        env={"PATH": os.environ["PATH"], **env}, cwd=cwd, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


# ----------------------------------------------------------------------------- the workflow


def test_weekly_off_the_hour_and_on_demand_without_inputs(workflow: dict[Any, Any]) -> None:
    on: Any = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert set(on) == {"schedule", "workflow_dispatch"}
    (schedule,) = on["schedule"]
    minute, hour, day, month, weekday = schedule["cron"].split()
    assert minute.isdigit() and int(minute) % 15 != 0, "an off-peak minute, not :00/:15/..."
    assert hour.isdigit() and (day, month) == ("*", "*") and weekday.isdigit(), "weekly"
    assert not (on["workflow_dispatch"] or {}).get("inputs"), "no inputs reach the run"


def test_permissions_empty_but_the_jobs_read_and_oidc(
    workflow: dict[Any, Any], job: dict[str, Any]
) -> None:
    assert workflow["permissions"] == {}
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    assert workflow["defaults"] == {"run": {"shell": "bash"}}


def test_one_run_at_a_time_never_cancelled(workflow: dict[Any, Any], job: dict[str, Any]) -> None:
    groups = [c for c in (workflow.get("concurrency"), job.get("concurrency")) if c]
    assert len(groups) == 1
    (concurrency,) = groups
    assert concurrency["cancel-in-progress"] is False
    assert "acceptance" in concurrency["group"] and "${{" not in concurrency["group"]


def test_the_timeout_leaves_the_run_and_its_teardown_time(job: dict[str, Any]) -> None:
    """The run takes about 2 h (sessions of 2 h): a timeout would kill its teardown."""
    sessions = {int(s["with"]["role-duration-seconds"]) for s in job["steps"] if uses(CONFIGURE)(s)}
    assert isinstance(job["timeout-minutes"], int)
    assert job["timeout-minutes"] >= max(sessions) // 60 + 60


def test_runs_in_the_preprod_environment_and_skips_schedules_until_configured(
    job: dict[str, Any],
) -> None:
    """The acceptance base's deploy role (and the dev sandbox role) trust
    repo:<owner/name>:environment:preprod."""
    assert job["environment"] == "preprod"
    condition = job["if"]
    assert "github.event_name == 'workflow_dispatch'" in condition
    assert "vars.ACCEPTANCE_STAGE_ROLE_ARN != ''" in condition


def test_toolchain_as_deploy_stage_installs_it_with_the_same_pins(job: dict[str, Any]) -> None:
    assert_project_toolchain(job)

    deploy_stage = load(WORKFLOWS / "deploy-stage.yml")["jobs"]["deploy"]["steps"]
    pinned = {s["uses"].split("@")[0]: s["uses"] for s in deploy_stage if "uses" in s}
    for s in job["steps"]:
        if "uses" in s and s["uses"].split("@")[0] in pinned:
            assert s["uses"] == pinned[s["uses"].split("@")[0]], "the pin deploy-stage uses"


def test_three_oidc_sessions_from_the_acceptance_roles_never_in_env(
    workflow: dict[Any, Any], job: dict[str, Any]
) -> None:
    configured = [s for s in job["steps"] if uses(CONFIGURE)(s)]
    assert [s["with"]["role-to-assume"] for s in configured] == [
        "${{ vars.ACCEPTANCE_DEV_ROLE_ARN }}",
        "${{ vars.ACCEPTANCE_STAGE_ROLE_ARN }}",
        "${{ vars.ACCEPTANCE_DEPLOY_ROLE_ARN }}",
    ]
    for action in configured:
        assert action["with"]["aws-region"] == "${{ vars.AWS_REGION }}"
        assert action["with"]["output-credentials"] is True
        assert action["with"]["output-env-credentials"] is False, "outputs only, no env"
        assert action["with"]["role-duration-seconds"] == 7200
    assert [s["id"] for s in configured] == ["dev", "stage", "deploy"]

    # nothing puts credentials in the environment of the workflow, the job or a step
    for scope in (workflow, job, *job["steps"]):
        assert not set(scope.get("env", {})) & set(CREDENTIAL_VARIABLES)


def test_the_deploy_role_allows_the_session_asked_for(job: dict[str, Any]) -> None:
    asked = {int(s["with"]["role-duration-seconds"]) for s in job["steps"] if uses(CONFIGURE)(s)}
    role = blocks(root_files("target-account"))
    deploy_role = next(
        spec
        for block in role["resource"]
        for name, spec in block.get('"aws_iam_role"', {}).items()
        if name == '"deploy"'
    )
    assert deploy_role["max_session_duration"] >= max(asked), "IAM refuses a longer session"


def test_steps_in_order(job: dict[str, Any]) -> None:
    """Validated first; the sessions start after the install (2 h for the run itself)."""
    order = [
        step(job, named("Validate"), "validates")[0],
        step(job, named("Install"), "installs")[0],
        step(job, lambda s: s.get("id") == "dev", "assumes the dev role")[0],
        step(job, lambda s: s.get("id") == "stage", "assumes the stage role")[0],
        step(job, lambda s: s.get("id") == "deploy", "assumes the deploy role")[0],
        step(job, named("profiles acceptance-dev"), "writes the profiles")[0],
        step(job, lambda s: s.get("id") == "run", "runs the acceptance run")[0],
        step(job, named("job summary"), "writes the summary")[0],
        step(job, uses("actions/upload-artifact"), "uploads the report")[0],
        step(job, named("Fail unless"), "fails on the exit code")[0],
    ]
    assert order == sorted(order) and order[0] == 0 and order[-1] == len(job["steps"]) - 1
    assert "uses" not in job["steps"][0]


# ----------------------------------------------------------------------------- validation


def validate(job: dict[str, Any], **changes: str) -> subprocess.CompletedProcess[str]:
    _, validation = step(job, named("Validate"), "validates")
    for name, value in validation["env"].items():
        assert value == f"${{{{ vars.{name} }}}}", name
    assert job["env"]["AWS_REGION"] == "${{ vars.AWS_REGION }}"
    return bash(validation["run"], {"GITHUB_REF": "refs/heads/main", **SETTINGS, **changes})


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"ACCEPTANCE_PRICES": "ml.m5.xlarge=0.23 ml.m5.large=0.115"},
        {"AWS_REGION": "us-gov-west-1"},
    ],
    ids=["no-prices", "prices", "region"],
)
def test_the_validation_accepts(job: dict[str, Any], changes: dict[str, str]) -> None:
    result = validate(job, **changes)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "::error::" not in result.stdout


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"ACCEPTANCE_STAGE_ROLE_ARN": ""}, "variable ACCEPTANCE_STAGE_ROLE_ARN is not set"),
        ({"ACCEPTANCE_DEPLOY_ROLE_ARN": ""}, "variable ACCEPTANCE_DEPLOY_ROLE_ARN is not set"),
        ({"ACCEPTANCE_DEPLOY_ROLE_ARN": "acc-1-preprod-deploy"}, "ACCEPTANCE_DEPLOY_ROLE_ARN is"),
        ({"ACCEPTANCE_DEV_BUCKET": ""}, "variable ACCEPTANCE_DEV_BUCKET is not set"),
        ({"AWS_REGION": ""}, "variable AWS_REGION is not set"),
        ({"ACCEPTANCE_DEV_ROLE_ARN": "arn:aws:iam::1:user/x"}, "ACCEPTANCE_DEV_ROLE_ARN is not"),
        ({"ACCEPTANCE_PROJECT_NAME": "acc-1 --keep"}, "ACCEPTANCE_PROJECT_NAME must be"),
        ({"ACCEPTANCE_PROJECT_NAME": "acc-1$(curl x)"}, "ACCEPTANCE_PROJECT_NAME must be"),
        ({"ACCEPTANCE_DEV_BUCKET": "b;curl x|sh"}, "ACCEPTANCE_DEV_BUCKET is not"),
        ({"AWS_REGION": "eu-west-1`id`"}, "AWS_REGION is not"),
        ({"ACCEPTANCE_PRICES": "ml.m5.xlarge=0.23 --keep"}, "ACCEPTANCE_PRICES"),
        ({"ACCEPTANCE_PRICES": "ml.m5.xlarge=$(id)"}, "ACCEPTANCE_PRICES"),
        ({"ACCEPTANCE_PRICES": "m5.xlarge=0.23"}, "ACCEPTANCE_PRICES"),
        ({"GITHUB_REF": "refs/heads/feature"}, "main only"),
    ],
)
def test_the_validation_refuses(job: dict[str, Any], changes: dict[str, str], error: str) -> None:
    result = validate(job, **changes)
    assert result.returncode != 0
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("::error::") and error in lines[0], lines
    assert "curl" not in result.stdout and "uid=" not in result.stdout


# ----------------------------------------------------------------------------- profiles


def test_the_profiles_file_is_written_from_env_only_private_and_silent(
    job: dict[str, Any], tmp_path: Path
) -> None:
    _, profiles = step(job, named("profiles acceptance-dev"), "writes the profiles")
    assert "${{" not in profiles["run"], "values only through env"
    for who in ("dev", "stage", "deploy"):
        for output in ("access-key-id", "secret-access-key", "session-token"):
            name = f"{who.upper()}_{output.upper().replace('-', '_')}"
            assert profiles["env"][name] == f"${{{{ steps.{who}.outputs.aws-{output} }}}}"
    readers = [
        s.get("name")
        for s in job["steps"]
        if re.search(r"steps\.(dev|stage|deploy)\.", json.dumps(s))
    ]
    assert readers == [profiles["name"]], "only this step sees the sessions"
    assert not re.search(r"\becho\b.*(DEV|STAGE|DEPLOY)_", profiles["run"]), "never print them"

    values = {name: f"{name.lower()}-value" for name in profiles["env"]}
    github_env = tmp_path / "github_env"
    github_env.write_text("")
    result = bash(
        profiles["run"],
        {**values, "RUNNER_TEMP": str(tmp_path), "GITHUB_ENV": str(github_env)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for value in values.values():
        assert value not in result.stdout + result.stderr

    credentials = tmp_path / "acceptance-credentials"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert github_env.read_text() == f"AWS_SHARED_CREDENTIALS_FILE={credentials}\n"
    parsed = configparser.ConfigParser()
    parsed.read(credentials)
    assert parsed.sections() == ["acceptance-dev", "acceptance-stage", "acceptance-deploy"]
    for who in ("dev", "stage", "deploy"):
        section = f"acceptance-{who}"
        assert dict(parsed[section]) == {
            "aws_access_key_id": f"{who}_access_key_id-value",
            "aws_secret_access_key": f"{who}_secret_access_key-value",
            "aws_session_token": f"{who}_session_token-value",
        }

    _, remove = step(job, named("Remove the profiles file"), "removes the profiles")
    assert remove["if"] == "${{ always() }}"
    assert bash(remove["run"], {"RUNNER_TEMP": str(tmp_path)}).returncode == 0
    assert not credentials.exists()


# ----------------------------------------------------------------------------- the run


def run_step(
    job: dict[str, Any], tmp_path: Path, status: int = 0, **changes: str
) -> tuple[subprocess.CompletedProcess[str], list[str], dict[str, str], str]:
    """The run step's script with a stand-in `make`: its arguments, environment and the
    step's outputs."""
    _, run = step(job, lambda s: s.get("id") == "run", "runs the acceptance run")
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    make = fake / "make"
    make.write_text(
        "#!/bin/bash\n"
        f'printf "%s\\n" "$@" >"{tmp_path}/make-args"\n'
        f'env >"{tmp_path}/make-env"\n'
        f"exit {status}\n"
    )
    make.chmod(0o755)
    output = tmp_path / "github_output"
    output.write_text("")
    env = {
        **SETTINGS,
        "PATH": f"{fake}:{os.environ['PATH']}",
        "GITHUB_OUTPUT": str(output),
        # what a leftover of an earlier action would look like: never reaches the run
        **{name: "leaked" for name in CREDENTIAL_VARIABLES},
        "AWS_PROFILE": "default",
        **changes,
    }
    result = bash(run["run"], env)
    made = tmp_path / "make-args"
    arguments = made.read_text().splitlines() if made.exists() else []
    seen = dict(
        line.split("=", 1)
        for line in (tmp_path / "make-env").read_text().splitlines()
        if "=" in line
    )
    return result, arguments, seen, output.read_text()


def test_the_run_gets_the_three_profiles_and_yes(job: dict[str, Any], tmp_path: Path) -> None:
    _, run = step(job, lambda s: s.get("id") == "run", "runs the acceptance run")
    for name, value in run["env"].items():
        assert value == f"${{{{ vars.{name} }}}}", name
    assert "${{" not in run["run"]

    result, arguments, seen, output = run_step(
        job, tmp_path, ACCEPTANCE_PRICES="ml.m5.xlarge=0.23 ml.m5.large=0.115"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert output == "exit_code=0\n"
    target, assignment = arguments
    assert target == "aws-acceptance" and assignment.startswith("ACCEPTANCE_ARGS=")
    words = shlex.split(assignment.removeprefix("ACCEPTANCE_ARGS="))
    args = _parser().parse_args(words)  # the CLI accepts exactly what the workflow builds
    assert args.yes is True and args.keep is False
    assert (args.dev_profile, args.stage_profile, args.deploy_profile) == (
        "acceptance-dev", "acceptance-stage", "acceptance-deploy"
    )  # fmt: skip
    assert (args.region, args.project_name, args.dev_bucket) == (
        "eu-west-1", "acc-1", "sandbox-dev-artifacts"
    )  # fmt: skip
    assert args.price == [("ml.m5.xlarge", 0.23), ("ml.m5.large", 0.115)]
    assert str(args.output) == "build/acceptance"
    # the profiles only: no environment credentials or profile override them
    for name in (*CREDENTIAL_VARIABLES, "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        assert name not in seen, name


def test_the_run_without_prices(job: dict[str, Any], tmp_path: Path) -> None:
    result, arguments, _, _ = run_step(job, tmp_path)
    assert result.returncode == 0, result.stderr
    words = shlex.split(arguments[1].removeprefix("ACCEPTANCE_ARGS="))
    assert "--price" not in words and words[-1] == "--yes"
    assert _parser().parse_args(words).price == []


@pytest.mark.parametrize("status", [1, 2, 3])
def test_the_run_keeps_its_exit_code_for_the_last_step(
    job: dict[str, Any], tmp_path: Path, status: int
) -> None:
    """The step itself succeeds so the report is published; the last step fails the job."""
    result, _, _, output = run_step(job, tmp_path, status)
    assert result.returncode == 0, result.stderr
    assert output == f"exit_code={status}\n"


def test_make_hands_acceptance_args_to_the_cli() -> None:
    """What the workflow sets, make passes on to python -m acceptance, and Terraform gets
    the registry, not the project's mirror (TF_CLI_CONFIG_FILE unset)."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make")
    # as a top-level make: under `make test` the outer make's MAKEFLAGS and MAKELEVEL would
    # make this one print "Entering/Leaving directory" lines around the recipe
    outer = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")
    result = subprocess.run(
        [make, "-n", "--always-make", "--no-print-directory", "aws-acceptance",
         "ACCEPTANCE_ARGS=--a b --yes"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
        env={k: v for k, v in os.environ.items() if k not in outer},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last == "env -u TF_CLI_CONFIG_FILE .venv/bin/python -m acceptance --a b --yes"


# ----------------------------------------------------------------------------- afterwards


def test_the_report_reaches_the_summary_whatever_happened(
    job: dict[str, Any], tmp_path: Path
) -> None:
    _, summary = step(job, named("job summary"), "writes the summary")
    assert summary["if"] == "${{ always() }}"
    github_summary = tmp_path / "summary.md"
    github_summary.write_text("")
    env = {"GITHUB_STEP_SUMMARY": str(github_summary)}
    assert bash(summary["run"], env, cwd=tmp_path).returncode == 0
    assert "No acceptance report" in github_summary.read_text()

    report = tmp_path / "build" / "acceptance" / "acceptance.md"
    report.parent.mkdir(parents=True)
    report.write_text("# Acceptance\n\n| check | verdict |\n")
    github_summary.write_text("")
    assert bash(summary["run"], env, cwd=tmp_path).returncode == 0
    assert github_summary.read_text() == report.read_text()


def test_the_report_is_uploaded_whatever_happened_and_nothing_else(job: dict[str, Any]) -> None:
    _, upload = step(job, uses("actions/upload-artifact"), "uploads the report")
    assert upload["if"] == "${{ always() }}"
    assert upload["with"]["path"].split() == [
        "build/acceptance/acceptance.json",
        "build/acceptance/acceptance.md",
    ]
    assert "*" not in upload["with"]["path"] and "tfstate" not in upload["with"]["path"]
    assert 1 <= int(upload["with"]["retention-days"]) <= 90
    assert upload["with"]["if-no-files-found"] in ("warn", "ignore")


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("0", None),
        ("1", "a check failed"),
        ("2", "refused"),
        ("3", "teardown left something"),
        ("", "did not finish"),
        ("137", "exited with 137"),
    ],
)
def test_the_job_fails_unless_the_run_exited_0(
    job: dict[str, Any], code: str, error: str | None
) -> None:
    index, gate = step(job, named("Fail unless"), "fails on the exit code")
    assert gate["if"] == "${{ always() }}" and index == len(job["steps"]) - 1
    assert gate["env"] == {"EXIT_CODE": "${{ steps.run.outputs.exit_code }}"}
    result = bash(gate["run"], {"EXIT_CODE": code})
    if error is None:
        assert result.returncode == 0 and "::error::" not in result.stdout
    else:
        assert result.returncode != 0
        assert result.stdout.startswith("::error::") and error in result.stdout
