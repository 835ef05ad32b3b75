"""The Processing steps' storage volume: what each instance of Preprocess and Publish gets.

A Processing job in ``File`` mode downloads its instance's share of every input onto the
instance's ML storage volume before the script starts, and the script writes its outputs
there until the ``EndOfJob`` upload: both must fit (``ProcessingClusterConfig.VolumeSizeInGB``,
"You must specify sufficient ML storage for your scenario"). The stage file sets it
(``processing_volume_size_gb``); the definition carries it as the default of the
``ProcessingVolumeSizeInGB`` parameter, so a run given fewer instances than usual (a large
backfill) can be given a larger volume too. How to size it: docs/stage-template.md.

No SDK import here: ``build.py``, the capacity plan and local mode read it.
"""

from __future__ import annotations

import math
from typing import Any

SETTING_NAME = "processing_volume_size_gb"
PARAMETER_NAME = "ProcessingVolumeSizeInGB"
# the SageMaker SDK's ScriptProcessor default: what the definition sent before the setting
DEFAULT_VOLUME_GB = 30
# ProcessingVolumeSizeInGB in botocore's SageMaker model: {'min': 1, 'max': 16384}
VOLUME_GB_RANGE = (1, 16384)
RULE = f"a whole number from {VOLUME_GB_RANGE[0]} to {VOLUME_GB_RANGE[1]}"


def volume_problem(value: Any, name: str = SETTING_NAME) -> str | None:
    """Why AWS would refuse ``value`` as ``VolumeSizeInGB``, naming ``name``; or None."""
    low, high = VOLUME_GB_RANGE
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and value == int(value) and low <= value <= high):
        return (
            f"{name} must be {RULE} (GB of storage per Processing instance, AWS's range for "
            f"VolumeSizeInGB), got {value!r}"
        )
    return None
