"""What a stage's first deploy needs that no apply creates, checked with the current
credentials before the first run finds out: one line per missing item with its fix, every
problem at once (a check that cannot run is a problem too, not a stop)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.exceptions

from bootstrap.github import GitHub
from bootstrap.settings import RootVariables
from common.exit_codes import CommandFailed
from promotion.stage import SSM_REQUIRED

GITHUB_OIDC = "token.actions.githubusercontent.com"
SCALING_ROLE = "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
SCALING_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"
# a run started by hand (no instance parameters) gets the pipeline's defaults: one of these
MANUAL_RUN_INSTANCES = 1
# the quota names SageMaker gives per instance type and use
QUOTA_USES = {
    "processing": "processing job usage",
    "transform": "transform job usage",
    "endpoint": "endpoint usage",
}


class Skipped(Exception):
    """A check that needs an input the command was not given: said, not failed."""


@dataclass(frozen=True)
class Check:
    name: str
    problems: list[str]
    skipped: str | None = None


def instance_needs(settings: dict[str, Any], default_type: str) -> dict[tuple[str, str], int]:
    """(use, instance type) -> the instances a run needs at once: the stage file's steps, a
    manual run's defaults, and an instance-based endpoint at its maximum."""
    needs: dict[tuple[str, str], int] = {}

    def need(use: str, instance_type: Any, count: Any) -> None:
        if isinstance(instance_type, str) and instance_type:
            key = (use, instance_type)
            needs[key] = max(needs.get(key, 0), int(count or 1))

    for use in ("processing", "transform"):
        need(use, settings.get(f"{use}_instance_type"), settings.get(f"{use}_instance_count"))
        need(use, default_type, MANUAL_RUN_INSTANCES)
    endpoint = instance_endpoint(settings)
    if endpoint is not None:
        need(
            "endpoint",
            endpoint.get("instance_type", "ml.m5.large"),
            endpoint.get("max_instance_count", 2),
        )
    return needs


def instance_endpoint(settings: dict[str, Any]) -> dict[str, Any] | None:
    """The stage's endpoint when it runs on instances with auto scaling (not serverless)."""
    endpoint = settings.get("endpoint")
    if (
        not isinstance(endpoint, dict)
        or endpoint.get("enabled") is False
        or endpoint.get("serverless")
    ):
        return None
    return endpoint


def quota_values(client: Any, service: str, names: set[str]) -> dict[str, float]:
    """The applied value of each quota named in ``names`` that ``service`` has (by name: the
    codes are opaque). The defaults give the codes; GetServiceQuota the applied value, and a
    quota never raised answers NoSuchResourceException there: its default holds."""
    defaults: dict[str, tuple[str, float]] = {}
    for page in client.get_paginator("list_aws_default_service_quotas").paginate(
        ServiceCode=service
    ):
        for quota in page.get("Quotas", []):
            if quota.get("QuotaName") in names:
                defaults[quota["QuotaName"]] = (quota["QuotaCode"], float(quota.get("Value", 0)))
    values = {}
    for name, (code, default) in defaults.items():
        try:
            values[name] = float(
                client.get_service_quota(ServiceCode=service, QuotaCode=code)["Quota"].get(
                    "Value", default
                )
            )
        except client.exceptions.NoSuchResourceException:
            values[name] = default
    return values


def check_quotas(session: boto3.Session, settings: dict[str, Any], default_type: str) -> list[str]:
    needs = instance_needs(settings, default_type)
    names = {
        f"{instance_type} for {QUOTA_USES[use]}": count
        for (use, instance_type), count in needs.items()
    }
    values = quota_values(session.client("service-quotas"), "sagemaker", set(names))
    problems = []
    for name, count in sorted(names.items()):
        if name not in values:
            problems.append(
                f"no SageMaker quota named '{name}' in this region: pick an instance type "
                "the region offers"
            )
        elif values[name] < count:
            problems.append(
                f"quota '{name}' is {values[name]:g}, the stage needs {count}: aws service-quotas "
                "request-service-quota-increase --service-code sagemaker --quota-code <code "
                f"of '{name}'> --desired-value {count}"
            )
    return problems


