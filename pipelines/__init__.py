"""SageMaker pipelines of this template and the CLIs that build and run them."""
