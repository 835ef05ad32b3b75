"""AWS Lambda functions of the project, packaged by ``python -m lambdas.package``."""
