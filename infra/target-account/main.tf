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

# the stage's names, which the stage module (terraform/stage) creates its resources with: the
# deploy role's and the service roles' resource scopes below are built from them
module "naming" {
  source                   = "../../terraform/modules/naming"
  project_name             = var.project_name
  environment              = var.environment
  model_package_group_name = var.model_package_group_name
}

# what the roles may read outside the stage's bucket (external_inputs), owner resolved
module "external_inputs" {
  source    = "../../terraform/modules/external-inputs"
  inputs    = local.external_inputs
  partition = local.partition
  region    = var.region
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  plan_role = coalesce(var.plan_role, var.environment == "prod")
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  name      = module.naming.name
  root      = "arn:${local.partition}:iam::${local.account}:root"
  # bucket layout (utils.py): <project>/model-artifacts, <project>/code, <project>/pipelines,
  # <project>/batch-inference/{input,output}
  bucket_arn          = "arn:${local.partition}:s3:::${local.name}-artifacts-${local.account}"
  project_objects     = "${local.bucket_arn}/${var.project_name}/*"
  output_prefix       = "${var.project_name}/batch-inference/output/"
  ssm_prefix          = module.naming.ssm_prefix
  job_log_groups      = ["/aws/sagemaker/ProcessingJobs", "/aws/sagemaker/TransformJobs"]
  state_bucket_arn    = "arn:${local.partition}:s3:::${local.name}-tfstate-${local.account}"
  github_sub          = "repo:${var.github_repository}:environment:${var.environment}"
  execution_role_name = module.naming.execution_role
  execution_role_arn  = "arn:${local.partition}:iam::${local.account}:role/${local.execution_role_name}"
  # the stage's copies of the dev images (replication keeps their repository names)
  # external_inputs with each bucket's owner (this account unless named): the grants and
  # the SSM contract (build.py and the stage template check input_data_url against it)
  external_inputs    = [for i in var.external_inputs : { url = i.url, account_id = coalesce(i.account_id, local.account), kms_key_arn = i.kms_key_arn }]
  image_repositories = [for p in coalesce(var.image_repository_prefixes, [var.project_name]) : "arn:${local.partition}:ecr:${var.region}:${local.account}:repository/${p}*"]
}
