"""Every claim the docs leave unproven on AWS, as a named check of the acceptance run.

One entry per claim: the id the docs link to (``docs/deploying-to-aws.md`` section 8, which
gathers the docs' "Unproven until a real account runs it" sentences), the claim in the
docs' words, the flow step whose aftermath holds the evidence, and what is read as evidence.
The emulator can answer none of them (that is why they are unproven: moto runs no job,
evaluates IAM only on S3 and KMS not at all), so against it each is reported as "needs a real
account", never passed.
"""

from __future__ import annotations

from dataclasses import dataclass

# The flow, in order: each check is read after its step (and everything before it) ran.
STEPS = (
    "base",  # infra/dev-account and infra/target-account applied (or found)
    "register",  # the sample model registered in dev and approved
    "promote",  # build.py --stage for the stage account
    "apply",  # the stage template applied
    "redeploy",  # a second version promoted and applied
    "schedule",  # a scheduled day scored
    "upload",  # an upload scored by the run-on-upload function
    "backfill",  # two days scored by run_pipeline --stage --date --until --wait
    "smoke",  # the deploy workflow's smoke run
    "observe",  # metrics, alarms, dashboard series, job logs, CloudTrail read back
    # the optional endpoint, when the stage enables one: invoked, then an update that fails
    # on purpose (after observe: its alarm held in ALARM must not read as a stage alarm)
    "endpoint",
    "teardown",  # everything the run made, removed (also after a failure)
)


@dataclass(frozen=True)
class Check:
    """One claim and how the run settles it."""

    id: str
    claim: str  # as the docs state it
    step: str  # one of STEPS: the evidence exists once this step ran
    evidence: str  # what is read back

    def __post_init__(self) -> None:
        if self.step not in STEPS:
            raise ValueError(f"check {self.id}: unknown step {self.step!r}")


CHECKS: tuple[Check, ...] = (
    Check(
        "permissions-boundary",
        "IAM honours iam:PermissionsBoundary on PutRolePolicy as documented",
        "base",
        "a PutRolePolicy by the deploy role on a role without the boundary is denied",
    ),
    Check(
        "kms-key-policies",
        "the stage key's policy and grants let each role do exactly what it does",
        "observe",
        "CloudTrail: no AccessDenied from kms.amazonaws.com for the project's roles",
    ),
    Check(
        "deploy-role-rights",
        "the deploy and plan roles may make every call Terraform makes (written from the "
        "provider's source, not observed)",
        "redeploy",
        "CloudTrail: the deploy role's denied calls during both applies (expected: none)",
    ),
    Check(
        "image-digest-at-registration",
        "SageMaker fills a container's ImageDigest when a package is registered",
        "register",
        "DescribeModelPackage of the sample: each container's ImageDigest",
    ),
    Check(
        "ecr-replication",
        "ECR replicates into the registry policy's prefix-scoped resources, and how long it takes",
        "promote",
        "build.py's wait for the replicated image: found, and the minutes it took",
    ),
    Check(
        "digest-pull",
        "SageMaker pulls a digest-pinned image of the stage's registry with only the "
        "template's grant and the token call",
        "schedule",
        "the day's Transform job: InService then Completed, no image pull failure",
    ),
    Check(
        "policy-visible-to-create-model",
        "a policy written by the apply is visible to CreateModel at once (IAM is eventually "
        "consistent)",
        "apply",
        "the apply succeeded at its first attempt (no CreateModel access error)",
    ),
    Check(
        "pipeline-definition-ignored",
        "SageMaker returns an S3-created pipeline's PipelineDefinition in a form the "
        "ignored attribute hides",
        "apply",
        "terraform plan right after the apply: no change",
    ),
    Check(
        "float-parameters",
        "Float pipeline parameters reach the Processing job's ContainerArguments as strings",
        "schedule",
        "DescribeProcessingJob of the day's Preprocess: the gate's arguments",
    ),
    Check(
        "start-token",
        "SageMaker honours ClientRequestToken across starters and redeliveries",
        "schedule",
        "the schedule function invoked twice for the same day: one execution",
    ),
    Check(
        "status-event-fields",
        "SageMaker's status change events carry detail.pipelineArn as Terraform reads it and "
        "detail.pipelineExecutionArn",
        "schedule",
        "the day's marker completed by the run-outcome function (not by a later trigger)",
    ),
    Check(
        "s3-eventbridge-key-spelling",
        "S3 writes object keys unencoded into its EventBridge events",
        "upload",
        "an upload named 'a b.csv' scored, its marker under _runs/uploads/",
    ),
    Check(
        "marker-listing-condition",
        "S3 answers the run-starter role's listing of a marker key (s3:prefix condition) as "
        "the code expects",
        "upload",
        "the upload's marker read back by the function (a second delivery is skipped)",
    ),
    Check(
        "fifo-event-source",
        "the Lambda event source on the FIFO upload queue holds its message group while a "
        "message waits",
        "upload",
        "two uploads with upload_max_running = 1: the second started after the first ended",
    ),
    Check(
        "metric-filters",
        "CloudWatch Logs publishes the batch-quality metrics from SageMaker's job log "
        "streams as the documented filter syntax says",
        "observe",
        "BatchInference/Quality RowsRead for the pipeline: data points for the runs",
    ),
    Check(
        "handler-stdout",
        "the scikit-learn container's model server passes the handlers' standard output to "
        "the Transform job's log stream",
        "observe",
        "the Transform job's log stream: a batch-predictions line",
    ),
    Check(
        "pipeline-name-in-transform",
        "Pipelines resolves Execution.PipelineName inside a Transform step's Environment",
        "observe",
        "the batch-predictions line names the pipeline",
    ),
    Check(
        "job-names-and-search",
        "SageMaker forms job names from the custom prefix as the SDK documents, and "
        "CloudWatch's SEARCH tokenises them as the dashboard expects",
        "observe",
        "the dashboard's per-step job series: data for the runs",
    ),
    Check(
        "alarms-quiet",
        "the stage's alarms stay OK on healthy runs (missing data not breaching)",
        "observe",
        "DescribeAlarms of the project: every state OK or INSUFFICIENT_DATA",
    ),
    Check(
        "nvme-volume-key",
        "SageMaker refuses a volume key on the NVMe instance types (build.py refuses them first)",
        "promote",
        "CreateProcessingJob with an NVMe type and the stage key: refused as the API says",
    ),
    Check(
        "endpoint-config-key-grant",
        "CreateEndpointConfig with the stage key needs only the grant rights given",
        "endpoint",
        "the endpoint's apply: InService",
    ),
    Check(
        "rolled-back-update",
        "a blue/green update that fails its alarm is rolled back with a FailureReason",
        "endpoint",
        "DescribeEndpoint after a failing update: the old configuration, the reason",
    ),
    Check(
        "model-latency-p99",
        "ModelLatency serves a p99 statistic",
        "endpoint",
        "GetMetricData of ModelLatency p99 after invocations",
    ),
    Check(
        "serverless-without-isolation",
        "CreateEndpoint accepts a serverless model without network isolation",
        "endpoint",
        "a serverless endpoint's apply: InService",
    ),
    Check(
        "data-capture",
        "data capture writes with the execution role as granted",
        "endpoint",
        "objects under the capture prefix after invocations",
    ),
)

BY_ID = {check.id: check for check in CHECKS}
