"""``python -m bootstrap target|dev|preflight``: the first deployment's commands
(docs/deploying-to-aws.md). Every failure is one line on stderr and an exit code of
``common/exit_codes.py``: 1 AWS or GitHub refused, 2 bad input (nothing done), 3 Terraform
failed (run again: it resumes) or, for preflight, a check found something missing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import boto3
import botocore.exceptions

from bootstrap import github, preflight, roots
from bootstrap.settings import REPO, STAGE_FILES, STAGES, check_stage, stage_file, target_tfvars
from common.exit_codes import AWS_ERROR, EXECUTION_FAILED, SUCCESS, CommandFailed

PROGRAM = "bootstrap"


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(prog=f"python -m {PROGRAM}", description=__doc__)
    commands = parse.add_subparsers(dest="command", required=True)
    target = commands.add_parser("target", help="apply infra/target-account for a stage")
    dev = commands.add_parser("dev", help="apply infra/dev-account, merge the bucket policy")
    check = commands.add_parser("preflight", help="check what a stage's first deploy needs")
    for command in (target, check):
        command.add_argument("--stage", required=True, help=" or ".join(STAGES))
        command.add_argument(
            "--tfvars", type=Path, help="default infra/target-account/<stage>.tfvars"
        )
    dev.add_argument("--tfvars", type=Path, help="default infra/dev-account/dev.tfvars")
    for command in (target, dev, check):
        command.add_argument(
            "--github-repository",
            help="owner/name: set (or check) through GitHub's API with GITHUB_TOKEN",
        )
    for command in (target, dev):
        command.add_argument("--dry-run", action="store_true", help="report, change nothing")
    check.add_argument("--dev-profile", help="the dev account's AWS profile (the registry check)")
    check.add_argument("--stage-file", type=Path, help="default the stage's *-config.tfvars.json")
    return parse


def run_preflight(
    args: argparse.Namespace, session: boto3.Session | None = None, dev: boto3.Session | None = None
) -> int:
    stage = check_stage(args.stage)
    variables = target_tfvars(stage, args.tfvars)
    stage_path = args.stage_file or REPO / STAGE_FILES[stage]
    settings = stage_file(stage, stage_path)
    gh = github.client(args.github_repository)
    session = session or boto3.Session(region_name=variables.region)
    if dev is None and args.dev_profile:
        dev = boto3.Session(profile_name=args.dev_profile, region_name=variables.region)
    account = roots.account_of(session, stage)
    from pipelines.batch_inference.pipeline import DEFAULT_INSTANCE_TYPE  # 2 s: only here

    results = preflight.run(
        {
            "service quotas": lambda: preflight.check_quotas(
                session, settings, DEFAULT_INSTANCE_TYPE
            ),
            "endpoint auto scaling role": lambda: preflight.check_scaling_role(session, settings),
            "GitHub OIDC provider": lambda: preflight.check_oidc(session),
            "SSM parameters": lambda: preflight.check_ssm(session, variables, stage),
            "approved model version": lambda: preflight.check_registry(dev, variables),
            "alarm_email": lambda: preflight.check_alarm_email(settings, stage_path.name),
            "prod reviewers": lambda: preflight.check_reviewers(gh),
        }
    )
    print(f"preflight of {stage} in account {account} ({variables.region})")
    for result in results:
        if result.skipped:
            print(f"skipped  {result.name}: {result.skipped}")
        for problem in result.problems:
            print(f"MISSING  {result.name}: {problem}")
        if not result.problems and not result.skipped:
            print(f"ok       {result.name}")
    failed = sum(len(result.problems) for result in results)
    print(f"{failed} problem(s)" if failed else "ready for the first deploy")
    return EXECUTION_FAILED if failed else SUCCESS


def main(argv: list[str] | None = None, options: roots.Options | None = None) -> int:
    args = parser().parse_args(argv)
    options = options or roots.Options()
    try:
        if args.command == "target":
            roots.target(args.stage, args.tfvars, args.github_repository, args.dry_run, options)
        elif args.command == "dev":
            roots.dev(args.tfvars, args.github_repository, args.dry_run, options)
        else:
            return run_preflight(args, options.session, options.dev_session)
    except CommandFailed as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return error.exit_code
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
        print(f"{PROGRAM}: AWS error: {error}", file=sys.stderr)
        return AWS_ERROR
    return SUCCESS


if __name__ == "__main__":
    sys.exit(main())
