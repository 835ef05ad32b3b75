# One stage's batch-inference resources (SageMaker model, pipeline, schedule, dashboard,
# alarms). Not written yet: only the provider constraint is fixed so far.
terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}
