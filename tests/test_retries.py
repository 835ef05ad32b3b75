"""One retry policy for every AWS client (common/aws_sessions.py), proven through a proxy
that injects AWS's transient failures in front of the emulator (tests/fault_proxy.py):
throttling, 5xx and connection resets on 30 % of the requests, seeded. The CLIs hold, and
the smoke run never stops a healthy run because a status poll failed."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import date
from pathlib import Path
from typing import Any

import moto.sagemaker.models
import pytest

from common.exit_codes import AWS_ERROR, EXECUTION_FAILED
from common.s3_locations import parse_s3_uri
from local_mode import sandbox
from local_mode.emulator import ACCOUNTS, Emulator
from pipelines import run_pipeline, smoke, smoke_run
from stage_runtime import executions, runs
from tests.fault_proxy import FaultProxy, faulty
from tests.registry import (
    deploy_preprod,
    keep_executions_running,
)

DESCRIBE = "SageMaker.DescribePipelineExecution"
STOP = "SageMaker.StopPipelineExecution"
MODULE = "pipelines.batch_inference.pipeline"


@pytest.fixture
def through(aws: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FaultProxy]]:
    """``through(seed=..., rate=...)``: every client of this process goes through a fault
    proxy, with the policy's own attempts (AWS_MAX_ATTEMPTS unset, as on a runner)."""
    opened: list[AbstractContextManager[FaultProxy]] = []

    def open_proxy(seed: int = 28, rate: float = 0.3, attempts: str | None = None) -> FaultProxy:
        context = faulty(aws.endpoint_url, rate=rate, seed=seed)
        proxy = context.__enter__()
        opened.append(context)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        if attempts is None:
            monkeypatch.delenv("AWS_MAX_ATTEMPTS")
        else:
            monkeypatch.setenv("AWS_MAX_ATTEMPTS", attempts)
        return proxy

    yield open_proxy
    for context in reversed(opened):
        context.__exit__(None, None, None)


@pytest.fixture
def deployed(aws: Emulator, tmp_path: Path) -> dict[str, Any]:
    """Preprod promoted (without faults) and its pipeline created, as the apply leaves them."""
    return deploy_preprod(aws, tmp_path)


