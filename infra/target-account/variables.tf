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

variable "external_inputs" {
  description = "Input prefixes outside the stage's bucket that its stage file's input_data_url may name (a data lake bucket of this or another account): the execution role and the schedule's and upload functions' role may list and read under each, and decrypt with its kms_key_arn when its objects are SSE-KMS with a customer managed key. account_id is the bucket's owner (null: this account); the reads hold only while it owns the bucket. The bucket's owner must grant these roles too (docs/stage-template.md, \"Inputs outside the stage's bucket\"). build.py and the stage template refuse an input_data_url outside the stage's bucket and these prefixes."
  type = list(object({
    url         = string
    account_id  = optional(string)
    kms_key_arn = optional(string)
  }))
  default = []
  validation {
    # no wildcard: a prefix bounds exactly what it names; not a bucket root (least privilege)
    condition     = alltrue([for i in var.external_inputs : can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^*?]*[^/*?]/$", i.url))])
    error_message = "external_inputs' urls must be s3://bucket/prefix/: a key prefix inside the bucket (not its root), ending in a slash, with no * or ?."
  }
  validation {
    condition     = alltrue([for i in var.external_inputs : i.account_id == null || can(regex("^[0-9]{12}$", i.account_id))])
    error_message = "external_inputs' account_id must be the bucket owner's 12-digit account id, or null for this account."
  }
  validation {
    # a key ARN, not an alias (IAM matches kms:Decrypt on the key's ARN), in the stage's
    # region: S3 uses a key of the bucket's region, and the jobs read in theirs
    condition     = alltrue([for i in var.external_inputs : i.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:${var.region}:[0-9]{12}:key/[A-Za-z0-9-]+$", i.kms_key_arn))])
    error_message = "external_inputs' kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>, not an alias) in the stage's region, or null."
  }
  validation {
    # each adds two statements to the execution role's managed policy and its boundary (at
    # most 6,144 characters each) and its entry to one SSM parameter
    condition     = length(var.external_inputs) <= 5
    error_message = "external_inputs may list at most 5 prefixes; list a common parent prefix instead."
  }
}
