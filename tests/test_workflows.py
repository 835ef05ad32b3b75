"""The GitHub workflows' structure: deploy.yml (test -> preprod -> approval -> prod) and the
stage workflow it calls, CI reused as the test gate, pinned actions, untrusted input kept out
of shell scripts, and actionlint and zizmor clean on every workflow file."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.stage_model import STAGE_MODEL_ENVIRONMENT
from lambdas.dispatch_deploy import handler as dispatch
from local_mode import sandbox
from local_mode.emulator import Emulator
from promotion import prod_gate
from tests.registry import PROJECT
from tests.terraform_cli import MODULES, blocks, root_files
from tests.workflow_steps import assert_project_toolchain, runs, step, uses

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORKFLOWS = REPO / ".github" / "workflows"
WORKFLOW_FILES = sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])
ACTION_FILES = sorted((REPO / ".github").glob("actions/**/action.y*ml"))
STAGES = ("preprod", "prod")
VERSION_PATTERN = re.compile(r"^[1-9][0-9]*$")
PINNED = re.compile(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}")
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
# data an outsider of the workflow (a dispatcher, a payload, a branch name) controls
UNTRUSTED = re.compile(
    r"github\.event\b|\binputs\.|github\.head_ref|client_payload|github\.event_path"
)
DEPLOY_PATHS = {
    "build.py",
    "utils.py",
    "common/**",
    "stage_runtime/**",
    "promotion/**",
    "pipelines/**",
    "local_mode/**",  # check_model starts the model in local mode's container
    "lambdas/package.py",
    "lambdas/start_upload_run/**",
    "lambdas/start_scheduled_run/**",
    "lambdas/record_run_outcome/**",
    "examples/breast_cancer/smoke-input.csv",
    "batch-config-template.tf",
    "batch-config-moved.tf",
    "terraform/**",  # the stage's module and the modules it calls
    "pre-prod-config.tfvars.json",
    "prod-config.tfvars.json",
    "requirements.lock",
    "requirements-sklearn-1.9-0.lock",  # check_model runs in the runtime twin
    ".github/workflows/deploy.yml",
}
REPOSITORY_VARIABLES = {
    "AWS_REGION",
    "AWS_REGISTRY_READ_ROLE_ARN",
    "MODEL_PACKAGE_GROUP_NAME",
    "SAGEMAKER_PROJECT_NAME",
    "AWS_DEV_ACCOUNT_NUMBER",
    "AWS_PREPROD_ACCOUNT_NUMBER",
    "AWS_PROD_ACCOUNT_NUMBER",
}
ENVIRONMENT_VARIABLES = {"AWS_DEPLOY_ROLE_ARN", "TF_STATE_BUCKET"}
OPTIONAL_VARIABLES = {"SAGEMAKER_PROJECT_ID"}
# acceptance.yml's (repository variables; ACCEPTANCE_PRICES optional)
ACCEPTANCE_VARIABLES = {
    "ACCEPTANCE_DEV_ROLE_ARN",
    "ACCEPTANCE_STAGE_ROLE_ARN",
    "ACCEPTANCE_DEPLOY_ROLE_ARN",
    "ACCEPTANCE_PROJECT_NAME",
    "ACCEPTANCE_DEV_BUCKET",
    "ACCEPTANCE_PRICES",
}


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    """`on:` (YAML 1.1 reads the bare key `on` as the boolean True)."""
    value: Any = workflow.get("on", workflow.get(True))
    return {value: None} if isinstance(value, str) else value


def steps_of(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """Every step of every job (jobs that call a reusable workflow have none)."""
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def all_documents() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, load(path)) for path in [*WORKFLOW_FILES, *ACTION_FILES]]


def run_scripts(document: dict[str, Any]) -> list[str]:
    """The shell scripts of a workflow's steps, or of a composite action's steps."""
    steps = steps_of(document) if "jobs" in document else document["runs"].get("steps", [])
    return [step["run"] for step in steps if "run" in step]


def untrusted_expressions(script: str) -> list[str]:
    return [match for match in EXPRESSION.findall(script) if UNTRUSTED.search(match)]


@pytest.fixture(scope="module")
def deploy() -> dict[str, Any]:
    return load(WORKFLOWS / "deploy.yml")


@pytest.fixture(scope="module")
def stage_workflow(deploy: dict[str, Any]) -> dict[str, Any]:
    """The workflow both deploy jobs call (one file: the same steps for both stages)."""
    called = {deploy["jobs"][stage]["uses"] for stage in STAGES}
    assert called == {"./.github/workflows/deploy-stage.yml"}
    return load(WORKFLOWS / "deploy-stage.yml")


@pytest.fixture(scope="module")
def stage_job(stage_workflow: dict[str, Any]) -> dict[str, Any]:
    jobs = stage_workflow["jobs"]
    assert list(jobs) == ["deploy"], "the stage workflow is one job"
    return jobs["deploy"]


# ----------------------------------------------------------------------------- triggers


def test_deploy_triggers(deploy: dict[str, Any]) -> None:
    on = triggers(deploy)
    assert set(on) == {"workflow_dispatch", "repository_dispatch", "push"}

    inputs = on["workflow_dispatch"]["inputs"]
    assert set(inputs) == {"model_version", "model_package_arn", "accept_shadow_flips"}
    # the override of the shadow run's limit: off unless a person dispatching asks for it
    override = inputs.pop("accept_shadow_flips")
    assert override["type"] == "boolean" and override["default"] is False
    assert "override" in override["description"]
    for name, spec in inputs.items():
        assert spec["type"] == "string", name
        assert spec.get("required", False) is False, f"{name} must be optional"
        assert spec.get("default", "") == "", name

    assert on["repository_dispatch"] == {"types": ["model-approved"]}

    assert on["push"]["branches"] == ["main"]
    paths = set(on["push"]["paths"])
    assert paths >= DEPLOY_PATHS, f"missing: {sorted(DEPLOY_PATHS - paths)}"
    assert not paths - DEPLOY_PATHS - {".github/workflows/deploy-stage.yml"}, (
        f"paths that do not change a deployment: {sorted(paths - DEPLOY_PATHS)}"
    )
    assert "paths-ignore" not in on["push"]


# what a deployment runs: build.py, the stage functions' handlers, and the CLIs deploy-stage.yml
# calls (check_model before the apply, the smoke run after it, the plan job's shadow run)
DEPLOYED_ENTRY_POINTS = (
    "build",
    "lambdas.start_upload_run.handler",
    "lambdas.start_scheduled_run.handler",
    "lambdas.record_run_outcome.handler",
    "pipelines.check_model",
    "pipelines.smoke_run",
    "pipelines.shadow_run",  # the prod plan job's shadow run
    "promotion.prod_gate",
)


def test_a_push_to_any_module_a_deployment_runs_deploys(deploy: dict[str, Any]) -> None:
    """Every module the deployment's entry points import, however deep, is under a path that
    triggers the deploy workflow (so moving code into a new package cannot silently stop
    its changes from being deployed)."""
    from fnmatch import fnmatch

    from tests.test_layers import imported, product_modules

    modules = product_modules()
    known = set(modules)
    reached, todo = set(), list(DEPLOYED_ENTRY_POINTS)
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo += imported(module, modules[module], known)
    assert {"common.aws_sessions", "stage_runtime.runs", "local_mode.container"} <= reached
    patterns = triggers(deploy)["push"]["paths"]
    untriggered = sorted(
        path
        for path in (modules[m].relative_to(REPO).as_posix() for m in reached)
        if not any(fnmatch(path, pattern.replace("**", "*")) for pattern in patterns)
    )
    assert untriggered == []


def test_the_dispatch_lambda_starts_this_workflow_with_inputs_it_declares(
    deploy: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GitHub refuses a workflow_dispatch carrying an input the workflow does not declare."""
    sent: list[Any] = []

    class Opener:
        def open(self, request: Any, timeout: float) -> io.BytesIO:
            sent.append(request)
            return io.BytesIO(b"")

    monkeypatch.setattr(dispatch.urllib.request, "build_opener", lambda *handlers: Opener())
    config = dispatch.Config(
        repository="acme/churn", token_secret_id="secret", model_package_group_name="churn"
    )
    arn = "arn:aws:sagemaker:eu-west-1:111111111111:model-package/churn/7"
    dispatch.dispatch_workflow(config, "token", dispatch.Approval(version=7, package_arn=arn))

    (request,) = sent
    assert request.full_url.endswith("/actions/workflows/deploy.yml/dispatches")
    body = json.loads(request.data)
    declared = triggers(deploy)["workflow_dispatch"]["inputs"]
    assert set(body["inputs"]) <= set(declared)
    assert VERSION_PATTERN.match(body["inputs"]["model_version"])
    assert body["ref"] in triggers(deploy)["push"]["branches"]


