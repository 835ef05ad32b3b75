"""``python -m acceptance``: the acceptance run in two sandbox accounts (#35).

    python -m acceptance --dev-profile DEV --stage-profile STAGE [--deploy-profile DEPLOY] \\
        --region eu-west-1 --dev-bucket <a dev bucket> --project-name acc-1 \\
        [--price ml.m5.xlarge=0.23 ...] [--output build/acceptance] [--keep] [--yes]

Prints the plan (time, instance-minutes, cost of the priced types) and stops unless ``--yes``.
The stage account must hold the project's base (``infra/target-account`` applied with that
``project_name`` as ``preprod``); the run refuses a project whose group, pipelines or bucket
prefix exist already. Then runs the flow (``catalogue.STEPS``): the sample registered,
``build.py``, the stage template applied and version 2 over it (as ``--deploy-profile``, the
base's deploy role, when given), a scheduled day, two uploads, a backfill, the smoke run, and
reads back what they left; it always tears down what it made (``--keep`` leaves it and lists
it), and writes ``acceptance.json`` and ``acceptance.md``: each check passed or failed with
the evidence read, or skipped saying why (docs/deploying-to-aws.md, section 8).

Exit codes: 0 no check failed; 1 a check failed or the run stopped (AWS, build.py or
Terraform refused); 2 bad arguments or a refused start (nothing made); 3 the teardown left
something (listed).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from botocore.exceptions import BotoCoreError, ClientError

from acceptance import deploy, endpoint, observe, plan, report, runs
from acceptance.flow import Refused, Run
from common import aws_sessions
from promotion.errors import UsageError
from promotion.stage_config import load_stage_config

REPO = Path(__file__).resolve().parents[1]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"acceptance: error: {message}\n")


def _price(text: str) -> tuple[str, float]:
    try:
        return plan.parse_price(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m acceptance", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dev-profile", required=True, help="AWS profile of the sandbox dev account"
    )
    parser.add_argument("--stage-profile", required=True, help="... of the sandbox stage account")
    parser.add_argument(
        "--deploy-profile",
        help="the base's deploy role in the stage account: build.py and the applies run as it "
        "(the acceptance workflow's OIDC session); settles permissions-boundary and "
        "deploy-role-rights",
    )
    parser.add_argument("--region", required=True)
    parser.add_argument("--dev-bucket", required=True, help="infra/dev-account's artifacts bucket")
    parser.add_argument(
        "--project-name",
        required=True,
        help="the throwaway project whose base (infra/target-account, as preprod) you applied",
    )
    parser.add_argument("--config", type=Path, default=REPO / "pre-prod-config.tfvars.json")
    parser.add_argument("--price", type=_price, action="append", default=[], metavar="TYPE=USD")
    parser.add_argument("--output", type=Path, default=Path("build") / "acceptance")
    parser.add_argument("--keep", action="store_true", help="leave what the run made")
    parser.add_argument("--yes", action="store_true", help="start (after reading the plan)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        # the stage account plays preprod; the file checked as build.py checks it
        stage_config = load_stage_config(args.config, "preprod")
        named = [("--dev-profile", args.dev_profile), ("--stage-profile", args.stage_profile)]
        named += [("--deploy-profile", args.deploy_profile)] * bool(args.deploy_profile)
        sessions = [aws_sessions.session(args.region, profile) for _, profile in named]
        for option, profile in named:
            if profile not in sessions[0].available_profiles:
                raise ValueError(
                    f"{option} {profile}: no such profile in your AWS config files "
                    "(aws configure list-profiles)"
                )
    except (OSError, ValueError, UsageError) as error:
        print(f"acceptance: {error}", file=sys.stderr)
        return 2
    except BotoCoreError as error:  # an unknown profile
        print(f"acceptance: {error}", file=sys.stderr)
        return 2
    print(plan.plan(stage_config).statement(dict(args.price)))
    if not args.yes:
        print("acceptance: nothing started: read the plan above, then add --yes", file=sys.stderr)
        return 2
    run = Run(
        sessions[0], sessions[1], args.project_name, args.dev_bucket, args.output.resolve(),
        emulator=_on_loopback(os.environ.get("AWS_ENDPOINT_URL")),
        profiles=(args.dev_profile, args.stage_profile),
        deployer=sessions[2] if args.deploy_profile else None,
        deploy_profile=args.deploy_profile,
    )  # fmt: skip
    try:
        (dev, stage), found = run.preflight()
    except Refused as error:
        print(f"acceptance: {error}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as error:
        print(f"acceptance: AWS error before the run: {error}", file=sys.stderr)
        return 1
    failure = None
    # a cancelled CI job is sent SIGTERM: it stops the run as Ctrl-C does, and the teardown
    # and the report still happen (Python's default would end the process on the spot)
    previous = signal.signal(signal.SIGTERM, _interrupted)
    try:
        print(f"acceptance: {args.project_name}: dev {dev}, stage {stage}", flush=True)
        _steps(run, stage_config, found)
    except (ClientError, BotoCoreError, RuntimeError, KeyboardInterrupt) as error:
        failure = f"{type(error).__name__}: {error}"
        print(f"acceptance: the run stopped: {failure}", file=sys.stderr)
    finally:
        if args.keep:
            left = [what for what, _ in run.made.items]
            for what in left:
                print(f"acceptance: kept {what}", file=sys.stderr)
        else:
            left = run.made.teardown()
            for what in left:
                print(f"acceptance: not removed: {what}", file=sys.stderr)
        signal.signal(signal.SIGTERM, previous)
    why = failure and f"not run: the run stopped ({failure})"
    verdicts = report.complete(
        run.verdicts, why or "not settled: the run ended without a verdict for it (report it)"
    )
    details = {"project": args.project_name, "dev_account": dev, "stage_account": stage,
               "region": args.region, "emulator": run.emulator, "kept": args.keep}  # fmt: skip
    paths = report.write(verdicts, details, args.output)
    print(f"acceptance: report {paths[1]} ({paths[0]})")
    if left and not args.keep:
        return 3
    return 1 if failure or any(v.status == "failed" for v in verdicts) else 0


def _steps(run: Run, stage_config: dict, found: dict[str, str]) -> None:
    """The flow's steps in order, each printed as it starts (the run takes an hour or two)."""
    since = datetime.now(UTC)
    config = deploy.stage_config(run, stage_config)
    _step("base: the deploy role's boundary")
    deploy.permissions_boundary(run)
    _step("register: the sample, version 1")
    run.register()
    _step("promote: build.py")
    deploy.record_stage_removals(run, found)
    tfvars = deploy.promote(run, config)
    deploy.promotion_checks(run, found, tfvars)
    _step("apply: the stage template")
    root = deploy.apply(run, tfvars)
    _step("redeploy: version 2 registered, promoted, applied")
    deploy.redeploy(run, config, root)
    stage = runs.Stage.read(root.var_file or tfvars)
    _step(f"schedule: {runs.SCHEDULED} by the schedule function")
    execution = runs.schedule(run, stage)
    _step(f"upload: {', '.join(runs.UPLOADS)} by the run-on-upload function")
    runs.upload(run, stage)
    _step(f"backfill: {runs.BACKFILL[0]} to {runs.BACKFILL[1]}")
    runs.backfill(run, stage)
    _step("smoke: the smoke run")
    runs.smoke(run, stage)
    _step("observe: metrics, logs, dashboard, alarms, CloudTrail")
    transform = execution and runs.job_arns(run, execution).get("TransformJob")
    observe.observe(run, stage, since, transform and transform.rsplit("/", 1)[1])
    _step("endpoint: invoked, then an update that must be rolled back")
    endpoint.endpoint(run, stage)


def _interrupted(signum: int, _frame: object) -> NoReturn:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def _step(what: str) -> None:
    print(f"acceptance: {what}", flush=True)


def _on_loopback(endpoint_url: str | None) -> bool:
    """Whether AWS is an emulator on this machine (``make test``): then no unproven claim is
    settled, whatever it answers."""
    host = urllib.parse.urlsplit(endpoint_url or "").hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


if __name__ == "__main__":
    sys.exit(main())
