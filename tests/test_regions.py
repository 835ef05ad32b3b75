"""The scikit-learn image: the pipeline's Processing step and the execution role's pull
grant name the same repository, of the right account, in every region.

The account SageMaker's framework images live in differs by region; a definition built for
one region with another's account cannot pull its image, and a role allowing the wrong
registry cannot either. Both come from the SDK's table (the definition's image, and the
repository build.py writes into the stage's ``image_repository_arns``); offline, no AWS.
"""

from __future__ import annotations

import json

import pytest

from common.image_uris import ImageUri
from pipelines.batch_inference import pipeline as batch_pipeline
from promotion.images import repository_arns

REGIONS = ["eu-west-1", "us-east-1", "ap-southeast-2", "sa-east-1"]


def definition_image(region: str) -> ImageUri:
    """The Processing image of a definition built for ``region``."""
    pipeline = batch_pipeline.get_pipeline(
        region=region,
        role="arn:aws:iam::222222222222:role/execution",
        default_bucket="stage-bucket",
        project_name="churn",
        model_name="churn-models-preprod-v1",
    )
    # Preprocess and Publish run the same image: the one grant covers both
    (image,) = {
        s["Arguments"]["AppSpecification"]["ImageUri"]
        for s in json.loads(pipeline.definition())["Steps"]
        if s["Type"] == "Processing"
    }
    return ImageUri.parse(image)


def test_the_regions_differ_so_the_check_means_something() -> None:
    accounts = {definition_image(region).account for region in REGIONS}
    assert len(accounts) > 1


@pytest.mark.parametrize("region", REGIONS)
def test_pipeline_image_and_role_grant_name_the_same_repository(region: str) -> None:
    image = definition_image(region)
    assert image.region == region and image.is_sagemakers
    assert image.repository == "sagemaker-scikit-learn"
    # what build.py grants the stage's execution role for the Processing step
    assert repository_arns([], batch_pipeline.sklearn_image_uri(region)) == [image.repository_arn]
