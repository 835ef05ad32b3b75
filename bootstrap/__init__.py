"""The first deployment's one-time commands (docs/deploying-to-aws.md, sections 1-4).

``python -m bootstrap target --stage preprod|prod``, ``python -m bootstrap dev`` and
``python -m bootstrap preflight --stage ...`` replace the shell an administrator copied by
hand: the base roots' apply, their state moved into S3, the dev bucket policy merged, the
GitHub variables set, and the checks a first deploy needs. One module per job:
``settings`` (the inputs), ``terraform`` (the runs), ``bucket_policy`` (the merge),
``github`` (the REST calls), ``roots`` (the two bootstraps), ``preflight``.
"""
