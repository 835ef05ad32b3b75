# Base infrastructure of one target account (pre-prod or prod), applied once per account by
# an administrator: everything build.py and batch-config-template.tf read or deploy with.
#
# - a KMS key for the stage's data, queues, topic and logs;
# - the artifact bucket (versioned, SSE-KMS, private, TLS-only, old outputs expire) that
#   build.py copies models into and the pipeline reads and writes;
# - the SageMaker execution role, limited to this project's prefixes of that bucket, the key,
#   the jobs' log groups and the scikit-learn image it pulls;
# - the SSM parameters build.py reads (/<project>/<environment>/...);
# - the jobs' log groups with a retention;
# - a bucket for the stage template's Terraform state;
# - GitHub's OIDC provider and the deploy role the workflow assumes, trusted only for this
#   repository's GitHub environment of the same name.

terraform {
  required_version = ">= 1.10"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
  # Partial: configured at `terraform init -backend-config=...` (README, "One-time setup").
  backend "s3" {}
}

provider "aws" {
  region = var.region
  default_tags {
    tags = {
      "sagemaker:project-name" = var.project_name
      environment              = var.environment
    }
  }
}

# ----------------------------------------------------------------------------- variables

variable "region" {
  description = "AWS region of the stage."
  type        = string
}

variable "project_name" {
  description = "Project name: prefixes names, bucket keys and SSM parameters (the same as build.py's --project-name)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$", var.project_name))
    error_message = "project_name must be 3-32 lowercase letters, digits and hyphens."
  }
}

variable "environment" {
  description = "Stage this account runs: preprod or prod (also the GitHub environment name)."
  type        = string
  validation {
    condition     = contains(["preprod", "prod"], var.environment)
    error_message = "environment must be preprod or prod."
  }
}

variable "model_package_group_name" {
  description = "The model package group build.py promotes into this account."
  type        = string
}

variable "github_repository" {
  description = "owner/name of the repository whose workflow deploys this stage."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be owner/name."
  }
}

variable "create_github_oidc_provider" {
  description = "Create GitHub's OIDC provider; false if the account already has one (it is one per account)."
  type        = bool
  default     = true
}

variable "dev_account_id" {
  description = "The dev (training) account holding the registry and the model artifacts."
  type        = string
  validation {
    condition     = can(regex("^[0-9]{12}$", var.dev_account_id))
    error_message = "dev_account_id must be a 12-digit account id."
  }
}

variable "dev_artifacts_bucket" {
  description = "The dev bucket holding the model artifacts build.py copies from."
  type        = string
}

variable "dev_model_artifact_prefixes" {
  description = "Key prefixes of dev_artifacts_bucket under which the packages' model artifacts lie (e.g. [\"training/\"]): the deploy role reads only these, not the training data beside them."
  type        = list(string)
  validation {
    condition     = length(var.dev_model_artifact_prefixes) > 0 && alltrue([for p in var.dev_model_artifact_prefixes : can(regex("^[^/*][^*]*/$", p))])
    error_message = "dev_model_artifact_prefixes must list key prefixes such as \"training/\": not empty, no leading slash, no wildcard, ending in a slash."
  }
}

variable "dev_kms_key_arn" {
  description = "KMS key of the dev artifacts, if they are SSE-KMS encrypted."
  type        = string
  default     = null
}

variable "subnet_ids" {
  description = "Subnets for the jobs and the model (empty: no VPC)."
  type        = list(string)
  default     = []
}

variable "security_group_ids" {
  description = "Security groups for the jobs and the model."
  type        = list(string)
  default     = []
  validation {
    condition     = length(var.subnet_ids) == 0 || length(var.security_group_ids) > 0
    error_message = "subnet_ids needs security_group_ids too: SageMaker's VpcConfig requires both."
  }
}

variable "output_retention_days" {
  description = "Days batch-inference outputs are kept before they expire."
  type        = number
  default     = 90
  validation {
    condition     = var.output_retention_days >= 1
    error_message = "output_retention_days must be at least 1."
  }
}

variable "log_retention_days" {
  description = "Retention of the Processing and Transform jobs' log groups."
  type        = number
  default     = 365
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (e.g. 30, 90, 365)."
  }
}

variable "plan_role" {
  description = "Create the read-only role that the GitHub environment <environment>-plan may assume (deploy.yml plans prod there before its approval). Default: prod only; a role trusted by an environment nobody creates would be open to any branch, as GitHub creates a referenced environment without branch rules."
  type        = bool
  default     = null
}

variable "create_endpoint_scaling_role" {
  description = "Create the account's service-linked role AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint, which auto scaling of the stage's optional real-time endpoint needs (one per account: false when it exists already). The deploy role makes no IAM roles."
  type        = bool
  default     = false
}

variable "image_repository_prefixes" {
  description = "Name prefixes of the dev account's ECR repositories whose images the stage runs (what infra/dev-account replicates here). Default: the project name."
  type        = list(string)
  default     = null
  validation {
    condition     = var.image_repository_prefixes == null ? true : length(var.image_repository_prefixes) > 0 && alltrue([for p in var.image_repository_prefixes : can(regex("^[a-z0-9][a-z0-9._/-]*$", p))])
    error_message = "image_repository_prefixes must be ECR repository name prefixes (lower case)."
  }
}

variable "accept_image_replication" {
  description = "Let the dev account's ECR replicate those repositories into this registry (aws_ecr_registry_policy), for models served by the team's own images (the sample's AWS image needs none). A registry has one policy per region, which this replaces: leave false when the account's is managed elsewhere, and grant the dev account ecr:CreateRepository and ecr:ReplicateImage there."
  type        = bool
  default     = false
}