def check_scaling_role(session: boto3.Session, settings: dict[str, Any]) -> list[str]:
    if instance_endpoint(settings) is None:
        return []
    try:
        session.client("iam").get_role(RoleName=SCALING_ROLE)
    except botocore.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") != "NoSuchEntity":
            raise
        return [
            f"the endpoint's auto scaling needs the service-linked role {SCALING_ROLE} (the deploy "
            "role may not create it): aws iam create-service-linked-role --aws-service-name "
            f"{SCALING_SERVICE}"
        ]
    return []


def check_oidc(session: boto3.Session) -> list[str]:
    providers = session.client("iam").list_open_id_connect_providers()["OpenIDConnectProviderList"]
    if any(p.get("Arn", "").endswith(f"oidc-provider/{GITHUB_OIDC}") for p in providers):
        return []
    return [
        f"no GitHub OIDC provider ({GITHUB_OIDC}): apply infra/target-account with "
        "create_github_oidc_provider = true (make bootstrap-target)"
    ]


def check_ssm(session: boto3.Session, variables: RootVariables, stage: str) -> list[str]:
    prefix = f"/{variables.project}/{stage}/"
    found = set()
    for page in session.client("ssm").get_paginator("get_parameters_by_path").paginate(Path=prefix):
        found |= {p["Name"].removeprefix(prefix) for p in page.get("Parameters", [])}
    missing = sorted(set(SSM_REQUIRED) - found)
    if not missing:
        return []
    return [
        f"SSM parameters missing under {prefix}: {', '.join(missing)}: run make "
        f"bootstrap-target STAGE={stage}"
    ]


def check_registry(dev: boto3.Session | None, variables: RootVariables) -> list[str]:
    if dev is None:
        raise Skipped("give --dev-profile (the dev account's profile) to check the registry")
    listed = dev.client("sagemaker").list_model_packages(
        ModelPackageGroupName=variables.group, ModelApprovalStatus="Approved", MaxResults=1
    )
    if listed.get("ModelPackageSummaryList"):
        return []
    return [
        f"no Approved version in the dev model package group {variables.group}: register one and "
        "approve it (docs/deploying-to-aws.md, Appendix: register the sample model)"
    ]


def check_alarm_email(settings: dict[str, Any], stage_path: str) -> list[str]:
    if settings.get("alarm_email"):
        return []
    return [f"alarm_email is not set in {stage_path}: set it, or the stage's alarms notify no one"]


def check_reviewers(github: GitHub | None) -> list[str]:
    if github is None:
        raise Skipped("give --github-repository and GITHUB_TOKEN to check prod's reviewers")
    environment = github.environment("prod")
    if environment is None:
        return [
            f"{github.repository} has no environment prod: run make bootstrap-target "
            "STAGE=prod with GITHUB_TOKEN"
        ]
    rules = environment.get("protection_rules") or []
    if any(rule.get("type") == "required_reviewers" and rule.get("reviewers") for rule in rules):
        return []
    return [
        f"environment prod of {github.repository} has no required reviewers: nothing stops prod "
        "after preprod (Settings -> Environments -> prod -> Required reviewers)"
    ]


def run(checks: dict[str, Callable[[], list[str]]]) -> list[Check]:
    """Every check, each one's failure to run reported as its problem."""
    results = []
    for name, check in checks.items():
        try:
            problems = check()
        except Skipped as skipped:
            results.append(Check(name, [], str(skipped)))
            continue
        except CommandFailed as error:  # GitHub refused or could not be reached
            problems = [str(error)]
        except botocore.exceptions.ClientError as error:
            problems = [
                f"could not check ({error.response.get('Error', {}).get('Code')}: {error}): "
                "grant the read or check by hand"
            ]
        except botocore.exceptions.BotoCoreError as error:
            problems = [f"could not check ({error})"]
        results.append(Check(name, problems))
    return results
