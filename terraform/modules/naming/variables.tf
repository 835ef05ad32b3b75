# Inputs of the names: the callers validate them (batch-config-template.tf, infra/target-account).

variable "project_name" {
  description = "SageMaker project name."
  type        = string
}

variable "environment" {
  description = "Stage name: preprod or prod."
  type        = string
}

variable "model_package_group_name" {
  description = "The stage's model package group (its models are named <group>-<environment>-...)."
  type        = string
}
