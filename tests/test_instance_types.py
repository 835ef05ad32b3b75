"""The instance table's numbers and its refusal of a type it does not know."""

import pytest

from pipelines.instance_types import INSTANCE_TYPES, UnknownInstanceType, instance_type


def test_each_size_has_the_ec2_types_numbers() -> None:
    assert instance_type("ml.m5.xlarge").vcpus == 4
    assert instance_type("ml.m5.xlarge").memory_gib == 16
    assert instance_type("ml.c5.9xlarge").vcpus == 36
    assert instance_type("ml.r5.large").memory_gib == 16
    # memory per vCPU is each family's: c5 2 GiB, m5 4 GiB, r5 8 GiB
    ratios = {t.name.split(".")[1]: t.memory_gib / t.vcpus for t in INSTANCE_TYPES.values()}
    assert ratios == {"c5": 2, "m5": 4, "r5": 8}


def test_an_unknown_type_names_the_table_to_extend() -> None:
    with pytest.raises(UnknownInstanceType) as raised:
        instance_type("ml.g5.xlarge")
    assert "ml.g5.xlarge is not in pipelines/instance_types.py" in str(raised.value)