# ----------------------------------------------------------------------------- jobs


def test_jobs_run_test_then_preprod_then_the_prod_plan_then_the_gate_then_prod(
    deploy: dict[str, Any],
) -> None:
    jobs = deploy["jobs"]
    assert set(jobs) == {"test", *STAGES, "prod-plan", "gate"}
    assert "needs" not in jobs["test"]
    assert jobs["preprod"]["needs"] in ("test", ["test"])
    assert jobs["prod-plan"]["needs"] in ("preprod", ["preprod"])
    assert sorted(jobs["gate"]["needs"]) == ["preprod", "prod-plan"]
    assert sorted(jobs["prod"]["needs"]) == ["gate", "preprod", "prod-plan"]


def test_prod_runs_only_where_github_requires_a_reviewer_else_the_run_says_why(
    deploy: dict[str, Any],
) -> None:
    """Where the environment prod has no required reviewers (a private repository on a plan
    without them), the gate job skips prod, and keeps what pre-prod deployed for promote.yml
    (tests/test_prod_gate.py runs the module against a GitHub API)."""
    gate, prod = deploy["jobs"]["gate"], deploy["jobs"]["prod"]
    assert prod["if"] == "${{ needs.gate.outputs.required_reviewers == 'true' }}"
    assert gate["outputs"] == {"required_reviewers": "${{ steps.gate.outputs.required_reviewers }}"}
    assert gate["permissions"] == {"contents": "read", "actions": "read"}
    _, check = step(gate, runs("python -m promotion.prod_gate check"), "checks the gate")
    assert check["id"] == "gate" and "--environment prod" in check["run"]
    assert check["env"] == {
        "GITHUB_TOKEN": "${{ github.token }}",
        "MODEL_VERSION": "${{ needs.preprod.outputs.model_version }}",
        "PLAN_CHANGES": "${{ needs.prod-plan.outputs.plan_changes }}",
    }
    for flag in ('"$MODEL_VERSION"', '"$PLAN_CHANGES"', '--summary "$GITHUB_STEP_SUMMARY"',
                 '--output "$GITHUB_OUTPUT"'):  # fmt: skip
        assert flag in check["run"], flag
    record = re.search(r'--record "([^"]+)"', check["run"])
    assert record, check["run"]
    _, upload = step(gate, uses("actions/upload-artifact"), "keeps the record")
    assert upload["if"] == "${{ steps.gate.outputs.required_reviewers == 'false' }}"
    assert upload["with"]["name"] == prod_gate.ARTIFACT
    assert upload["with"]["path"] == record.group(1).replace("$RUNNER_TEMP", "${{ runner.temp }}")
    assert upload["with"]["path"].endswith("/" + prod_gate.RECORD_FILE)
    assert upload["with"]["if-no-files-found"] == "error"


def test_promote_deploys_to_prod_only_what_a_stopped_deploy_run_recorded(
    deploy: dict[str, Any],
) -> None:
    promote = load(WORKFLOWS / prod_gate.PROMOTE_WORKFLOW)
    on = triggers(promote)
    assert set(on) == {"workflow_dispatch"}
    inputs = on["workflow_dispatch"]["inputs"]
    assert set(inputs) == {"deploy_run_id", "model_version"}
    assert all(spec["type"] == "string" and spec["required"] for spec in inputs.values())
    assert promote["permissions"] == {}
    verify, prod = promote["jobs"]["verify"], promote["jobs"]["prod"]
    assert verify["permissions"] == {"contents": "read", "actions": "read"}
    _, check = step(verify, runs("python -m promotion.prod_gate verify"), "verifies the run")
    assert check["env"] == {
        "GITHUB_TOKEN": "${{ github.token }}",
        "DEPLOY_RUN_ID": "${{ inputs.deploy_run_id }}",
        "MODEL_VERSION": "${{ inputs.model_version }}",
    }
    assert '--run-id "$DEPLOY_RUN_ID"' in check["run"]
    assert '--model-version "$MODEL_VERSION"' in check["run"]
    # the same stage workflow, environment and concurrency group as deploy.yml's prod job
    assert prod["needs"] in ("verify", ["verify"])
    assert prod["uses"] == deploy["jobs"]["prod"]["uses"]
    assert prod["concurrency"] == deploy["jobs"]["prod"]["concurrency"]
    assert prod["permissions"] == deploy["jobs"]["prod"]["permissions"]
    assert prod["with"] == {
        "stage": "prod",
        "model_version": "${{ needs.verify.outputs.model_version }}",
        "reviewed_changes": "${{ needs.verify.outputs.plan_changes }}",
    }
    assert verify["outputs"] == {
        "model_version": f"${{{{ steps.{check['id']}.outputs.model_version }}}}",
        "plan_changes": f"${{{{ steps.{check['id']}.outputs.plan_changes }}}}",
    }


