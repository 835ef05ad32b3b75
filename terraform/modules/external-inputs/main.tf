# What a stage's roles may read outside the stage's bucket: the IAM statements for the input
# prefixes an administrator allows in infra/target-account (external_inputs). Names and
# documents only, no provider: tests render them offline and judge them with the IAM
# checkers (tests/test_iam_review.py). The caller validates the inputs.

variable "inputs" {
  description = "The allowed prefixes: url (s3://bucket/prefix/), account_id (the bucket's owner), kms_key_arn (the key its objects are encrypted with, or null)."
  type = list(object({
    url         = string
    account_id  = string
    kms_key_arn = optional(string)
  }))
}

variable "partition" {
  description = "The stage account's partition (aws, aws-cn, ...)."
  type        = string
}

variable "region" {
  description = "The stage's region: S3 decrypts with an input's key on the roles' behalf there only."
  type        = string
}

locals {
  parsed = [for i in var.inputs : merge(i, {
    bucket = regex("^s3://([^/]+)/(.*)$", i.url)[0]
    prefix = regex("^s3://([^/]+)/(.*)$", i.url)[1]
  })]
  keys = distinct(compact([for i in var.inputs : i.kms_key_arn]))
  # One pair per prefix: the objects under it and listing below it, each only while the
  # bucket belongs to the account the administrator named (s3:ResourceAccount), so a
  # bucket of that name re-created elsewhere is not read.
  statements = concat(
    flatten([for n, i in local.parsed : [
      {
        Sid       = "ReadExternalInput${n}"
        Effect    = "Allow"
        Action    = ["s3:GetObject"]
        Resource  = ["arn:${var.partition}:s3:::${i.bucket}/${i.prefix}*"]
        Condition = { StringEquals = { "s3:ResourceAccount" = i.account_id } }
      },
      {
        Sid      = "ListExternalInput${n}"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = ["arn:${var.partition}:s3:::${i.bucket}"]
        Condition = {
          StringLike   = { "s3:prefix" = ["${i.prefix}*"] }
          StringEquals = { "s3:ResourceAccount" = i.account_id }
        }
      },
    ]]),
    # decrypt only what S3 decrypts for a read in the stage's region
    length(local.keys) == 0 ? [] : [{
      Sid       = "DecryptExternalInputs"
      Effect    = "Allow"
      Action    = ["kms:Decrypt"]
      Resource  = local.keys
      Condition = { StringEquals = { "kms:ViaService" = "s3.${var.region}.amazonaws.com" } }
    }],
  )
}

output "policy" {
  description = "An identity policy document (JSON) granting the reads, or null when nothing outside the stage is allowed."
  value       = length(var.inputs) == 0 ? null : jsonencode({ Version = "2012-10-17", Statement = local.statements })
}
