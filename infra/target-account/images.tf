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