variable "manage_job_log_groups" {
  description = "Create the account-wide /aws/sagemaker/{ProcessingJobs,TransformJobs} log groups with retention and the key (the stage's metric filters need them before the first job). If SageMaker already created them (any earlier job), import them (docs/deploying-to-aws.md) or set false. Destroying this root leaves them, with their logs (other workloads' too)."
  type        = bool
  default     = true
}

# ----------------------------------------------------------------------------- names

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  plan_role = coalesce(var.plan_role, var.environment == "prod")
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  name      = "${var.project_name}-${var.environment}"
  root      = "arn:${local.partition}:iam::${local.account}:root"
  # bucket layout (utils.py): <project>/model-artifacts, <project>/code, <project>/pipelines,
  # <project>/batch-inference/{input,output}
  bucket_arn          = "arn:${local.partition}:s3:::${local.name}-artifacts-${local.account}"
  project_objects     = "${local.bucket_arn}/${var.project_name}/*"
  output_prefix       = "${var.project_name}/batch-inference/output/"
  ssm_prefix          = "/${var.project_name}/${var.environment}"
  job_log_groups      = ["/aws/sagemaker/ProcessingJobs", "/aws/sagemaker/TransformJobs"]
  state_bucket_arn    = "arn:${local.partition}:s3:::${local.name}-tfstate-${local.account}"
  github_sub          = "repo:${var.github_repository}:environment:${var.environment}"
  execution_role_name = "${local.name}-sagemaker-execution"
  execution_role_arn  = "arn:${local.partition}:iam::${local.account}:role/${local.execution_role_name}"
  # the stage's copies of the dev images (replication keeps their repository names)
  image_repositories = [for p in coalesce(var.image_repository_prefixes, [var.project_name]) : "arn:${local.partition}:ecr:${var.region}:${local.account}:repository/${p}*"]
}

# ----------------------------------------------------------------------------- key

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_109:a key policy's "*" resource is the key itself; the account root administers it
  #checkov:skip=CKV_AWS_111:a key policy's "*" resource is the key itself; services are limited by conditions
  #checkov:skip=CKV_AWS_356:a key policy's "*" resource is the key itself
  statement {
    sid       = "AccountAdministersTheKey"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = [local.root]
    }
  }
  statement {
    sid       = "LogsEncryptTheJobLogs"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values = [
        "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:/aws/sagemaker/*",
        "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${local.upload_log_group}",
        "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${local.schedule_log_group}",
        "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${local.outcome_log_group}",
      ]
    }
  }
  statement {
    sid       = "AlarmsPublishToTheEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
  # EventBridge's KMS calls for encrypted queues carry no aws:SourceAccount, so a condition
  # on it would silently drop the events; the queues' own policies limit who sends.
  statement {
    sid       = "EventBridgeSendsToTheEncryptedQueues"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
  }
}

resource "aws_kms_key" "stage" {
  description         = "${local.name}: batch-inference artifacts, data, queues, topic and logs"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.key.json
}

resource "aws_kms_alias" "stage" {
  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.stage.key_id
}

# ----------------------------------------------------------------------------- buckets

resource "aws_s3_bucket" "artifacts" {
  bucket = "${local.name}-artifacts-${local.account}"
}