def test_the_prod_plan_is_made_before_the_gate_with_nothing_applied(
    deploy: dict[str, Any], stage_job: dict[str, Any]
) -> None:
    """The reviewer reads the prod plan before approving: a job in the ungated environment
    prod-plan (its read-only role), for exactly the version preprod deployed."""
    plan = deploy["jobs"]["prod-plan"]
    assert plan["uses"] == deploy["jobs"]["prod"]["uses"]
    assert plan["with"] == {
        "stage": "prod",
        "plan_only": True,
        "model_version": "${{ needs.preprod.outputs.model_version }}",
        "accept_shadow_flips": "${{ inputs.accept_shadow_flips == true }}",
    }
    assert plan["permissions"] == {"contents": "read", "id-token": "write"}
    assert stage_job["environment"] == (
        "${{ inputs.plan_only && format('{0}-plan', inputs.stage) || inputs.stage }}"
    )
    assert stage_job["env"]["PLAN_ONLY"] == "${{ inputs.plan_only }}"
    _, build = step(stage_job, runs("python build.py"), "runs build.py")
    plan_only = 'if [[ "$PLAN_ONLY" == true ]]; then args+=(--plan-only --shadow-candidate); fi'
    assert plan_only in build["run"]
    _, plan_step = step(stage_job, runs("terraform plan"), "plans")
    assert "lock=(-lock=false)" in plan_step["run"] and '"${lock[@]}"' in plan_step["run"]
    _, apply = step(stage_job, runs("terraform apply"), "applies")
    assert apply["if"] == "${{ !inputs.plan_only }}"


