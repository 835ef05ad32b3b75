data "aws_iam_policy_document" "sagemaker_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["sagemaker.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_service_linked_role" "endpoint_scaling" {
  count            = var.create_endpoint_scaling_role ? 1 : 0
  aws_service_name = "sagemaker.application-autoscaling.amazonaws.com"
}

resource "aws_iam_role" "execution" {
  name                 = local.execution_role_name
  description          = "Runs ${local.name}'s batch-inference pipeline, its jobs and its model."
  assume_role_policy   = data.aws_iam_policy_document.sagemaker_trust.json
  permissions_boundary = aws_iam_policy.execution_boundary.arn
}

data "aws_iam_policy_document" "execution" {
  # the inputs outside the stage's bucket an administrator allows (external_inputs); the
  # boundary below sources this document, so it allows them too
  source_policy_documents = module.external_inputs.policy == null ? [] : [module.external_inputs.policy]
  statement {
    sid       = "ReadTheProjectsObjects"
    actions   = ["s3:GetObject"]
    resources = [local.project_objects]
  }
  statement {
    sid       = "WriteRunOutputs"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${local.bucket_arn}/${local.output_prefix}*"]
  }
  statement {
    sid       = "ListTheProjectsPrefix"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.project_name}/*"]
    }
  }
  statement {
    sid       = "UseTheStageKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.stage.arn]
  }
  statement {
    sid       = "EncryptTheJobsVolumes" # VolumeKmsKeyId: SageMaker makes a grant for the instance
    actions   = ["kms:CreateGrant"]
    resources = [aws_kms_key.stage.arn]
    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
  }
  statement {
    # the optional endpoint's data capture (batch-config-template.tf's destination)
    sid       = "WriteEndpointDataCapture"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${local.bucket_arn}/${var.project_name}/data-capture/*"]
  }
  statement {
    # the optional endpoint's container logs: SageMaker creates its group with this role
    sid       = "WriteEndpointLogs"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["arn:${local.partition}:logs:${var.region}:${local.account}:log-group:/aws/sagemaker/Endpoints/${module.naming.endpoint}", "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:/aws/sagemaker/Endpoints/${module.naming.endpoint}:*"]
  }
  statement {
    sid       = "WriteJobLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = [for group in local.job_log_groups : "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${group}:*"]
  }
  statement {
    sid       = "PublishJobMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"] # PutMetricData has no resource type; the condition limits it
    condition {
      test     = "StringLike"
      variable = "cloudwatch:namespace"
      values   = ["/aws/sagemaker/*"]
    }
  }
  statement {
    sid       = "AuthenticateToEcr"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # the token call has no resource type
  }
  # The pipeline's Processing job runs network-isolated (pipelines/batch_inference), and in
  # the stage's subnets when it has some: the role cannot start one that is not. (A
  # Transform job's isolation is its model's, set by the stage template: CreateTransformJob
  # has no such condition key.)
  statement {
    sid       = "StartIsolatedProcessingJobs"
    actions   = ["sagemaker:CreateProcessingJob"]
    resources = ["arn:${local.partition}:sagemaker:${var.region}:${local.account}:processing-job/*"]
    condition {
      test     = "Bool"
      variable = "sagemaker:NetworkIsolation"
      values   = ["true"]
    }
    dynamic "condition" {
      for_each = length(var.subnet_ids) > 0 ? [1] : []
      content {
        test     = "ForAllValues:StringEquals"
        variable = "sagemaker:VpcSubnets"
        values   = var.subnet_ids
      }
    }
  }
  statement {
    sid = "RunThePipelinesJobs"
    actions = [
      "sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob",
      "sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob",
      "sagemaker:AddTags", "sagemaker:ListTags",
    ]
    resources = [
      "arn:${local.partition}:sagemaker:${var.region}:${local.account}:processing-job/*",
      "arn:${local.partition}:sagemaker:${var.region}:${local.account}:transform-job/*",
    ]
  }
  statement {
    sid       = "UseTheStagesModels"
    actions   = ["sagemaker:DescribeModel"]
    resources = [for prefix in module.naming.model_prefixes : "arn:${local.partition}:sagemaker:${var.region}:${local.account}:model/${prefix}*"]
  }
  statement {
    sid       = "PassItselfToTheJobs"
    actions   = ["iam:PassRole"]
    resources = [local.execution_role_arn] # by name: the role's boundary holds this document
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["sagemaker.amazonaws.com"]
    }
  }
  # VPC jobs: SageMaker makes the jobs' network interfaces with this role, in the stage's
  # subnets and security groups only. The Describe calls have no resource type.
  dynamic "statement" {
    for_each = length(var.subnet_ids) > 0 ? [1] : []
    content {
      sid       = "DescribeTheNetwork"
      actions   = ["ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs", "ec2:DescribeDhcpOptions", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"]
      resources = ["*"]
      condition {
        test     = "StringEquals"
        variable = "aws:RequestedRegion"
        values   = [var.region]
      }
    }
  }
  dynamic "statement" {
    for_each = length(var.subnet_ids) > 0 ? [1] : []
    content {
      sid     = "CreateInterfacesInTheStageSubnets"
      actions = ["ec2:CreateNetworkInterface"]
      resources = concat(
        [for id in var.subnet_ids : "${format(local.arn_prefix, "ec2")}:subnet/${id}"],
        [for id in var.security_group_ids : "${format(local.arn_prefix, "ec2")}:security-group/${id}"],
        ["${format(local.arn_prefix, "ec2")}:network-interface/*"],
      )
    }
  }
  dynamic "statement" {
    for_each = length(var.subnet_ids) > 0 ? [1] : []
    content {
      sid       = "ManageInterfacesInTheStageSubnets"
      actions   = ["ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface", "ec2:DeleteNetworkInterfacePermission"]
      resources = ["${format(local.arn_prefix, "ec2")}:network-interface/*"]
      condition {
        test     = "ArnEquals"
        variable = "ec2:Subnet"
        values   = [for id in var.subnet_ids : "${format(local.arn_prefix, "ec2")}:subnet/${id}"]
      }
    }
  }
}

# A managed policy, not an inline one: the deploy role writes the role's inline image-pull
# policy (and IAM cannot limit that right to one policy name), so the base rights live where
# it cannot overwrite or delete them.
resource "aws_iam_policy" "execution" {
  name        = "${local.name}-batch-inference"
  description = "What ${local.name}'s execution role does besides pulling images."
  policy      = data.aws_iam_policy_document.execution.json
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = aws_iam_policy.execution.arn
}

# Which images the role pulls is the stage template's to say (aws_iam_role_policy.pull_images:
# exactly the promoted packages' repositories and the Preprocess step's, which build.py
# names), so the deploy role may write that one policy on this one role. The boundary keeps
# that from widening anything: whatever a policy on the role says, it can do no more than
# its own policy above plus pulling images in the stage's region.
data "aws_iam_policy_document" "execution_boundary" {
  #checkov:skip=CKV_AWS_356:a boundary grants nothing; the role's policies name the exact repositories
  #checkov:skip=CKV_AWS_111:a boundary grants nothing; the role's policies name the exact repositories
  source_policy_documents = [data.aws_iam_policy_document.execution.json]
  statement {
    sid       = "PullImagesInTheRegion"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
    resources = ["arn:${local.partition}:ecr:${var.region}:*:repository/*"]
  }
}

resource "aws_iam_policy" "execution_boundary" {
  name        = "${local.name}-sagemaker-execution-boundary"
  description = "The most ${local.name}'s execution role may do: its batch-inference policy plus pulling images in ${var.region}."
  policy      = data.aws_iam_policy_document.execution_boundary.json
}
