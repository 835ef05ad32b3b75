"""``make demo``'s shadow run: the second version scores prod's last days before its approval.

After prod has scored its days with version 1, the demo registers a second, genuinely
retrained version (``--retrained``: another split, fitted on 40 % of its rows, so a few
percent of decisions move across the threshold), deploys it to preprod, then does what
prod's plan job does before the reviewer is asked (#33): ``build.py --plan-only
--shadow-candidate`` makes the candidate's SageMaker Model in prod without switching
anything (``promotion/shadow_candidate.py``), and ``pipelines.shadow_run`` scores prod's
last scored days with it through the stage's deployed definition, each beside the
champion's own answers for that day. The comparison's headline per day (rows both scored,
flips at the threshold, PSI, both gates' verdicts) is printed, and its page is written,
before the approval prompt. The approved deployment then removes the candidate (checked).

The shadow run must leave no trace in what the champion owns: every object of the prod
account is listed (with its ETag) before and after it, and the demo fails if one changed or
went away, or if a new one is outside ``<output>/_shadow/v<N>/``; the day markers, the
champion's outputs and table, and the pipeline definitions are among those objects.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_mode.emulator import environment
from pipelines import partition_runs, shadow_page, shadow_run
from promotion import shadow_candidate
from promotion.names import candidate_model_name
from stage_runtime import runs

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from local_mode.emulator import Emulator

SHADOW_OUT = "prod-shadow"  # <workdir>/prod-shadow/: shadow.json, shadow.html, shadow.md


class ShadowDemoFailed(Exception):
    """A shadow step of the demo failed; the message says which and why."""


def account_objects(s3: S3Client) -> dict[str, str]:
    """Every object of the account's buckets, ``s3://bucket/key`` -> ETag."""
    found: dict[str, str] = {}
    for bucket in s3.list_buckets().get("Buckets", []):
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"])
        for page in pages:
            for item in page.get("Contents", []):
                found[f"s3://{bucket['Name']}/{item['Key']}"] = item["ETag"]
    return found


def traces(before: dict[str, str], after: dict[str, str], allowed: list[str]) -> list[str]:
    """What changed between two listings outside ``allowed`` prefixes: objects changed or
    gone (whatever their prefix), new objects elsewhere."""
    found = [f"changed: {uri}" for uri in before if uri in after and after[uri] != before[uri]]
    found += [f"gone: {uri}" for uri in before if uri not in after]
    found += [
        f"new outside the shadow's prefixes: {uri}"
        for uri in after
        if uri not in before and not any(uri.startswith(prefix) for prefix in allowed)
    ]
    return sorted(found)


def restore_champion_day(
    aws: Emulator, tfvars: dict[str, Any], day: date, workdir: Path
) -> runs.DayResult:
    """``day`` scored again by the deployed version, as the backfill forces a day: the model
    quality demo left the degraded model's run in its marker, and a shadow compares with the
    run the marker names."""
    (result,) = partition_runs.run_days(
        tfvars, aws.account("prod"), [day], local=True, force=True,
        work_dir=workdir / "prod-days-restored",
    )  # fmt: skip
    if result.action != "Succeeded":
        raise ShadowDemoFailed(f"prod: {day} scored again by the champion: {result.detail}")
    return result


@dataclass(frozen=True)
class Candidate:
    name: str
    version: int
    artifacts: list[str]  # its copies in the stage's bucket (``shadow-models/v<N>/``)
    tags: dict[str, str]


def candidate_of(aws: Emulator, plan: dict[str, Any]) -> Candidate:
    """The candidate ``build.py --plan-only --shadow-candidate`` made in prod for the plan's
    version (``<group>-prod-c<N>``), with its copies and tags; the demo fails without it."""
    version = int(plan["model_version"])
    name = candidate_model_name(plan["model_package_group_name"], "prod", version)
    sagemaker = aws.client("sagemaker", "prod")
    try:
        model = sagemaker.describe_model(ModelName=name)
    except sagemaker.exceptions.ClientError as error:
        raise ShadowDemoFailed(f"the plan made no candidate model {name}: {error}") from None
    tags = sagemaker.list_tags(ResourceArn=model["ModelArn"])["Tags"]
    return Candidate(
        name,
        version,
        _objects(aws.client("s3", "prod"), plan, version),
        {tag["Key"]: tag["Value"] for tag in tags},
    )


def _objects(s3: S3Client, plan: dict[str, Any], version: int) -> list[str]:
    bucket = plan["artifacts_bucket"]
    prefix = f"{shadow_candidate.shadow_prefix(plan['project_name'], version)}/"
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [f"s3://{bucket}/{item['Key']}" for page in pages for item in page.get("Contents", [])]


