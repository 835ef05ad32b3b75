"""Low helpers every layer shares: AWS sessions and retries, exit codes, files, S3 locations,
image URIs, the stage model's environment. Standard library and boto3 only; nothing here imports
another package of the project."""
