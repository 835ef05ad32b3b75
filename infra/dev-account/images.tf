# A model served by the team's own image: ECR copies each push to a repository under the
# prefixes into every stage's registry (whose policy, from infra/target-account, lets this
# account replicate), and build.py names the stage's copy by digest. The stages then run
# their own copy: no later push, lifecycle rule or deletion here changes or removes it.

resource "aws_ecr_replication_configuration" "to_stages" {
  count = var.replicate_images ? 1 : 0
  replication_configuration {
    rule {
      dynamic "destination" {
        for_each = local.stage_accounts
        content {
          region      = var.region
          registry_id = destination.value
        }
      }
      dynamic "repository_filter" {
        for_each = local.image_prefixes
        content {
          filter      = repository_filter.value
          filter_type = "PREFIX_MATCH"
        }
      }
    }
  }
}