def candidate_left(aws: Emulator, plan: dict[str, Any], candidate: Candidate) -> list[str]:
    """What is left of ``candidate`` in prod (its model, its copies): nothing once the
    approved deployment of its version ran."""
    sagemaker = aws.client("sagemaker", "prod")
    left = _objects(aws.client("s3", "prod"), plan, candidate.version)
    try:
        sagemaker.describe_model(ModelName=candidate.name)
        left.append(f"model {candidate.name}")
    except sagemaker.exceptions.ClientError:
        pass
    return left


def apply_shadow_pipeline(aws: Emulator, stage: str, tfvars: dict[str, Any]) -> None:
    """The stage's shadow pipeline as its apply makes it (terraform/stage/shadow.tf, where the
    account has the shadow role): the shadow definition build.py uploaded (the stage's, its
    jobs run as the shadow role), run as the shadow role. Given as text: moto describes a
    pipeline made from an S3 location with the Python repr of its definition, where
    SageMaker returns JSON."""
    if not tfvars.get("shadow_role_arn"):
        return
    key = tfvars["shadow_pipeline_definition_s3_key"]
    response = aws.client("s3", stage).get_object(Bucket=tfvars["artifacts_bucket"], Key=key)
    definition = response["Body"].read().decode()
    sagemaker = aws.client("sagemaker", stage)
    name = tfvars["shadow_pipeline_name"]
    if sagemaker.list_pipelines(PipelineNamePrefix=name)["PipelineSummaries"]:
        sagemaker.update_pipeline(
            PipelineName=name, PipelineDefinition=definition, RoleArn=tfvars["shadow_role_arn"]
        )
        return
    sagemaker.create_pipeline(
        PipelineName=name,
        PipelineDefinition=definition,
        RoleArn=tfvars["shadow_role_arn"],
        ClientRequestToken=str(uuid.uuid4()),
    )


def shadow(
    aws: Emulator, plan: dict[str, Any], candidate: Candidate, workdir: Path
) -> dict[str, Any]:
    """Prod's plan job's shadow step, ``python -m pipelines.shadow_run --tfvars <plan>
    --plan-job --local`` (in process, with the prod account's credentials): its outputs in
    ``<workdir>/prod-shadow/``, the job summary the reviewer reads in
    ``<workdir>/prod-plan-summary.md``. Fails if it did not compare every day, or if the
    champion's objects show a trace of it."""
    s3 = aws.client("s3", "prod")
    out, summary = workdir / SHADOW_OUT, workdir / "prod-plan-summary.md"
    shutil.rmtree(out, ignore_errors=True)  # a reused workdir: no earlier run's page
    summary.write_text("")
    before = account_objects(s3)
    argv = [
        "--tfvars", str(workdir / "plan" / "prod.tfvars.json"), "--plan-job", "--local",
        "--out", str(out), "--summary", str(summary),
        "--work-dir", str(workdir / "prod-shadow-runs"),
    ]  # fmt: skip
    with environment(aws.credential_variables("prod")):  # the CLI's boto3 chain, in prod
        code = shadow_run.main(argv)
    if code != 0 or not (out / "shadow.json").is_file():
        raise ShadowDemoFailed(
            f"prod plan job: the shadow run exited {code}: {summary.read_text().strip()}"
        )
    document = json.loads((out / "shadow.json").read_text())
    if document["candidate"] != {"model": candidate.name, "version": candidate.version}:
        raise ShadowDemoFailed(f"the shadow run took {document['candidate']}, not {candidate}")
    after = account_objects(s3)
    left = traces(before, after, [f"{shadow_run.shadow_root(plan, candidate.version)}/"])
    if left:
        raise ShadowDemoFailed(
            f"the shadow run left {len(left)} trace(s) in the champion's objects: {left[:3]}"
        )
    return {
        "candidate": candidate,
        "days": document["days"],
        "json": out / "shadow.json",
        "html": out / "shadow.html",
        "summary": summary,
        "written": sorted(set(after) - set(before)),
    }


def headline(day: str, comparison: dict[str, Any]) -> str:
    """One day's comparison in a line: rows both scored, decisions changed, PSI, gates."""
    rows, gates = comparison["rows"], comparison["gates"]
    psi = ", ".join(
        f"{name} {'n/a' if output['psi'] is None else format(output['psi'], '.3f')}"
        for name, output in comparison["outputs"].items()
    )
    return (
        f"{day}: rows by both {rows['both']}, "
        f"{shadow_page.decision_line(comparison['decision'])}, PSI {psi}, gates champion "
        f"{gates['champion']}, candidate {gates['candidate']}"
    )