def _as_preprod(aws: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in aws.credential_variables("preprod").items():
        monkeypatch.setenv(name, value)


# ------------------------------------------------------------- the CLIs at 30 % faults


def _run_pipeline(aws: Emulator, tmp_path: Path, _: pytest.MonkeyPatch) -> Callable[[], int]:
    role = aws.client("iam").create_role(
        RoleName="SageMakerPipelineRole",
        AssumeRolePolicyDocument=json.dumps(sandbox.SAGEMAKER_TRUST),
    )["Role"]["Arn"]
    kwargs = {"region": aws.region, "role": role, "default_bucket": "b", "model_name": "m"}
    return lambda: run_pipeline.main(
        ["--module-name", MODULE, "--role-arn", role, "--kwargs", json.dumps(kwargs),
         "--wait", "--poll-seconds", "0.01"]
    )  # fmt: skip


def _smoke_run(aws: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """moto runs no job, so a fault-free smoke run succeeds and scores no rows (exit 3, that
    line); what the faults must not change is that verdict."""
    deploy_preprod(aws, tmp_path)
    tfvars = tmp_path / "preprod.tfvars.json"
    _as_preprod(aws, monkeypatch)

    def run() -> int:
        code = smoke_run.main(["--tfvars", str(tfvars), "--poll-seconds", "0.01"])
        return 0 if code == EXECUTION_FAILED else code

    return run


DAY = "2026-11-01"


def _backfill(aws: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """A day with input, scored again by each run (``--force``) and awaited; moto runs no
    job, so the day ends Succeeded with no summaries: what the faults must not change."""
    tfvars = deploy_preprod(aws, tmp_path)
    layout = runs.layout_of(tfvars)
    bucket, key = parse_s3_uri(layout.input_uri(date.fromisoformat(DAY)))
    aws.client("s3", "preprod").put_object(Bucket=bucket, Key=f"{key}a.csv", Body=b"id,x\n1,2\n")
    _as_preprod(aws, monkeypatch)
    return lambda: run_pipeline.main(
        ["--tfvars", str(tmp_path / "preprod.tfvars.json"), "--date", DAY, "--force", "--wait",
         "--poll-seconds", "0.01"]
    )  # fmt: skip


# CLI -> its setup (without faults), returning one run of it: 0 when it held
CLI_CASES: dict[str, Callable[[Emulator, Path, pytest.MonkeyPatch], Callable[[], int]]] = {
    "run_pipeline --wait": _run_pipeline,
    "smoke_run": _smoke_run,
    "run_pipeline --tfvars (backfill)": _backfill,
}
# seeds whose faults include three in a row within the first requests: one call of each run
# loses three attempts, which botocore's default (standard, 3 attempts) gives up on
SEEDS = (7, 113)


@pytest.mark.parametrize("cli", list(CLI_CASES))
def test_the_clis_hold_at_30_percent_transient_faults(
    aws: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    cli: str,
) -> None:
    run = CLI_CASES[cli](aws, tmp_path, monkeypatch)
    monkeypatch.delenv("AWS_MAX_ATTEMPTS")  # the policy's own attempts, as on a runner
    injected: Counter[str] = Counter()
    for seed in SEEDS:
        capsys.readouterr()
        with faulty(aws.endpoint_url, rate=0.3, seed=seed) as proxy:
            monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
            started = time.monotonic()
            code = run()
        err = capsys.readouterr().err.strip()
        assert code == 0, f"{cli}, seed {seed}: {err}; faults: {proxy.log}"
        assert STOP not in proxy.operations
        assert proxy.longest_streak >= 3, "the seed no longer makes a call lose 3 attempts"
        if cli == "smoke_run":
            assert err.endswith("the run succeeded but scored no rows"), err
        injected += proxy.injected
        seconds = time.monotonic() - started
        print(
            f"{cli} seed {seed}: {proxy.requests} requests, {dict(proxy.injected)}, {seconds:.1f} s"
        )
    assert set(injected) == {"throttle", "5xx", "reset"}, injected


# ------------------------------------------------------- a poll that fails is not the end


def _finish_after(polls: int, arn: Callable[[], str]) -> Callable[[float], None]:
    """A ``sleep`` for the wait that lets the run end (in the emulator) after ``polls``."""
    slept: list[float] = []

    def sleep(_: float) -> None:
        slept.append(_)
        if len(slept) == polls:
            for backend in moto.sagemaker.models.sagemaker_backends[ACCOUNTS["preprod"]].values():
                for pipeline in backend.pipelines.values():
                    execution = pipeline.pipeline_executions.get(arn())
                    if execution:
                        execution.pipeline_execution_status = "Succeeded"

    return sleep


def _started(aws: Emulator, name: str) -> str:
    listing = aws.client("sagemaker", "preprod").list_pipeline_executions(PipelineName=name)
    return listing["PipelineExecutionSummaries"][0]["PipelineExecutionArn"]


@pytest.mark.parametrize(
    ("outage", "timeout", "status", "reason"),
    [
        # the first poll exhausts its attempts, the next ones read the run: it ends well
        (3, 3600, "Succeeded", None),
        # every poll fails until the deadline: the run is left running, and said so
        (10**6, 0.5, "StatusUnknown", "it was not stopped and may still be running"),
    ],
)
def test_a_failed_status_poll_never_stops_the_run(
    aws: Emulator,
    deployed: dict[str, Any],
    through: Callable[..., FaultProxy],
    monkeypatch: pytest.MonkeyPatch,
    outage: int,
    timeout: float,
    status: str,
    reason: str | None,
) -> None:
    keep_executions_running(monkeypatch)
    proxy = through(rate=0.0, attempts="3")
    proxy.outages[DESCRIBE] = outage
    session = aws.account("preprod")
    sagemaker = session.client("sagemaker")  # the emulator's session: the project's policy
    arn, got, why = smoke.run_on_sagemaker(
        sagemaker,
        deployed,
        runs.schedule_parameters(deployed, "s3://b/smoke/"),
        timeout_seconds=timeout,
        poll_seconds=0.01,
        sleep=_finish_after(2, lambda: _started(aws, deployed["pipeline_name"])),
    )
    assert got == status, why
    assert STOP not in proxy.operations
    assert proxy.operations.count(DESCRIBE) >= 3
    if reason:
        assert why is not None and reason in why
        assert f"--pipeline-execution-arn {arn}" in why


def test_smoke_run_that_cannot_read_its_run_says_how_to_follow_it(
    aws: Emulator,
    deployed: dict[str, Any],
    through: Callable[..., FaultProxy],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _as_preprod(aws, monkeypatch)
    proxy = through(rate=0.0, attempts="1")
    proxy.outages[DESCRIBE] = 10**6
    code = smoke_run.main(
        ["--tfvars", str(tmp_path / "preprod.tfvars.json"), "--poll-seconds", "0.01",
         "--timeout-minutes", "0.005"]
    )  # fmt: skip
    assert code == AWS_ERROR
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("smoke_run: preprod smoke run: could not read the run's status (")
    assert "it was not stopped and may still be running: follow it with `aws sagemaker " in line
    assert STOP not in proxy.operations


def test_run_pipeline_wait_gives_up_on_polls_not_on_the_run(
    aws: Emulator, through: Callable[..., FaultProxy], capsys: pytest.CaptureFixture[str]
) -> None:
    role = aws.client("iam").create_role(
        RoleName="SageMakerPipelineRole",
        AssumeRolePolicyDocument=json.dumps(sandbox.SAGEMAKER_TRUST),
    )["Role"]["Arn"]
    proxy = through(rate=0.0, attempts="1")
    proxy.outages[DESCRIBE] = 10**6
    kwargs = {"region": aws.region, "role": role, "default_bucket": "b", "model_name": "m"}
    code = run_pipeline.main(
        ["--module-name", MODULE, "--role-arn", role, "--kwargs", json.dumps(kwargs),
         "--wait", "--poll-seconds", "0"]
    )  # fmt: skip
    assert code == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("run_pipeline: could not read the status of arn:aws:sagemaker:")
    assert line.endswith("or in SageMaker Studio")
    assert proxy.operations.count(DESCRIBE) == executions.MAX_FAILED_POLLS
    assert STOP not in proxy.operations


def test_a_backfill_that_cannot_read_its_run_leaves_the_day_to_it(
    aws: Emulator,
    tmp_path: Path,
    through: Callable[..., FaultProxy],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--wait`` gives up on the polls, not on the run: the day's marker stays Executing
    (the run-outcome function or a later trigger completes it), nothing is stopped."""
    run = _backfill(aws, tmp_path, monkeypatch)
    keep_executions_running(monkeypatch)
    proxy = through(rate=0.0, attempts="1")
    proxy.outages[DESCRIBE] = 10**6
    assert run() == AWS_ERROR
    output = capsys.readouterr()
    assert "it was not stopped and may still be running: follow it with `aws sagemaker" in (
        output.out + output.err
    )
    tfvars = json.loads((tmp_path / "preprod.tfvars.json").read_text())
    bucket, key = parse_s3_uri(runs.layout_of(tfvars).marker_uri(date.fromisoformat(DAY)))
    body = aws.client("s3", "preprod").get_object(Bucket=bucket, Key=key)["Body"].read()
    marker = json.loads(body)
    assert marker["status"] == "Executing"
    assert proxy.operations.count(DESCRIBE) == executions.MAX_FAILED_POLLS
    assert STOP not in proxy.operations