def test_preprod_is_smoke_run_after_its_apply_into_the_job_summary(
    stage_job: dict[str, Any],
) -> None:
    apply_index, _ = step(stage_job, runs("terraform apply"), "applies")
    smoke_index, smoke = step(stage_job, runs("pipelines.smoke_run"), "smoke-runs")
    assert apply_index < smoke_index
    assert smoke["if"] == "${{ !inputs.plan_only && inputs.stage == 'preprod' }}"
    assert '--tfvars "build/$STAGE.tfvars.json"' in smoke["run"]
    assert '--summary "$GITHUB_STEP_SUMMARY"' in smoke["run"]
    assert "--timeout-minutes 50" in smoke["run"]  # within the hour of fresh credentials
    assert stage_job["timeout-minutes"] > 60
    refresh_index, refresh = step(
        stage_job,
        lambda s: (
            "smoke run" in s.get("name", "") and "configure-aws-credentials" in s.get("uses", "")
        ),
        "re-assumes the deploy role for the smoke run",
    )
    assert apply_index < refresh_index < smoke_index and refresh["if"] == smoke["if"]
    assert refresh["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"


def test_the_prod_plan_job_runs_the_shadow_into_the_summary_and_keeps_its_page(
    deploy: dict[str, Any], stage_job: dict[str, Any]
) -> None:
    """Only in the plan job, after the plan, its summary and its digest (a failing shadow
    leaves the plan in the summary), on fresh credentials of the plan role that outlast it,
    the override reaching the script through env only; the page kept whatever happened, and
    a failed shadow fails the plan job, which the gate and prod need."""
    _, build = step(stage_job, runs("python build.py"), "runs build.py")
    assert "args+=(--plan-only --shadow-candidate)" in build["run"]
    show_index, _ = step(stage_job, runs("terraform show -no-color"), "shows the plan")
    changes_index, _ = step(stage_job, lambda s: s.get("id") == "changes", "digests the plan")
    index, shadow = step(stage_job, runs("python -m pipelines.shadow_run"), "runs the shadow")
    assert show_index < changes_index < index
    assert shadow["if"] == "${{ inputs.plan_only }}"
    assert "continue-on-error" not in shadow, "over the limit, the plan job must fail"
    assert shadow["env"] == {"ACCEPT_SHADOW_FLIPS": "${{ inputs.accept_shadow_flips }}"}
    assert EXPRESSION.search(shadow["run"]) is None
    for flag in ('--tfvars "build/$STAGE.tfvars.json"', "--plan-job",
                 '--summary "$GITHUB_STEP_SUMMARY"', '--out "$RUNNER_TEMP/shadow"'):  # fmt: skip
        assert flag in shadow["run"], flag
    accept = 'if [[ "$ACCEPT_SHADOW_FLIPS" == true ]]; then args+=(--accept-flips); fi'
    assert accept in shadow["run"]
    call = triggers(load(WORKFLOWS / "deploy-stage.yml"))["workflow_call"]["inputs"]
    assert call["accept_shadow_flips"]["type"] == "boolean"
    assert call["accept_shadow_flips"]["default"] is False

    refresh = stage_job["steps"][index - 1]
    assert uses("aws-actions/configure-aws-credentials")(refresh), "fresh credentials first"
    assert refresh["if"] == shadow["if"]
    assert refresh["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    session = int(refresh["with"]["role-duration-seconds"])
    timeout = re.search(r"--timeout-minutes (\d+)", shadow["run"])
    assert timeout and int(timeout.group(1)) * 60 < session
    plan_role = next(
        spec
        for block in blocks(root_files("target-account"))["resource"]
        for name, spec in block.get('"aws_iam_role"', {}).items()
        if name == '"plan"'
    )
    assert plan_role["max_session_duration"] >= session, "IAM refuses a longer session"

    upload_index, upload = step(
        stage_job, lambda s: uses("actions/upload-artifact")(s), "keeps the shadow page"
    )
    assert upload_index == index + 1
    assert upload["if"] == "${{ always() && inputs.plan_only }}"
    # prod-shadow: only prod has a plan job
    assert upload["with"]["name"] == "${{ inputs.stage }}-shadow"
    assert upload["with"]["path"] == "${{ runner.temp }}/shadow/"
    # the plan job failing is what keeps the gate shut: nothing runs past it regardless
    for job in ("gate", "prod"):
        assert "prod-plan" in deploy["jobs"][job]["needs"]
        assert "always()" not in deploy["jobs"][job].get("if", "")
    assert deploy["jobs"]["gate"].get("if") is None


def test_the_test_job_is_the_ci_workflow(deploy: dict[str, Any]) -> None:
    test = deploy["jobs"]["test"]
    assert test["uses"] == "./.github/workflows/ci.yml"
    assert test["permissions"] == {"contents": "read"}

    ci = load(WORKFLOWS / "ci.yml")
    on = triggers(ci)
    assert "workflow_call" in on
    assert "pull_request" in on and on["push"]["branches"] == ["main"]
    scripts = "\n".join(run_scripts(ci))
    # one run of each lint tool: make test's tests/test_repository.py runs them all
    assert "make test" in scripts and "make lint" not in scripts
    from tests import test_repository

    linted = {"test_ruff_check_is_clean", "test_ruff_format_is_clean"}
    linted |= {"test_mypy_finds_no_type_errors", "test_pre_commit_hooks_pass_on_all_files"}
    assert linted <= set(vars(test_repository))


def test_ci_called_by_a_deployment_never_shares_a_cancelling_group() -> None:
    """In a called workflow github.workflow is the caller's name; with the plain
    `ci-<ref>` group, a CI push and a deployment on main would cancel each other."""
    concurrency = load(WORKFLOWS / "ci.yml")["concurrency"]
    assert concurrency["cancel-in-progress"] is True
    group = concurrency["group"]
    assert "github.run_id" in group and "github.workflow == 'ci'" in group
    assert load(WORKFLOWS / "ci.yml")["name"] == "ci"


def test_each_stage_runs_in_its_github_environment(
    deploy: dict[str, Any], stage_job: dict[str, Any]
) -> None:
    """The environment gates the job (reviewers on prod), holds the stage's variables and is
    the OIDC subject the AWS roles trust (repo:<owner/name>:environment:<stage>)."""
    assert stage_job["environment"].endswith("|| inputs.stage }}")
    for stage in STAGES:
        assert deploy["jobs"][stage]["with"]["stage"] == stage
        assert "plan_only" not in deploy["jobs"][stage]["with"]  # the deploy jobs: gated


def test_prod_deploys_exactly_the_version_preprod_deployed(
    deploy: dict[str, Any], stage_workflow: dict[str, Any], stage_job: dict[str, Any]
) -> None:
    assert deploy["jobs"]["prod"]["with"]["model_version"] == (
        "${{ needs.preprod.outputs.model_version }}"
    )
    # the called workflow's output is what its build.py run wrote, read from the tfvars
    call = triggers(stage_workflow)["workflow_call"]
    assert call["outputs"]["model_version"]["value"] == "${{ jobs.deploy.outputs.model_version }}"
    output = stage_job["outputs"]["model_version"]
    step_id = re.fullmatch(r"\$\{\{ steps\.([\w-]+)\.outputs\.model_version \}\}", output)
    assert step_id, output
    _, reader = step(stage_job, lambda s: s.get("id") == step_id.group(1), "sets the output")
    assert "build/$STAGE.tfvars.json" in reader["run"] and "model_version" in reader["run"]
    assert 'model_version=$version" >>"$GITHUB_OUTPUT"' in reader["run"]
    # and that version is the one build.py is told to promote
    assert stage_job["env"]["MODEL_VERSION"] == "${{ inputs.model_version }}"
    _, build = step(stage_job, runs("python build.py"), "runs build.py")
    assert 'args+=(--model-version "$MODEL_VERSION")' in build["run"]
    assert call["inputs"]["model_version"]["type"] == "string"


def test_preprod_takes_the_requested_version(deploy: dict[str, Any]) -> None:
    requested = deploy["jobs"]["preprod"]["with"]["model_version"]
    assert "inputs.model_version" in requested
    assert "github.event.client_payload.model_version" in requested


def test_one_deployment_per_stage_at_a_time_never_cancelled(deploy: dict[str, Any]) -> None:
    for stage in STAGES:
        assert deploy["jobs"][stage]["concurrency"] == {
            "group": f"deploy-{stage}",
            "cancel-in-progress": False,
        }
    assert deploy["jobs"]["prod-plan"]["concurrency"] == {
        "group": "plan-prod",
        "cancel-in-progress": False,
    }
    assert "concurrency" not in deploy, "a workflow-level group would serialise whole runs"


def test_permissions_are_empty_and_id_token_only_on_the_deploy_jobs(
    deploy: dict[str, Any], stage_workflow: dict[str, Any], stage_job: dict[str, Any]
) -> None:
    assert deploy["permissions"] == {}
    assert stage_workflow["permissions"] == {}
    for job in (*STAGES, "prod-plan"):
        assert deploy["jobs"][job]["permissions"] == {"contents": "read", "id-token": "write"}
    assert stage_job["permissions"] == {"contents": "read", "id-token": "write"}

    id_token = []
    for path in WORKFLOW_FILES:
        workflow = load(path)
        assert "id-token" not in (workflow.get("permissions") or {}), path.name
        for job_id, job in workflow["jobs"].items():
            permissions = job.get("permissions")
            if isinstance(permissions, str):
                assert permissions in ("read-all", "{}"), f"{path.name}:{job_id}"
            elif permissions and permissions.get("id-token") == "write":
                id_token.append(f"{path.name}:{job_id}")
    assert sorted(id_token) == [
        "acceptance.yml:acceptance",  # the sandbox accounts' roles (test_acceptance_workflow.py)
        "deploy-stage.yml:deploy",
        "deploy.yml:preprod",
        "deploy.yml:prod",
        "deploy.yml:prod-plan",
        "promote.yml:prod",  # deploy.yml's prod, dispatched by hand (test above)
    ]


def test_terraform_gets_a_fresh_session_as_long_as_its_longest_step(
    stage_job: dict[str, Any],
) -> None:
    """build.py may use most of an hour waiting for image replication, and the endpoint's
    blue/green update may run longer than an hour: Terraform re-assumes the deploy role
    first, for as long as the update may take and the role allows."""
    init_index, _ = step(stage_job, runs("terraform init"), "runs terraform init")
    build_index, _ = step(stage_job, runs("python build.py"), "runs build.py")
    action = "aws-actions/configure-aws-credentials"
    between = [s for s in stage_job["steps"][build_index:init_index] if uses(action)(s)]
    assert len(between) == 1, "fresh credentials between build.py and terraform"
    (fresh,) = between
    assert fresh["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    asked = int(fresh["with"]["role-duration-seconds"])
    template = blocks(sorted((MODULES / "stage").glob("*.tf")))  # the template's module
    endpoint = next(
        spec
        for block in template["resource"]
        for name, spec in block.get('"aws_sagemaker_endpoint"', {}).items()
    )
    policy = endpoint["deployment_config"][0]["blue_green_update_policy"][0]
    routing = policy["traffic_routing_configuration"][0]
    longest_update = (
        policy["maximum_execution_timeout_in_seconds"]
        + policy["termination_wait_in_seconds"]
        + routing["wait_interval_in_seconds"]
    )
    assert asked > longest_update
    role = blocks(root_files("target-account"))
    deploy_role = next(
        spec
        for block in role["resource"]
        for name, spec in block.get('"aws_iam_role"', {}).items()
        if name == '"deploy"'
    )
    assert deploy_role["max_session_duration"] >= asked, "IAM refuses a longer session"


def test_every_job_has_a_timeout() -> None:
    checked = 0
    for path in WORKFLOW_FILES:
        for job_id, job in load(path)["jobs"].items():
            if "runs-on" in job:
                checked += 1
                assert isinstance(job.get("timeout-minutes"), int), f"{path.name}:{job_id}"
    assert checked >= 2


# ----------------------------------------------------------------------------- the stage job


def test_untrusted_input_is_validated_before_anything_else(stage_job: dict[str, Any]) -> None:
    first = stage_job["steps"][0]
    assert "uses" not in first and "::error::" in first["run"]
    assert "^[1-9][0-9]*$" in first["run"]
    assert first["env"]["PAYLOAD_GROUP"] == (
        "${{ github.event.client_payload.model_package_group_name }}"
    )
    assert stage_job["env"]["MODEL_PACKAGE_GROUP_NAME"] == "${{ vars.MODEL_PACKAGE_GROUP_NAME }}"


def case(stage: str, version: str, event: str, error: str | None = None, **extra: str) -> Any:
    variables = {"STAGE": stage, "MODEL_VERSION": version, "EVENT_NAME": event, **extra}
    return pytest.param(variables, error, id=f"{stage}-{event}-{version!r}-{error or 'ok'}")


@pytest.mark.parametrize(
    ("variables", "error"),
    [
        case("preprod", "", "push"),
        case("preprod", "12", "workflow_dispatch"),
        case("preprod", "7", "repository_dispatch", PAYLOAD_GROUP="churn"),
        case("prod", "7", "push"),
        case("preprod", "0", "workflow_dispatch", "model_version"),
        case("preprod", "07", "workflow_dispatch", "model_version"),
        case("preprod", "7; curl x | sh", "workflow_dispatch", "model_version"),
        case("preprod", "7\n::add-mask::x", "workflow_dispatch", "model_version"),
        case("preprod", "7", "repository_dispatch", "model_package_group_name", PAYLOAD_GROUP="x"),
        case("preprod", "7", "repository_dispatch", "model_package_group_name"),
        case("prod", "", "push", "prod deploys only"),
        case("qa", "", "push", "stage must be"),
        case("preprod", "", "push", "TF_STATE_BUCKET is not set", TF_STATE_BUCKET=""),
        case("preprod", "", "push", "main only", GITHUB_REF="refs/heads/feature"),
    ],
)
def test_the_validation_script(
    stage_job: dict[str, Any], variables: dict[str, str], error: str | None
) -> None:
    """Run the validation step's script as the runner does (bash -eo pipefail)."""
    script = stage_job["steps"][0]["run"]
    settings = {name: f"value-{name}" for name in REPOSITORY_VARIABLES | ENVIRONMENT_VARIABLES}
    settings["MODEL_PACKAGE_GROUP_NAME"] = "churn"
    env = {"PATH": os.environ["PATH"], "GITHUB_REF": "refs/heads/main", **settings, **variables}
    result = subprocess.run(
        [
            shutil.which("bash") or "/bin/bash",
            "--noprofile",
            "--norc",
            "-eo",
            "pipefail",
            "-c",
            script,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if error is None:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "::error::" not in result.stdout
    else:
        assert result.returncode != 0
        lines = result.stdout.splitlines()
        assert len(lines) == 1 and lines[0].startswith("::error::"), result.stdout
        assert error in lines[0]
        assert "add-mask" not in result.stdout and "curl" not in result.stdout


def test_two_oidc_roles_dev_credentials_only_for_build_py(stage_job: dict[str, Any]) -> None:
    action = "aws-actions/configure-aws-credentials"
    configured = [(i, s) for i, s in enumerate(stage_job["steps"]) if uses(action)(s)]
    # then the stage's role again, fresh: for Terraform, the smoke run and the shadow run
    assert len(configured) == 5
    (dev_index, dev), (stage_index, stage), *again = configured
    assert {a["with"]["role-to-assume"] for _, a in again} == {stage["with"]["role-to-assume"]}
    assert dev["with"]["role-to-assume"] == "${{ vars.AWS_REGISTRY_READ_ROLE_ARN }}"
    assert dev["with"]["output-credentials"] is True
    assert dev["with"]["output-env-credentials"] is False, "dev credentials stay out of env"
    assert stage["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    assert stage["with"].get("output-env-credentials", True) is True, "the job's default"
    assert {dev["with"]["aws-region"], stage["with"]["aws-region"]} == {"${{ vars.AWS_REGION }}"}

    build_index, build = step(stage_job, runs("python build.py"), "runs build.py")
    assert dev_index < stage_index < build_index
    assert "--source-profile dev" in build["run"]
    assert 'AWS_SHARED_CREDENTIALS_FILE="$credentials"' in build["run"]
    assert "$RUNNER_TEMP" in build["run"] and "trap 'rm -f" in build["run"]
    assert "umask 077" in build["run"]
    assert re.search(r"\becho\b.*DEV_", build["run"]) is None, "never print the credentials"
    dev_outputs = f"steps.{dev['id']}.outputs."
    readers = [s.get("name") for s in stage_job["steps"] if dev_outputs in json.dumps(s)]
    assert readers == [build["name"]], "only build.py's step may see the dev credentials"


def test_build_py_gets_its_settings_and_account_guard_from_variables(
    stage_job: dict[str, Any],
) -> None:
    env = stage_job["env"]
    for name in REPOSITORY_VARIABLES - {"AWS_REGISTRY_READ_ROLE_ARN"} | OPTIONAL_VARIABLES:
        assert env[name] == f"${{{{ vars.{name} }}}}", name
    assert env["STAGE"] == "${{ inputs.stage }}"
    _, build = step(stage_job, runs("python build.py"), "runs build.py")
    assert '--stage "$STAGE"' in build["run"]
    assert ".venv/bin/python build.py" in build["run"]


def test_toolchain_from_the_project_pins(stage_job: dict[str, Any]) -> None:
    assert_project_toolchain(stage_job)


def test_terraform_init_plan_summary_apply(stage_job: dict[str, Any]) -> None:
    init_index, init = step(stage_job, runs("terraform init"), "runs terraform init")
    assert init["env"]["TF_STATE_BUCKET"] == "${{ vars.TF_STATE_BUCKET }}"
    for setting in (
        '-backend-config="bucket=$TF_STATE_BUCKET"',
        '-backend-config="key=$SAGEMAKER_PROJECT_NAME/$STAGE/batch-inference.tfstate"',
        '-backend-config="region=$AWS_REGION"',
        '-backend-config="use_lockfile=true"',
    ):
        assert setting in init["run"], setting
    # the state bucket's default encryption (the stage key) applies; encrypt=true would force AES256
    assert "encrypt=" not in init["run"]
    plan_index, plan = step(stage_job, runs("terraform plan"), "runs terraform plan")
    assert '-var-file="build/$STAGE.tfvars.json" -out=tfplan' in plan["run"]
    assert "-input=false" in plan["run"]
    show_index, show = step(stage_job, runs("terraform show -no-color"), "shows the plan")
    assert "terraform show -no-color tfplan" in show["run"]
    assert '>>"$GITHUB_STEP_SUMMARY"' in show["run"] and show["run"].count("```") == 2
    apply_index, apply = step(stage_job, runs("terraform apply"), "applies")
    assert "terraform apply -input=false tfplan" in apply["run"]
    build_index, _ = step(stage_job, runs("python build.py"), "runs build.py")
    assert build_index < init_index < plan_index < show_index < apply_index

    # GitHub's runners get providers from the registry: never through make and the
    # project's terraform.tfrc (a local mirror); the root module is the repository root
    for terraform_step in (init, plan, show, apply):
        assert "make" not in terraform_step["run"].split()
        assert "-chdir" not in terraform_step["run"]
    assert "TF_CLI_CONFIG_FILE" not in json.dumps(stage_job["env"])
    # the template and, for one release, its moved blocks: nothing else at the root
    assert sorted(p.name for p in REPO.glob("*.tf")) == [
        "batch-config-moved.tf", "batch-config-template.tf",
    ]  # fmt: skip


def plan_json(changes: dict[str, list[str]]) -> str:
    """``terraform show -json`` of a plan, as much of it as the changes step reads."""
    resource_changes = [
        {"address": address, "change": {"actions": actions, "after": {"x": 1}}}
        for address, actions in changes.items()
    ]
    return json.dumps({"format_version": "1.2", "resource_changes": resource_changes})


def run_changes_step(
    script: str, tmp_path: Path, plan: str, reviewed: str
) -> subprocess.CompletedProcess:
    """The step's own script, with a stand-in ``terraform`` that prints ``plan``."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (tmp_path / "plan.json").write_text(plan)
    terraform = fake / "terraform"
    terraform.write_text(f'#!/bin/sh\ncat "{tmp_path / "plan.json"}"\n')
    terraform.chmod(0o755)
    output = tmp_path / "github_output"
    output.write_text("")
    env = {
        "PATH": f"{fake}:{os.environ['PATH']}",
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_OUTPUT": str(output),
        "REVIEWED": reviewed,
    }
    return subprocess.run(
        [shutil.which("bash") or "/bin/bash", "-e", "-o", "pipefail", "-c", script],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_prod_applies_only_a_plan_that_changes_what_the_approver_read(
    deploy: dict[str, Any], stage_job: dict[str, Any], tmp_path: Path
) -> None:
    """The prod plan job hands the digest of its changes to the gated job, which stops
    before applying a plan whose changes differ (state or inputs moved in between)."""
    prod = deploy["jobs"]["prod"]
    assert prod["with"]["reviewed_changes"] == "${{ needs.prod-plan.outputs.plan_changes }}"
    assert "prod-plan" in prod["needs"]
    index, changes = step(stage_job, lambda s: s.get("id") == "changes", "digests the plan")
    apply_index, _ = step(stage_job, runs("terraform apply"), "applies")
    assert index < apply_index and "if" not in changes, "runs in the plan job too"
    assert changes["env"]["REVIEWED"] == "${{ inputs.reviewed_changes }}"
    assert stage_job["outputs"]["plan_changes"] == "${{ steps.changes.outputs.digest }}"

    approved = {'aws_sagemaker_model.batch["m-v2"]': ["create"], "aws_s3_object.r": ["update"]}
    first = run_changes_step(changes["run"], tmp_path, plan_json(approved), "")
    assert first.returncode == 0, first.stderr
    digest = (tmp_path / "github_output").read_text().strip().removeprefix("digest=")
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    # the same changes in another order, plus resources with nothing to do: the same plan
    same = {"aws_s3_object.r": ["update"], "x.y": ["no-op"], **approved}
    assert run_changes_step(changes["run"], tmp_path, plan_json(same), digest).returncode == 0
    moved = {**approved, 'aws_sagemaker_model.batch["m-v1"]': ["delete"]}
    refused = run_changes_step(changes["run"], tmp_path, plan_json(moved), digest)
    assert refused.returncode == 1
    assert "::error::this plan changes other resources than the plan approved" in refused.stdout
    assert 'delete aws_sagemaker_model.batch["m-v1"]' in refused.stdout


# ----------------------------------------------------------------------------- the shadow step

SHADOW_DAYS = (date(2026, 11, 1), date(2026, 11, 2))
RECORDED = ("model_name", "model_package_arn", "source_model_package_arn", "model_version")


@pytest.fixture
def prod_plan_job(
    aws: Emulator, tmp_path: Path, built_model: Any, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """Prod as its plan job finds it: version 1 deployed (its Model, its pipeline and the
    shadow pipeline, as the apply makes them) and two days scored by it; version 2 approved
    in dev, trained on shuffled labels (answers that differ), its tfvars and candidate Model
    made by the plan job's ``build.py --plan-only --shadow-candidate``; the job's workspace."""
    from examples.breast_cancer import data, model
    from pipelines import run_pipeline
    from promotion.names import candidate_model_name
    from promotion.stage import deployment_record_key
    from stage_runtime import partitions
    from tests.registry import GROUP, IMAGE, DevRegistry, create_deployed_pipeline, run_build

    # the model is served in process (tests/test_container_contract.py holds that to the
    # image's stack): what is tested here is the step, not serving
    monkeypatch.setenv("LOCAL_SERVING", "in-process")
    for name, value in aws.credential_variables("prod").items():
        monkeypatch.setenv(name, value)
    sandbox.create_stage(aws, "prod", PROJECT)
    # prod's stage file, on one instance per step (what is tested is the step, not sharding)
    config = tmp_path / "prod-config.tfvars.json"
    shipped = json.loads((REPO / "prod-config.tfvars.json").read_text())
    counts = {"processing_instance_count": 1, "transform_instance_count": 1}
    config.write_text(json.dumps(shipped | counts))
    registry = DevRegistry(aws)
    candidate_built = model.build(tmp_path / "v2", seed=1, degraded=True)
    for number, built in ((1, built_model), (2, candidate_built)):
        url = registry.put_artifact(f"run-{number}/model.tar.gz", built.archive.read_bytes())
        container = {"Image": IMAGE, "ModelDataUrl": url}
        registry.register("Approved", [container | {"Environment": model.container_environment()}])
        if number == 1:
            assert run_build(tmp_path, "--config", str(config), "--model-version", "1",
                             stage="prod") == 0  # fmt: skip
            deployed = json.loads((tmp_path / "prod.tfvars.json").read_text())
    prod_s3 = aws.client("s3", "prod")
    sagemaker = aws.client("sagemaker", "prod")
    sagemaker.create_model(
        ModelName=deployed["model_name"],
        ExecutionRoleArn=deployed["sagemaker_role_arn"],
        PrimaryContainer={
            "ModelPackageName": deployed["model_package_arn"],
            "Environment": STAGE_MODEL_ENVIRONMENT,
        },
    )
    create_deployed_pipeline(aws, deployed, "prod")
    # the deployment record the apply writes (aws_s3_object): what build.py finds deployed
    current = {key: deployed[key] for key in RECORDED} | {"endpoint_config": None}
    prod_s3.put_object(
        Bucket=deployed["artifacts_bucket"],
        Key=deployment_record_key(PROJECT, "prod"),
        Body=json.dumps({"current": current, "previous": None}).encode(),
    )
    # the shadow pipeline: the same definition, run as the shadow role (given as text: moto
    # describes one made from an S3 location with the Python repr of its definition)
    definition = prod_s3.get_object(
        Bucket=deployed["artifacts_bucket"], Key=deployed["pipeline_definition_s3_key"]
    )["Body"].read()
    sagemaker.create_pipeline(
        PipelineName=deployed["shadow_pipeline_name"],
        ClientRequestToken=str(uuid.uuid4()),
        PipelineDefinition=definition.decode(),
        RoleArn=deployed["shadow_role_arn"],
    )
    layout = partitions.Layout(deployed["input_data_url"], deployed["output_data_url"])
    for day in SHADOW_DAYS:
        rows = data.generate(tmp_path / f"{day}.csv", rows=200, seed=day.day)
        bucket, prefix = partitions.parse_s3_uri(layout.input_uri(day))
        prod_s3.put_object(Bucket=bucket, Key=f"{prefix}batch.csv", Body=rows.path.read_bytes())
    deployed_path = tmp_path / "deployed.tfvars.json"
    (tmp_path / "prod.tfvars.json").rename(deployed_path)
    first, last = (str(day) for day in (SHADOW_DAYS[0], SHADOW_DAYS[-1]))
    local = ["--local", "--work-dir", str(tmp_path / "runs")]
    assert run_pipeline.main(["--tfvars", str(deployed_path), "--date", first, "--until", last,
                              *local]) == 0  # fmt: skip
    markers = {
        str(day): partitions.read_marker(prod_s3, layout.marker_uri(day)) for day in SHADOW_DAYS
    }

    # the plan job's build.py: the candidate's Model made, nothing else changed
    plan = ("--config", str(config), "--model-version", "2", "--plan-only", "--shadow-candidate")
    assert run_build(tmp_path, *plan, stage="prod") == 0
    planned = json.loads((tmp_path / "prod.tfvars.json").read_text())
    assert planned["model_version"] == 2
    # the stage file's settings, resolved: prod's limit, the defaults
    assert (planned["shadow_days"], planned["shadow_max_flip_rate"]) == (3, 0.2)
    assert planned["shadow_show_ids"] is False
    candidate = candidate_model_name(GROUP, "prod", 2)
    assert (
        sagemaker.describe_model(ModelName=candidate)["ExecutionRoleArn"]
        == (planned["shadow_role_arn"])
    )
    workspace = tmp_path / "workspace"
    (workspace / "build").mkdir(parents=True)
    (workspace / ".venv").symlink_to(REPO / ".venv")
    return {"tfvars": planned, "workspace": workspace, "candidate": candidate, "markers": markers}


def run_shadow_step(
    aws: Emulator, job: dict[str, Any], proxy_url: str, accept: bool, **settings: Any
) -> tuple[subprocess.CompletedProcess, str, Path]:
    """The plan job's shadow step, its own script run as the runner runs it (bash -eo
    pipefail, in the checkout, the job's and the step's env), the tfvars as build.py wrote
    them with the stage file's ``settings``: its result, the job summary, its --out."""
    stage_job = load(WORKFLOWS / "deploy-stage.yml")["jobs"]["deploy"]
    _, shadow = step(stage_job, runs("python -m pipelines.shadow_run"), "runs the shadow")
    workspace = job["workspace"]
    (workspace / "build" / "prod.tfvars.json").write_text(json.dumps(job["tfvars"] | settings))
    runner_temp = Path(tempfile.mkdtemp(dir=workspace.parent, prefix="runner-"))
    summary = runner_temp / "step_summary.md"
    summary.write_text("### prod plan, before approval: model version 2\n\n(the plan)\n")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(workspace),
        "PYTHONPATH": str(REPO),  # the checkout: python -m runs its modules
        **aws.environment(),
        **aws.credential_variables("prod"),
        "AWS_ENDPOINT_URL_SAGEMAKER": proxy_url,
        "STAGE": "prod",
        "PLAN_ONLY": "true",
        "RUNNER_TEMP": str(runner_temp),
        "GITHUB_STEP_SUMMARY": str(summary),
        # GitHub renders a boolean input into env as "true" or "false"
        "ACCEPT_SHADOW_FLIPS": "true" if accept else "false",
    }
    result = subprocess.run(
        [shutil.which("bash") or "/bin/bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
         shadow["run"]],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    return result, summary.read_text(), runner_temp / "shadow"


def test_the_shadow_step_puts_the_comparison_before_the_reviewer_and_its_limit_fails_the_plan(
    aws: Emulator, prod_plan_job: dict[str, Any], tmp_path: Path
) -> None:
    """The step's script against the emulator, moto's pipeline executions run by the local
    executor (tests/pipeline_proxy.py): the candidate scores prod's last scored days in the
    shadow pipeline and the comparison lands in the summary the reviewer reads; over the
    stage's shadow_max_flip_rate the step fails (so the plan job does, and the gate never
    opens); with accept_shadow_flips it passes with a warning; with nothing to shadow it
    passes with one line saying why."""
    from tests.pipeline_proxy import executing_pipelines

    tfvars = prod_plan_job["tfvars"]
    with executing_pipelines(aws.endpoint_url, aws.account("prod"), tmp_path / "jobs") as proxy:
        # (a) no limit: the comparison of both days, appended after the plan
        result, summary, out = run_shadow_step(
            aws, prod_plan_job, proxy.url, False, shadow_days=2, shadow_max_flip_rate=None
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert summary.startswith("### prod plan, before approval: model version 2\n\n(the plan)\n")
        document = json.loads((out / "shadow.json").read_text())
        assert sorted(document["days"]) == [str(day) for day in SHADOW_DAYS]
        assert len(proxy.runs) == 2
        for day, compared in document["days"].items():
            marker = prod_plan_job["markers"][day]
            assert compared["executions"]["champion"] == marker["execution_arn"]
            arn = compared["executions"]["candidate"]
            assert f":pipeline/{tfvars['shadow_pipeline_name'].lower()}/execution/" in arn
            run = proxy.runs[arn]
            assert run["PipelineExecutionStatus"] == "Succeeded"
            assert run["Parameters"]["ModelName"] == prod_plan_job["candidate"]
            assert run["Parameters"]["OutputDataUrl"].startswith(
                f"{tfvars['output_data_url'].rstrip('/')}/_shadow/v2/"
            )
            assert compared["rows"]["both"] == marker["rows_scored"] > 0
            assert day in summary
        rate = max(day["decision"]["flip_rate"] for day in document["days"].values())
        assert rate > 0.2, "version 2 answers at random: its decisions flip"
        assert f"{rate:.2%}" in summary or f"{rate:.1%}" in summary
        assert (out / "shadow.html").is_file()
        # what the artifact uploads leaves the account: no production id (shadow_show_ids)
        shown = [row["id"] for day in document["days"].values()
                 for row in day["largest_disagreements"]]  # fmt: skip
        assert shown and set(shown) == {"(withheld)"}
        assert "ids withheld: shadow_show_ids is false for this stage" in summary

        # (b) prod's own limit (0.2 in its stage file), below that rate: the step fails,
        # naming the limit and the override
        result, summary, out = run_shadow_step(aws, prod_plan_job, proxy.url, False, shadow_days=1)
        assert result.returncode == 3, result.stdout[-3000:] + result.stderr[-3000:]
        assert "over the limit of 20.00%" in result.stderr
        assert "run deploy again with accept_shadow_flips (the override)" in result.stderr
        assert "over the limit of 20.00% (shadow_max_flip_rate)" in summary
        # shadow_days from the tfvars: the last scored day only
        ((last, day),) = json.loads((out / "shadow.json").read_text())["days"].items()
        assert last == str(SHADOW_DAYS[-1])
        assert f"{day['decision']['flip_rate']:.2%}" in summary

        # (c) the override: the same run passes, and the summary says what was accepted
        result, summary, out = run_shadow_step(aws, prod_plan_job, proxy.url, True, shadow_days=1)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "over the limit of 20.00% (shadow_max_flip_rate)" in summary
        assert "**warning**: over the limit, accepted by the run's accept_shadow_flips" in summary
        assert "over the limit" not in result.stderr
        assert len(proxy.runs) == 4

        # nothing to shadow: one line for the reviewer, the step passes, nothing runs
        for settings, why in (
            ({"shadow_days": 0}, "shadow_days is 0 in the prod stage file"),
            ({"shadow_role_arn": None}, "the prod account has no shadow role"),
        ):
            result, summary, out = run_shadow_step(aws, prod_plan_job, proxy.url, False, **settings)
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            added = summary.removeprefix(
                "### prod plan, before approval: model version 2\n\n(the plan)\n"
            )
            assert added.strip().startswith(f"**shadow run skipped:** {why}"), summary
            assert len(added.strip().splitlines()) == 1, added
        assert len(proxy.runs) == 4


# ----------------------------------------------------------------------------- every workflow


def test_every_checkout_drops_its_credentials() -> None:
    checkouts = [
        (path.name, s)
        for path in WORKFLOW_FILES
        for s in steps_of(load(path))
        if uses("actions/checkout")(s)
    ]
    assert len(checkouts) >= 2
    for name, checkout in checkouts:
        assert checkout.get("with", {}).get("persist-credentials") is False, name


def test_every_third_party_action_is_pinned_to_a_commit_with_its_version() -> None:
    references = 0
    for path in [*WORKFLOW_FILES, *ACTION_FILES]:
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"\s*(?:-\s+)?uses:\s*([^\s#]+)\s*(#.*)?$", line)
            if not match:
                continue
            reference, comment = match.groups()
            if reference.startswith(("./", "$/")):
                continue
            references += 1
            assert PINNED.fullmatch(reference), f"{path.name}: {reference} is not pinned"
            assert comment and re.match(r"#\s*v\d+(\.\d+)*\b", comment), (
                f"{path.name}: {reference} needs a '# vX.Y.Z' comment"
            )
    assert references >= 8


def test_no_untrusted_expression_inside_a_run_script() -> None:
    """Such values are expanded into the script before the shell runs: injection. They reach
    scripts through `env:` instead."""
    assert untrusted_expressions('echo "${{ github.event.client_payload.x }}"')
    assert untrusted_expressions("v=${{ inputs.model_version }}")
    assert untrusted_expressions("git checkout ${{github.head_ref}}")
    assert not untrusted_expressions('echo "$MODEL_VERSION" ${{ runner.temp }}')

    scripts = 0
    for path, document in all_documents():
        for script in run_scripts(document):
            scripts += 1
            assert not untrusted_expressions(script), f"{path.name}: {script}"
    assert scripts >= 10


def test_every_variable_the_workflows_read_is_documented() -> None:
    used = set()
    for path in WORKFLOW_FILES:
        used |= set(re.findall(r"\bvars\.([A-Z0-9_]+)", path.read_text(encoding="utf-8")))
    assert used == (
        REPOSITORY_VARIABLES | ENVIRONMENT_VARIABLES | OPTIONAL_VARIABLES | ACCEPTANCE_VARIABLES
    )
    guide = (REPO / "docs" / "deploying-from-github.md").read_text(encoding="utf-8")
    for name in used:
        assert f"`{name}`" in guide, f"{name} is not in docs/deploying-from-github.md"


def test_actionlint_reports_nothing() -> None:
    result = subprocess.run(
        [str(BIN / "actionlint"), *(str(path) for path in WORKFLOW_FILES)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_reports_nothing() -> None:
    result = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--min-severity", "low", ".github/workflows"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
