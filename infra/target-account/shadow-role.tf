# The shadow run's execution role (pipelines/shadow_run.py, issue #33). Before prod's gate,
# the plan job (the "<env>-plan" environment, no reviewers) runs the stage's shadow pipeline:
# the stage pipeline's definition run as this role, with a candidate model. Whatever that
# ungated job starts, the jobs can write only under <output>/_shadow/ (never a day's marker,
# the predictions table or a champion run's outputs), transform only with the candidate
# models (<group>-<env>-c<N>) and touch no endpoint. Its reads are the execution role's.

locals {
  shadow_role_name = module.naming.shadow_execution_role
  shadow_role_arn  = "arn:${local.partition}:iam::${local.account}:role/${local.shadow_role_name}"
  # <output>/_shadow/v<N>/: the shadow runs' folders and their table (pipelines/shadow_run.py)
  shadow_outputs = "${local.bucket_arn}/${local.output_prefix}_shadow/*"
  # the candidates' artifacts, copied by build.py --plan-only --shadow-candidate (never
  # under model-artifacts/, which the deployments use)
  shadow_models    = "${local.bucket_arn}/${var.project_name}/shadow-models/*"
  candidate_models = [for prefix in module.naming.candidate_model_prefixes : "${format(local.arn_prefix, "sagemaker")}:model/${prefix}*"]
  # the stage's shadow pipelines (<pipeline_name>-shadow; a pipeline_name starts with
  # <project>-<env>-, promotion/stage_files.py) and their executions
  shadow_pipelines           = "${format(local.arn_prefix, "sagemaker")}:pipeline/${local.name}-*-shadow"
  shadow_pipeline_executions = "${local.shadow_pipelines}/execution/*"
  # what the execution role does that the shadow role does too, by Sid: reading the
  # project's objects, the key, the job logs and metrics, isolated Processing, the VPC.
  # Named one by one, so a statement added to the execution role later is not the shadow's.
  shadow_shares = [
    "ReadTheProjectsObjects", "ListTheProjectsPrefix", "UseTheStageKey", "EncryptTheJobsVolumes",
    "WriteJobLogs", "PublishJobMetrics", "AuthenticateToEcr", "StartIsolatedProcessingJobs",
    "DescribeTheNetwork", "CreateInterfacesInTheStageSubnets", "ManageInterfacesInTheStageSubnets",
  ]
  shadow_shared_statements = [for s in jsondecode(data.aws_iam_policy_document.execution.json).Statement : s if contains(local.shadow_shares, try(s.Sid, ""))]
}

resource "aws_iam_role" "shadow" {
  name                 = local.shadow_role_name
  description          = "Runs ${local.name}'s shadow pipeline (a candidate model on scored days): writes only under the output's _shadow/ prefix."
  assume_role_policy   = data.aws_iam_policy_document.sagemaker_trust.json
  permissions_boundary = aws_iam_policy.shadow.arn
}

data "aws_iam_policy_document" "shadow" {
  source_policy_documents = concat(
    [jsonencode({ Version = "2012-10-17", Statement = local.shadow_shared_statements })],
    module.external_inputs.policy == null ? [] : [module.external_inputs.policy],
  )
  statement {
    sid       = "WriteShadowOutputsOnly"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [local.shadow_outputs]
  }
  statement {
    # the candidate's images: the stage's copies of the project's (image_repository_prefixes)
    # and the Preprocess step's scikit-learn image, whose account is AWS's, by region
    sid     = "PullTheCandidatesImages"
    actions = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
    resources = concat(local.image_repositories, [
      "arn:${local.partition}:ecr:${var.region}:*:repository/sagemaker-scikit-learn",
    ])
  }
  statement {
    # sagemaker:ModelArn: a Transform job of this role runs a candidate model, no other
    sid       = "TransformWithTheCandidatesOnly"
    actions   = ["sagemaker:CreateTransformJob"]
    resources = ["${format(local.arn_prefix, "sagemaker")}:transform-job/*"]
    condition {
      test     = "ArnLike"
      variable = "sagemaker:ModelArn"
      values   = local.candidate_models
    }
  }
  statement {
    sid = "RunTheShadowJobs"
    actions = [
      "sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob",
      "sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob",
      "sagemaker:AddTags", "sagemaker:ListTags",
    ]
    resources = [
      "${format(local.arn_prefix, "sagemaker")}:processing-job/*",
      "${format(local.arn_prefix, "sagemaker")}:transform-job/*",
    ]
  }
  statement {
    sid       = "UseTheCandidateModels"
    actions   = ["sagemaker:DescribeModel"]
    resources = local.candidate_models
  }
  statement {
    sid       = "PassItselfToTheJobs"
    actions   = ["iam:PassRole"]
    resources = [local.shadow_role_arn] # by name: the role's boundary holds this document
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["sagemaker.amazonaws.com"]
    }
  }
}

# A managed policy that is also the role's boundary: no IAM write of the deploy or plan role
# reaches this role, and were one ever to, nothing attached could widen it.
resource "aws_iam_policy" "shadow" {
  name        = "${local.name}-shadow-run"
  description = "What ${local.name}'s shadow runs may do (also their role's permissions boundary)."
  policy      = data.aws_iam_policy_document.shadow.json
}

resource "aws_iam_role_policy_attachment" "shadow" {
  role       = aws_iam_role.shadow.name
  policy_arn = aws_iam_policy.shadow.arn
}
