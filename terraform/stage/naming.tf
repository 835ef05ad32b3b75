# The stage's names come from terraform/modules/naming, which infra/target-account scopes the
# deploy role's and the service roles' IAM resources with: a name changed there changes both.
module "naming" {
  source                   = "../modules/naming"
  project_name             = var.project_name
  environment              = var.environment
  model_package_group_name = var.model_package_group_name
}

locals {
  name      = module.naming.name
  functions = module.naming.functions
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
