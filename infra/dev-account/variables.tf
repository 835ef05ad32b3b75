variable "region" {
  description = "AWS region of the registry."
  type        = string
}

variable "project_name" {
  description = "Project name: prefixes the names created here."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$", var.project_name))
    error_message = "project_name must be 3-32 lowercase letters, digits and hyphens."
  }
}

variable "model_package_group_name" {
  description = "The model package group whose approvals start deployments."
  type        = string
}

variable "github_repository" {
  description = "owner/name of the repository holding .github/workflows/deploy.yml."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be owner/name."
  }
}

variable "github_ref" {
  description = "Branch the dispatched deploy workflow runs on."
  type        = string
  default     = "main"
}

variable "create_github_oidc_provider" {
  description = "Create GitHub's OIDC provider; false if the account already has one (it is one per account)."
  type        = bool
  default     = true
}

variable "model_artifacts_bucket" {
  description = "The dev bucket holding the registered models' artifacts."
  type        = string
}

variable "model_artifact_prefixes" {
  description = "Key prefixes of model_artifacts_bucket under which the packages' model artifacts lie (e.g. [\"training/\"]): the deploy side reads only these, not the training data beside them."
  type        = list(string)
  validation {
    condition     = length(var.model_artifact_prefixes) > 0 && alltrue([for p in var.model_artifact_prefixes : can(regex("^[^/*][^*]*/$", p))])
    error_message = "model_artifact_prefixes must list key prefixes such as \"training/\": not empty, no leading slash, no wildcard, ending in a slash."
  }
}

variable "model_artifacts_kms_key_arn" {
  description = "KMS key of the model artifacts, if they are SSE-KMS encrypted (the target deploy roles get a grant on it)."
  type        = string
  default     = null
}

variable "manage_model_artifacts_bucket_policy" {
  description = "Write the artifacts bucket's policy (TLS-only + the target deploy roles' read). false: merge the output model_artifacts_bucket_policy into the existing policy yourself."
  type        = bool
  default     = false
}

variable "target_deploy_role_arns" {
  description = "The deploy roles of the pre-prod and prod accounts (output deploy_role_arn of infra/target-account)."
  type        = list(string)
  validation {
    condition     = alltrue([for arn in var.target_deploy_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/", arn))])
    error_message = "target_deploy_role_arns must be IAM role ARNs."
  }
}

variable "target_plan_role_arns" {
  description = "The plan roles of the stages that run a shadow before their gate (prod's: output plan_role_arn of infra/target-account): they read the model artifacts too, to copy the candidate's for its shadow run (build.py --plan-only --shadow-candidate). Not trusted by the registry-read role (the plan job reads the registry through GitHub's OIDC)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for arn in var.target_plan_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/", arn))])
    error_message = "target_plan_role_arns must be IAM role ARNs."
  }
}

variable "image_repository_prefixes" {
  description = "Name prefixes of this account's ECR repositories that hold the images models are served with: replicated to the stages, read by build.py. Default: the project name."
  type        = list(string)
  default     = null
  validation {
    condition     = var.image_repository_prefixes == null ? true : length(var.image_repository_prefixes) > 0 && alltrue([for p in var.image_repository_prefixes : can(regex("^[a-z0-9][a-z0-9._/-]*$", p))])
    error_message = "image_repository_prefixes must be ECR repository name prefixes (lower case)."
  }
}

variable "replicate_images" {
  description = "Replicate those repositories to each stage account (the accounts of target_deploy_role_arns) in this region, for models served by the team's own images (the sample's AWS image needs none). A registry has one replication configuration per region, which this replaces: leave false when the account's is managed elsewhere, and add a rule with these destinations there."
  type        = bool
  default     = false
}

variable "dispatch_lambda_zip" {
  description = "The dispatch Lambda's package, built by `make lambda-package` (python -m lambdas.package)."
  type        = string
  default     = "../../build/dispatch-deploy.zip"
}

variable "alarm_email" {
  description = "Optional address subscribed to the alarm topic."
  type        = string
  default     = null
}

variable "dispatch_reserved_concurrency" {
  description = "Concurrency reserved for (and capping) the dispatch Lambda. Accounts whose Lambda concurrency limit is 10 cannot reserve any: set -1 (unreserved)."
  type        = number
  default     = 2
}

variable "log_retention_days" {
  description = "Retention of the dispatch Lambda's logs."
  type        = number
  default     = 365
}
