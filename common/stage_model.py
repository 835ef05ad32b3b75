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
"""

from __future__ import annotations

STAGE_MODEL_ENVIRONMENT = {"PIP_NO_BUILD_ISOLATION": "false"}
