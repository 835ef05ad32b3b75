# Base infrastructure of the dev (training) account, applied once by an administrator:
#
# - the registry-read role the deploy workflow assumes through GitHub's OIDC provider, for
#   both stages' GitHub environments: read the model package group and its artifacts, nothing
#   else;
# - read access to the model artifacts for the target accounts' deploy roles, so build.py's
#   server-side copy works (a KMS grant per role, and a bucket-policy statement);
# - ECR replication of the model images' repositories to the stage accounts;
# - the EventBridge rule on "SageMaker Model Package State Change" filtered to this project's
#   group and to Approved, whose target is the dispatch Lambda (lambdas/dispatch_deploy): it
#   starts the deploy workflow with the approved version. Events it cannot deliver, and
#   invocations that keep failing, land in an encrypted dead-letter queue with an alarm.
#
# The GitHub token is a Secrets Manager secret created here without a value: put it with
# `aws secretsmanager put-secret-value` (README), so it never enters Terraform state.

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
      environment              = "dev"
    }
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account       = data.aws_caller_identity.current.account_id
  partition     = data.aws_partition.current.partition
  name          = "${var.project_name}-dev"
  function_name = "${var.project_name}-dispatch-deploy"
  # SageMaker may lower-case names in ARNs and IAM compares ARNs case-sensitively: both forms
  group_names        = distinct([var.model_package_group_name, lower(var.model_package_group_name)])
  group_arns         = [for g in local.group_names : "arn:${local.partition}:sagemaker:${var.region}:${local.account}:model-package-group/${g}"]
  packages_arns      = [for g in local.group_names : "arn:${local.partition}:sagemaker:${var.region}:${local.account}:model-package/${g}/*"]
  artifacts_arn      = "arn:${local.partition}:s3:::${var.model_artifacts_bucket}"
  artifact_arns      = [for prefix in var.model_artifact_prefixes : "${local.artifacts_arn}/${prefix}*"]
  image_prefixes     = coalesce(var.image_repository_prefixes, [var.project_name])
  image_repositories = [for p in local.image_prefixes : "arn:${local.partition}:ecr:${var.region}:${local.account}:repository/${p}*"]
  stage_accounts     = distinct([for arn in var.target_deploy_role_arns : split(":", arn)[4]])
  # the stages' deploy jobs and prod's plan job (deploy.yml plans prod before its gate); no
  # other environment: GitHub creates a referenced one without branch rules, open to any branch
  github_subject = [for environment in ["preprod", "prod", "prod-plan"] : "repo:${var.github_repository}:environment:${environment}"]
}
