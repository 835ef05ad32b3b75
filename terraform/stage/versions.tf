# The stage's resources, in one file per concern; batch-config-template.tf (the root) calls
# this module with its validated variables and holds the provider and the moved blocks.
terraform {
  required_version = ">= 1.10"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}