resource "aws_s3_bucket" "state" {
  #checkov:skip=CKV2_AWS_62:nothing reacts to Terraform state writes
  bucket = "${local.name}-tfstate-${local.account}"
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = { artifacts = aws_s3_bucket.artifacts.id, state = aws_s3_bucket.state.id }
  bucket   = each.value
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = { artifacts = aws_s3_bucket.artifacts.id, state = aws_s3_bucket.state.id }
  bucket   = each.value
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.stage.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each                = { artifacts = aws_s3_bucket.artifacts.id, state = aws_s3_bucket.state.id }
  bucket                  = each.value
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = { artifacts = aws_s3_bucket.artifacts.id, state = aws_s3_bucket.state.id }
  bucket   = each.value
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

data "aws_iam_policy_document" "tls_only" {
  for_each = { artifacts = aws_s3_bucket.artifacts.arn, state = aws_s3_bucket.state.arn }
  statement {
    sid       = "DenyPlainHttp"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value, "${each.value}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each = { artifacts = aws_s3_bucket.artifacts.id, state = aws_s3_bucket.state.id }
  bucket   = each.value
  policy   = data.aws_iam_policy_document.tls_only[each.key].json
  # the public access block first, or S3 may judge the policy before it applies
  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_s3_bucket_lifecycle_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    id     = "expire-old-outputs"
    status = "Enabled"
    filter {
      prefix = local.output_prefix
    }
    expiration {
      days = var.output_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
  }
  rule {
    id     = "tidy-versions-and-uploads"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 90
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_lifecycle_configuration" "state" {
  bucket = aws_s3_bucket.state.id
  rule {
    id     = "keep-recent-state-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 365
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
  depends_on = [aws_s3_bucket_versioning.this]
}

# The stage template's optional run-on-upload trigger listens to these events.
resource "aws_s3_bucket_notification" "artifacts" {
  bucket      = aws_s3_bucket.artifacts.id
  eventbridge = true
}

# ----------------------------------------------------------------------------- logs

# Account-wide: every SageMaker job of the account logs there, so a destroy of this root
# forgets them instead of deleting them (and the logs of other workloads with them).
resource "aws_cloudwatch_log_group" "jobs" {
  for_each          = var.manage_job_log_groups ? toset(local.job_log_groups) : toset([])
  name              = each.value
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.stage.arn
  skip_destroy      = true
}

# ----------------------------------------------------------------------------- execution role

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
    resources = ["arn:${local.partition}:logs:${var.region}:${local.account}:log-group:/aws/sagemaker/Endpoints/${local.name}-realtime", "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:/aws/sagemaker/Endpoints/${local.name}-realtime:*"]
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
    resources = [for g in distinct([var.model_package_group_name, lower(var.model_package_group_name)]) : "arn:${local.partition}:sagemaker:${var.region}:${local.account}:model/${g}-${var.environment}-*"]
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

# ----------------------------------------------------------------------------- images
# The dev account's ECR replicates the repositories under image_repository_prefixes into this
# registry (infra/dev-account), so the stage runs its own copy of each promoted image.
data "aws_iam_policy_document" "registry" {
  statement {
    sid       = "ReplicationFromTheDevAccount"
    actions   = ["ecr:CreateRepository", "ecr:ReplicateImage"]
    resources = local.image_repositories
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${var.dev_account_id}:root"]
    }
  }
}

resource "aws_ecr_registry_policy" "replication" {
  count  = var.accept_image_replication ? 1 : 0
  policy = data.aws_iam_policy_document.registry.json
}

# ----------------------------------------------------------------------------- service roles
# The stage template's schedule (EventBridge) and upload trigger (a Lambda function) start the pipeline
# with these roles. They live here, not in the template, so the deploy role needs no IAM
# writes at all: a principal that may write a role's trust and policies can make that role
# trust itself and assume it (self-escalation). The deploy role may only pass them.

locals {
  stage_pipelines = "${format(local.arn_prefix, "sagemaker")}:pipeline/${local.name}-*"
  # Application Auto Scaling names a target by a generated id, not the endpoint's name
  scalable_targets = "${format(local.arn_prefix, "application-autoscaling")}:scalable-target/*"
  # the account's service-linked role endpoint auto scaling acts as (promotion/stage.py)
  endpoint_scaling_role = "arn:${local.partition}:iam::${local.account}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
  # what batch-config-template.tf creates for run on upload
  upload_queue          = "${format(local.arn_prefix, "sqs")}:${local.name}-batch-inference-uploads.fifo"
  refused_uploads_queue = "${format(local.arn_prefix, "sqs")}:${local.name}-batch-inference-refused-uploads.fifo"
  upload_function       = "${local.name}-start-upload-run"
  upload_log_group      = "/aws/lambda/${local.upload_function}"
  schedule_function     = "${local.name}-start-scheduled-run"
  schedule_log_group    = "/aws/lambda/${local.schedule_function}"
  schedule_dlq          = "${format(local.arn_prefix, "sqs")}:${local.name}-batch-inference-dlq"
  outcome_function      = "${local.name}-record-run-outcome"
  outcome_log_group     = "/aws/lambda/${local.outcome_function}"
  # the stage's functions' log groups: run on upload, schedule, run outcome
  function_log_groups = [local.upload_log_group, local.schedule_log_group, local.outcome_log_group]
  # the stage's pipelines' executions (DescribePipelineExecution's resource)
  stage_pipeline_executions = "${local.stage_pipelines}/execution/*"
}

data "aws_iam_policy_document" "service_trust" {
  for_each = { start_pipeline = "events.amazonaws.com", upload_starter = "lambda.amazonaws.com" }
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = [each.value]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "start_pipeline" {
  name               = "${local.name}-start-pipeline"
  description        = "EventBridge starts ${local.name}'s batch-inference pipeline on its schedule."
  assume_role_policy = data.aws_iam_policy_document.service_trust["start_pipeline"].json
}

data "aws_iam_policy_document" "start_pipeline" {
  statement {
    sid       = "StartTheStagesPipeline"
    actions   = ["sagemaker:StartPipelineExecution"]
    resources = [local.stage_pipelines]
  }
}

resource "aws_iam_role_policy" "start_pipeline" {
  name   = "start-pipeline"
  role   = aws_iam_role.start_pipeline.id
  policy = data.aws_iam_policy_document.start_pipeline.json
}

# The role of the stage's functions that start runs and keep their markers: on the schedule
# (each day's partition), on upload (each uploaded object), and the run-outcome function.
resource "aws_iam_role" "upload_starter" {
  name               = "${local.name}-upload-starter"
  description        = "The schedule's and the run-on-upload functions start ${local.name}'s pipeline: each day's partition, each uploaded input object."
  assume_role_policy = data.aws_iam_policy_document.service_trust["upload_starter"].json
}

data "aws_iam_policy_document" "upload_starter" {
  statement {
    sid       = "ReadTheUploadQueue" # the Lambda event source polls with the function's role
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
    resources = [local.upload_queue]
  }
  statement {
    sid       = "RefuseUploads"
    actions   = ["sqs:SendMessage"]
    resources = [local.refused_uploads_queue]
  }
  statement {
    sid       = "UseTheStageKeyForTheQueues"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.stage.arn]
  }
  statement {
    sid       = "CheckTheUploadedObject" # HeadObject needs s3:GetObject
    actions   = ["s3:GetObject"]
    resources = [local.project_objects]
  }
  statement {
    sid       = "FindObjectsSharingTheKey"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.project_name}/*"]
    }
  }
  statement {
    sid       = "CountRunsAndStartOne"
    actions   = ["sagemaker:ListPipelineExecutions", "sagemaker:StartPipelineExecution"]
    resources = [local.stage_pipelines]
  }
  statement {
    # a marker names its execution; a run that ended is matched to its marker by its input
    sid       = "AskHowARunEndedAndWhatItScored"
    actions   = ["sagemaker:DescribePipelineExecution", "sagemaker:ListPipelineParametersForExecution"]
    resources = [local.stage_pipeline_executions]
  }
  statement {
    # <output>/_runs/<partition>.json and _runs/uploads/<key>.json under the stage's default
    # output (as the execution role's WriteRunOutputs); reading a run's summaries for its
    # rows is CheckTheUploadedObject's s3:GetObject on the project's objects
    sid       = "WriteTheRunMarkers"
    actions   = ["s3:PutObject"]
    resources = ["${local.bucket_arn}/${local.output_prefix}_runs/*"]
  }
  statement {
    sid       = "FailedSchedulesToTheDeadLetterQueue" # the schedule function's DLQ
    actions   = ["sqs:SendMessage"]
    resources = [local.schedule_dlq]
  }
  statement {
    sid       = "WriteItsLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for group in local.function_log_groups : "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${group}:*"]
  }
}

resource "aws_iam_role_policy" "upload_starter" {
  name   = "read-uploads-start-pipeline"
  role   = aws_iam_role.upload_starter.id
  policy = data.aws_iam_policy_document.upload_starter.json
}

# ----------------------------------------------------------------------------- SSM contract

locals {
  ssm_parameters = merge(
    {
      "artifacts-bucket"        = { type = "String", value = aws_s3_bucket.artifacts.bucket }
      "sagemaker-role-arn"      = { type = "String", value = aws_iam_role.execution.arn }
      "kms-key-arn"             = { type = "String", value = aws_kms_key.stage.arn }
      "start-pipeline-role-arn" = { type = "String", value = aws_iam_role.start_pipeline.arn }
      "upload-starter-role-arn" = { type = "String", value = aws_iam_role.upload_starter.arn }
    },
    length(var.subnet_ids) > 0 ? {
      "subnet-ids"         = { type = "StringList", value = join(",", var.subnet_ids) }
      "security-group-ids" = { type = "StringList", value = join(",", var.security_group_ids) }
    } : {},
  )
}

resource "aws_ssm_parameter" "contract" {
  #checkov:skip=CKV2_AWS_34:names and ARNs, not secrets; SecureString would make every reader need kms:Decrypt
  for_each    = local.ssm_parameters
  name        = "${local.ssm_prefix}/${each.key}"
  description = "Read by build.py --stage ${var.environment}."
  type        = each.value.type
  value       = each.value.value
}

# ----------------------------------------------------------------------------- GitHub deploy role

resource "aws_iam_openid_connect_provider" "github" {
  count          = var.create_github_oidc_provider ? 1 : 0
  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]
}

data "aws_iam_openid_connect_provider" "github" {
  count = var.create_github_oidc_provider ? 0 : 1
  url   = "https://token.actions.githubusercontent.com"
}

locals {
  github_provider_arn = var.create_github_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : data.aws_iam_openid_connect_provider.github[0].arn
}

# The deploy role: jobs of this repository in the GitHub environment of this stage; the plan
# role: jobs in "<stage>-plan" (deploy.yml's prod plan before the gate).
data "aws_iam_policy_document" "github_trust" {
  for_each = { deploy = local.github_sub, plan = "${local.github_sub}-plan" }
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.github_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = [each.value]
    }
  }
}

resource "aws_iam_role" "deploy" {
  name               = "${local.name}-deploy"
  description        = "Assumed by ${var.github_repository}'s deploy workflow (environment ${var.environment})."
  assume_role_policy = data.aws_iam_policy_document.github_trust["deploy"].json
  # deploy-stage.yml asks for 2 h before Terraform: an endpoint's blue/green update may run
  # over an hour (its maximum_execution_timeout_in_seconds plus the canary and kept fleet)
  max_session_duration = 7200
}

locals {
  arn_prefix = "arn:${local.partition}:%s:${var.region}:${local.account}"
  stage_arns = {
    # SageMaker may lower-case names in ARNs and IAM compares ARNs case-sensitively: both forms
    group     = distinct([for g in [var.model_package_group_name, lower(var.model_package_group_name)] : "${format(local.arn_prefix, "sagemaker")}:model-package-group/${g}"])
    packages  = distinct([for g in [var.model_package_group_name, lower(var.model_package_group_name)] : "${format(local.arn_prefix, "sagemaker")}:model-package/${g}/*"])
    models    = distinct([for g in [var.model_package_group_name, lower(var.model_package_group_name)] : "${format(local.arn_prefix, "sagemaker")}:model/${g}-${var.environment}-*"])
    pipelines = local.stage_pipelines
    rules     = "${format(local.arn_prefix, "events")}:rule/${local.name}-*"
    queues    = "${format(local.arn_prefix, "sqs")}:${local.name}-*"
    # the queues rules deliver to (batch-config-template.tf): run on upload, and the rules'
    # dead-letter queue (whether IAM counts a target's DeadLetterConfig is not documented)
    rule_queues = [local.upload_queue, local.schedule_dlq]
    topics      = "${format(local.arn_prefix, "sns")}:${local.name}-*"
    alarms      = "${format(local.arn_prefix, "cloudwatch")}:alarm:${local.name}-*"
    functions   = "${format(local.arn_prefix, "lambda")}:function:${local.name}-*"
    dashboard   = "arn:${local.partition}:cloudwatch::${local.account}:dashboard/${local.name}-*"
    # the optional real-time endpoint (batch-config-template.tf): <project>-<env>-realtime and
    # its configurations <project>-<env>-v<version>-<suffix>
    endpoints        = distinct([for n in [local.name, lower(local.name)] : "${format(local.arn_prefix, "sagemaker")}:endpoint/${n}-realtime"])
    endpoint_configs = distinct([for n in [local.name, lower(local.name)] : "${format(local.arn_prefix, "sagemaker")}:endpoint-config/${n}-v*"])
  }
}

# What build.py (promotion) and `terraform apply` of batch-config-template.tf do, on this
# stage's names only.
data "aws_iam_policy_document" "deploy" {
  #checkov:skip=CKV_AWS_356:sagemaker:ListModelPackages has no resource type; a new event source mapping has no ARN (limited by lambda:FunctionArn); scalable targets have no ARN before they exist (limited by application-autoscaling:service-namespace)
  statement {
    sid       = "ReadTheSsmContract"
    actions   = ["ssm:GetParametersByPath", "ssm:GetParameter", "ssm:GetParameters"]
    resources = ["arn:${local.partition}:ssm:${var.region}:${local.account}:parameter${local.ssm_prefix}", "arn:${local.partition}:ssm:${var.region}:${local.account}:parameter${local.ssm_prefix}/*"]
  }
  statement {
    sid       = "AssumeTheDevRegistryReadRole" # build.py --source-role-arn (infra/dev-account)
    actions   = ["sts:AssumeRole"]
    resources = ["arn:${local.partition}:iam::${var.dev_account_id}:role/${var.project_name}-registry-read"]
  }
  statement {
    sid       = "CopyArtifactsAndUploadDefinitions"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:GetObjectTagging", "s3:PutObjectTagging", "s3:AbortMultipartUpload"]
    resources = [local.project_objects]
  }
  statement {
    sid       = "ListTheProjectsPrefix"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]
  }
  # the model artifacts only, not the training data that may share the bucket
  statement {
    sid       = "ReadDevArtifactsForServerSideCopy"
    actions   = ["s3:GetObject", "s3:GetObjectTagging"]
    resources = [for prefix in var.dev_model_artifact_prefixes : "arn:${local.partition}:s3:::${var.dev_artifacts_bucket}/${prefix}*"]
  }
  statement {
    sid       = "ListDevArtifactPrefixes"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.dev_artifacts_bucket}"]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for prefix in var.dev_model_artifact_prefixes : "${prefix}*"]
    }
  }
  statement {
    # the stage's state (deploy-stage.yml: key <project>/<env>/batch-inference.tfstate and its
    # lock file) only: not the state of infra/ an administrator may keep in the same bucket
    sid       = "TerraformState"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${local.state_bucket_arn}/${var.project_name}/${var.environment}/*"]
  }
  statement {
    sid       = "ListTheStagesState"
    actions   = ["s3:ListBucket"]
    resources = [local.state_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      # the S3 backend lists workspaces (prefix "env:/") before it reads the state
      values = ["${var.project_name}/${var.environment}/*", "env:/", "env:/*"]
    }
  }
  statement {
    sid       = "RemoveTheDeploymentRecordOnDestroy" # the stage template's aws_s3_object
    actions   = ["s3:DeleteObject"]
    resources = ["${local.bucket_arn}/${var.project_name}/deployments/${var.environment}/*"]
  }
  statement {
    sid       = "UseTheStageKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = [aws_kms_key.stage.arn]
  }
  dynamic "statement" {
    for_each = var.dev_kms_key_arn == null ? [] : [var.dev_kms_key_arn]
    content {
      sid       = "DecryptDevArtifacts"
      actions   = ["kms:Decrypt", "kms:DescribeKey"]
      resources = [statement.value]
    }
  }
  statement {
    sid = "PromoteIntoTheStageRegistry"
    actions = [
      "sagemaker:CreateModelPackageGroup", "sagemaker:DescribeModelPackageGroup",
      "sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage", "sagemaker:DeleteModelPackage",
      "sagemaker:UpdateModelPackage", "sagemaker:AddTags", "sagemaker:ListTags",
    ]
    resources = concat(local.stage_arns.group, local.stage_arns.packages)
  }
  statement {
    sid       = "ListTheRegistry"
    actions   = ["sagemaker:ListModelPackages"]
    resources = ["*"] # ListModelPackages has no resource type
  }
  statement {
    sid = "DeployTheStagesModelAndPipeline"
    actions = [
      "sagemaker:CreateModel", "sagemaker:DescribeModel", "sagemaker:DeleteModel",
      "sagemaker:CreatePipeline", "sagemaker:UpdatePipeline", "sagemaker:DescribePipeline", "sagemaker:DeletePipeline",
      "sagemaker:AddTags", "sagemaker:ListTags", "sagemaker:DeleteTags",
    ]
    resources = concat(local.stage_arns.models, [local.stage_arns.pipelines])
  }
  statement {
    # the optional real-time endpoint: its configurations, the endpoint, blue/green updates
    # (UpdateEndpoint), and what Application Auto Scaling checks its caller may do
    sid = "DeployTheStagesEndpoint"
    actions = [
      "sagemaker:CreateEndpointConfig", "sagemaker:DescribeEndpointConfig", "sagemaker:DeleteEndpointConfig",
      "sagemaker:CreateEndpoint", "sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DeleteEndpoint",
      "sagemaker:UpdateEndpointWeightsAndCapacities", "sagemaker:AddTags", "sagemaker:ListTags", "sagemaker:DeleteTags",
    ]
    resources = concat(local.stage_arns.endpoints, local.stage_arns.endpoint_configs)
  }
  statement {
    # an endpoint configuration with the stage key: SageMaker makes a grant for the instances
    sid       = "EncryptTheEndpointsVolume"
    actions   = ["kms:CreateGrant"]
    resources = [aws_kms_key.stage.arn]
    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
  }
  statement {
    # scalable targets have no ARN before they exist (and an opaque one after): the
    # condition keeps the role to SageMaker variants
    sid       = "ScaleTheStagesEndpoint"
    actions   = ["application-autoscaling:RegisterScalableTarget", "application-autoscaling:DeregisterScalableTarget", "application-autoscaling:PutScalingPolicy", "application-autoscaling:DeleteScalingPolicy"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "application-autoscaling:service-namespace"
      values   = ["sagemaker"]
    }
  }
  statement {
    # target tracking's own alarms, which Application Auto Scaling names after the variant
    sid       = "TheScalingPolicysAlarms"
    actions   = ["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"]
    resources = [for n in distinct([local.name, lower(local.name)]) : "${format(local.arn_prefix, "cloudwatch")}:alarm:TargetTracking-endpoint/${n}-realtime/*"]
  }
  statement {
    # build.py checks that the account's endpoint scaling role exists before an apply needs it
    sid       = "FindTheEndpointScalingRole"
    actions   = ["iam:GetRole"]
    resources = [local.endpoint_scaling_role]
  }
  statement {
    sid       = "ReadTheScaling" # no resource type
    actions   = ["application-autoscaling:DescribeScalableTargets", "application-autoscaling:DescribeScalingPolicies"]
    resources = ["*"]
  }
  statement {
    sid       = "TagTheScalableTargets" # the provider's default tags ride on the target
    actions   = ["application-autoscaling:ListTagsForResource", "application-autoscaling:TagResource", "application-autoscaling:UntagResource"]
    resources = [local.scalable_targets]
  }
  statement {
    sid       = "SmokeRunTheDeployedPipeline" # pipelines/smoke_run.py, after the apply
    actions   = ["sagemaker:StartPipelineExecution", "sagemaker:DescribePipelineExecution", "sagemaker:StopPipelineExecution"]
    resources = [local.stage_arns.pipelines] # <project>-<env>-*: its executions too
  }
  statement {
    # build.py pins the package's images of this registry by digest, and waits until the
    # replicated copies of the dev images are here (image metadata only)
    sid       = "FindTheStagesImages"
    actions   = ["ecr:DescribeImages"]
    resources = ["arn:${local.partition}:ecr:${var.region}:${local.account}:repository/*"]
  }
  statement {
    # the stage template's image pulls (aws_iam_role_policy.pull_images): on the execution
    # role only, and only while the boundary that caps any such policy is in place
    sid       = "GrantTheExecutionRoleItsImages"
    actions   = ["iam:PutRolePolicy", "iam:DeleteRolePolicy"]
    resources = [aws_iam_role.execution.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PermissionsBoundary"
      values   = [aws_iam_policy.execution_boundary.arn]
    }
  }
  statement {
    sid       = "ReadTheExecutionRolesPolicies" # how the provider reads that policy back
    actions   = ["iam:GetRolePolicy"]
    resources = [aws_iam_role.execution.arn]
  }
  # One statement per PassRole grant, not a dynamic block: each names its role and the one
  # service it may go to, so a reviewer reads every grant whole, under its own Sid.
  statement {
    sid       = "PassTheExecutionRoleToSageMaker"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.execution.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["sagemaker.amazonaws.com"]
    }
  }
  statement {
    sid       = "PassTheUploadStarterRoleToLambda"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.upload_starter.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["lambda.amazonaws.com"]
    }
  }
  statement {
    sid = "ManageTheStagesFunctions" # schedule, upload, run outcome; their rules may invoke them
    actions = [
      "lambda:CreateFunction", "lambda:GetFunction", "lambda:GetFunctionConfiguration", "lambda:UpdateFunctionCode",
      "lambda:UpdateFunctionConfiguration", "lambda:DeleteFunction", "lambda:ListVersionsByFunction",
      "lambda:GetFunctionCodeSigningConfig", "lambda:ListTags", "lambda:TagResource", "lambda:UntagResource",
      "lambda:AddPermission", "lambda:RemovePermission", "lambda:GetPolicy",
    ]
    resources = [local.stage_arns.functions]
  }
  statement {
    # a mapping to create has no ARN yet: Lambda authorises CreateEventSourceMapping on "*",
    # limited here by the function it connects
    sid       = "ConnectTheUploadQueueToTheFunction"
    actions   = ["lambda:CreateEventSourceMapping"]
    resources = ["*"]
    condition {
      test     = "ArnLike"
      variable = "lambda:FunctionArn"
      values   = [local.stage_arns.functions]
    }
  }
  statement {
    sid       = "ChangeTheUploadEventSource"
    actions   = ["lambda:UpdateEventSourceMapping", "lambda:DeleteEventSourceMapping"]
    resources = ["${format(local.arn_prefix, "lambda")}:event-source-mapping:*"]
    condition {
      test     = "ArnLike"
      variable = "lambda:FunctionArn"
      values   = [local.stage_arns.functions]
    }
  }
  statement {
    # reads and tags (the provider's default_tags ride on CreateEventSourceMapping) carry no
    # lambda:FunctionArn, which a condition would then never match
    sid       = "ReadAndTagTheEventSource"
    actions   = ["lambda:GetEventSourceMapping", "lambda:ListTags", "lambda:TagResource", "lambda:UntagResource"]
    resources = ["${format(local.arn_prefix, "lambda")}:event-source-mapping:*"]
  }
  statement {
    sid       = "FindLogGroups" # how the provider reads a log group back
    actions   = ["logs:DescribeLogGroups"]
    resources = ["arn:${local.partition}:logs:${var.region}:${local.account}:log-group:*"]
  }
  statement {
    # the stage's batch-quality and prediction metric filters; IAM scopes these calls to the
    # log group, not to a filter name, so the role could also change other filters there
    sid       = "ManageTheQualityMetricFilters"
    actions   = ["logs:PutMetricFilter", "logs:DeleteMetricFilter", "logs:DescribeMetricFilters"]
    resources = flatten([for group in concat(local.job_log_groups, [local.schedule_log_group]) : ["arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${group}", "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${group}:*"]])
  }
  statement {
    sid       = "ManageTheFunctionsLogGroups"
    actions   = ["logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy", "logs:AssociateKmsKey", "logs:ListTagsForResource", "logs:TagResource", "logs:UntagResource"]
    resources = flatten([for group in local.function_log_groups : ["arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${group}", "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${group}:*"]])
  }
  # The stage's rules match SageMaker's and S3's events only and deliver only to the stage's
  # functions and upload queue (encrypted with the stage key, which no other account may use):
  # the role cannot route the account's event stream anywhere else.
  statement {
    # a schedule has no pattern (no events:source): ForAllValues holds for it
    sid       = "PutTheStagesRulesOnSageMakerAndS3Events"
    actions   = ["events:PutRule"]
    resources = [local.stage_arns.rules]
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "events:source"
      values   = ["aws.sagemaker", "aws.s3"]
    }
  }
  statement {
    sid       = "TargetTheStagesFunctionsAndUploadQueueOnly"
    actions   = ["events:PutTargets"]
    resources = [local.stage_arns.rules]
    condition {
      test     = "ForAllValues:ArnLike"
      variable = "events:TargetArn"
      values   = concat([local.stage_arns.functions], local.stage_arns.rule_queues)
    }
    condition {
      test     = "Null"
      variable = "events:TargetArn"
      values   = ["false"]
    }
  }
  statement {
    # the alarm email's subscription (alarm_email): neither action has a resource type in
    # IAM's action reference, so a statement on the topic does not cover them
    sid       = "ReadAndRemoveTheAlarmEmailSubscription"
    actions   = ["sns:GetSubscriptionAttributes", "sns:Unsubscribe"]
    resources = ["*"]
  }
  statement {
    # alarm notifications by email only, which the address's owner must confirm
    sid       = "SubscribeTheAlarmEmail"
    actions   = ["sns:Subscribe"]
    resources = [local.stage_arns.topics]
    condition {
      test     = "StringEquals"
      variable = "sns:Protocol"
      values   = ["email"]
    }
  }
  statement {
    sid = "ManageTheStagesScheduleQueuesTopicAlarmsDashboard"
    actions = [
      "events:DeleteRule", "events:DescribeRule", "events:RemoveTargets",
      "events:ListTargetsByRule", "events:ListTagsForResource", "events:TagResource", "events:UntagResource",
      "sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes", "sqs:ListQueueTags",
      "sqs:TagQueue", "sqs:UntagQueue",
      "sns:CreateTopic", "sns:DeleteTopic", "sns:GetTopicAttributes", "sns:SetTopicAttributes",
      "sns:ListTagsForResource", "sns:TagResource", "sns:UntagResource",
      "cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms", "cloudwatch:ListTagsForResource",
      "cloudwatch:TagResource", "cloudwatch:UntagResource",
      "cloudwatch:PutDashboard", "cloudwatch:GetDashboard", "cloudwatch:DeleteDashboards",
    ]
    resources = [
      local.stage_arns.rules, local.stage_arns.queues, local.stage_arns.topics, local.stage_arns.alarms,
      local.stage_arns.dashboard,
    ]
  }
}

# The plan before the gate: deploy.yml's plan job runs build.py --plan-only and
# `terraform plan -lock=false` in the GitHub environment "<env>-plan" (no reviewers), so
# the prod reviewer reads the plan before approving. Reads only: it cannot change anything
# the deploy role can, so an ungated environment holding it gates nothing away.
resource "aws_iam_role" "plan" {
  count                = local.plan_role ? 1 : 0
  name                 = "${local.name}-plan"
  description          = "Assumed by ${var.github_repository}'s plan job (environment ${var.environment}-plan): reads only."
  assume_role_policy   = data.aws_iam_policy_document.github_trust["plan"].json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "plan" {
  #checkov:skip=CKV_AWS_356:sagemaker:ListModelPackages, logs:DescribeLogGroups and application-autoscaling's Describe calls have no narrower resource
  statement {
    sid       = "ReadTheSsmContract"
    actions   = ["ssm:GetParametersByPath", "ssm:GetParameter", "ssm:GetParameters"]
    resources = ["arn:${local.partition}:ssm:${var.region}:${local.account}:parameter${local.ssm_prefix}", "arn:${local.partition}:ssm:${var.region}:${local.account}:parameter${local.ssm_prefix}/*"]
  }
  statement {
    # the deployment record and the stage's state only: this role works in an environment
    # without reviewers, so it reads no model artifact and no batch data
    sid       = "ReadTheDeploymentRecordAndState"
    actions   = ["s3:GetObject", "s3:GetObjectTagging"]
    resources = ["${local.bucket_arn}/${var.project_name}/deployments/${var.environment}/*", "${local.state_bucket_arn}/${var.project_name}/${var.environment}/*"]
  }
  statement {
    sid       = "ListTheBuckets"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn, local.state_bucket_arn]
  }
  statement {
    sid       = "DecryptWithTheStageKey"
    actions   = ["kms:Decrypt", "kms:DescribeKey"]
    resources = [aws_kms_key.stage.arn]
  }
  statement {
    sid       = "ReadTheRegistry"
    actions   = ["sagemaker:DescribeModelPackageGroup", "sagemaker:DescribeModelPackage", "sagemaker:ListTags"]
    resources = concat(local.stage_arns.group, local.stage_arns.packages)
  }
  statement {
    sid       = "ListTheRegistryAndLogGroups"
    actions   = ["sagemaker:ListModelPackages", "logs:DescribeLogGroups"]
    resources = ["*"]
  }
  statement {
    sid = "RefreshTheStagesResources" # what `terraform plan` reads back
    actions = [
      "sagemaker:DescribeModel", "sagemaker:DescribePipeline", "sagemaker:ListTags",
      "events:DescribeRule", "events:ListTargetsByRule", "events:ListTagsForResource",
      "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ListQueueTags",
      "sns:GetTopicAttributes", "sns:ListTagsForResource",
      "cloudwatch:DescribeAlarms", "cloudwatch:ListTagsForResource", "cloudwatch:GetDashboard",
      "lambda:GetFunction", "lambda:GetFunctionConfiguration", "lambda:ListVersionsByFunction",
      "lambda:GetFunctionCodeSigningConfig", "lambda:ListTags", "lambda:GetPolicy",
      "logs:ListTagsForResource", "logs:ListTagsLogGroup",
    ]
    resources = concat(local.stage_arns.models, [
      local.stage_arns.pipelines, local.stage_arns.rules, local.stage_arns.queues, local.stage_arns.topics,
      local.stage_arns.alarms, local.stage_arns.dashboard, local.stage_arns.functions,
      ], flatten([for group in local.function_log_groups : [
        "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${group}",
        "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${group}:*",
    ]]))
  }
  statement {
    sid       = "RefreshTheMetricFilters"
    actions   = ["logs:DescribeMetricFilters"]
    resources = [for group in concat(local.job_log_groups, [local.schedule_log_group]) : "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${group}:*"]
  }
  statement {
    sid       = "RefreshTheEndpoint"
    actions   = ["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:ListTags"]
    resources = concat(local.stage_arns.endpoints, local.stage_arns.endpoint_configs)
  }
  statement {
    sid       = "RefreshTheEndpointScaling" # no resource type
    actions   = ["application-autoscaling:DescribeScalableTargets", "application-autoscaling:DescribeScalingPolicies"]
    resources = ["*"]
  }
  statement {
    sid       = "FindTheEndpointScalingRole" # build.py --plan-only checks it too
    actions   = ["iam:GetRole"]
    resources = [local.endpoint_scaling_role]
  }
  statement {
    sid       = "RefreshTheScalableTargetsTags"
    actions   = ["application-autoscaling:ListTagsForResource"]
    resources = [local.scalable_targets]
  }
  statement {
    # no resource type (IAM's action reference): a statement on the topic does not cover it
    sid       = "RefreshTheAlarmEmailSubscription"
    actions   = ["sns:GetSubscriptionAttributes"]
    resources = ["*"]
  }
  statement {
    sid       = "RefreshTheImagePullsAndFindImages"
    actions   = ["iam:GetRolePolicy", "ecr:DescribeImages"]
    resources = [aws_iam_role.execution.arn, "arn:${local.partition}:ecr:${var.region}:${local.account}:repository/*"]
  }
  statement {
    sid       = "RefreshTheUploadEventSource"
    actions   = ["lambda:GetEventSourceMapping", "lambda:ListTags"]
    resources = ["${format(local.arn_prefix, "lambda")}:event-source-mapping:*"]
  }
}

resource "aws_iam_role_policy" "plan" {
  count  = local.plan_role ? 1 : 0
  name   = "plan-${var.environment}"
  role   = aws_iam_role.plan[0].id
  policy = data.aws_iam_policy_document.plan.json
}

resource "aws_iam_role_policy" "deploy" {
  name   = "deploy-${var.environment}"
  role   = aws_iam_role.deploy.id
  policy = data.aws_iam_policy_document.deploy.json
}

# ----------------------------------------------------------------------------- outputs

output "artifacts_bucket" {
  value = aws_s3_bucket.artifacts.bucket
}

output "kms_key_arn" {
  value = aws_kms_key.stage.arn
}

output "sagemaker_role_arn" {
  value = aws_iam_role.execution.arn
}

output "deploy_role_arn" {
  description = "Store as the GitHub environment variable AWS_DEPLOY_ROLE_ARN."
  value       = aws_iam_role.deploy.arn
}

output "plan_role_arn" {
  description = "Store as the variable AWS_DEPLOY_ROLE_ARN of the GitHub environment <environment>-plan (reads only)."
  value       = try(aws_iam_role.plan[0].arn, null)
}

output "terraform_state_bucket" {
  description = "Store as the GitHub environment variable TF_STATE_BUCKET."
  value       = aws_s3_bucket.state.bucket
}

output "ssm_parameters" {
  value = sort([for p in aws_ssm_parameter.contract : p.name])
}
