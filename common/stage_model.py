"""What the stage template adds to every SageMaker Model it creates, beside the package's.

The stage's models run with network isolation (``enable_network_isolation`` in
``batch-config-template.tf``), so no package index is reachable from the container. The
scikit-learn image's serving stack installs the model's ``code/`` directory with ``pip
install .`` at start; pip 26 builds it in an isolated environment that must download
setuptools, which fails without a network, and the container exits before ``/ping``
(reproduced in the image's runtime twin: ``tests/test_container_contract.py``). With
``PIP_NO_BUILD_ISOLATION=false`` pip builds with the image's own setuptools instead; pip reads
this variable inverted (its ``--no-build-isolation`` option stores ``False``, and the
variable's value is that option's value), so ``false`` is what switches isolation off.
The template sets the same map (a test holds them equal); the demo and the local executor
read it from here.

:func:`container_environment` is the package's own environment for a model whose handlers are
``code/inference.py`` (the examples', and ``check_model``'s default for a team's model
directory or ``model.tar.gz``): here, below the examples, so the operator CLIs can read it.
"""

from __future__ import annotations

STAGE_MODEL_ENVIRONMENT = {"PIP_NO_BUILD_ISOLATION": "false"}


def container_environment() -> dict[str, str]:
    """What the scikit-learn serving container needs to find the handlers, and the answer's
    type for a request without ``Accept`` (the toolkit's default is JSON, which the examples'
    handlers do not write)."""
    return {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
    }
