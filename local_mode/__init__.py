"""Local mode: run the deployed pipeline definition on one machine, against any S3 endpoint.

``executor.execute`` takes the same definition JSON that SageMaker runs and executes its
Processing and Transform steps here (subprocesses and in-process model serving), reading and
writing S3 through boto3, so an emulator on loopback stands in for AWS.
"""
