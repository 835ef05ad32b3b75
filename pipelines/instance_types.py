"""What each SageMaker instance type is made of: vCPUs and memory.

An ``ml.`` type has the hardware of the EC2 type of the same name (Amazon EC2 instance type
pages, "General purpose" m5, "Compute optimized" c5, "Memory optimized" r5), so the
numbers below are EC2's. They decide how many requests a Transform instance serves at once
(one gunicorn worker per vCPU in the scikit-learn image), how many files Preprocess reads at
once, and what a capacity plan assumes. A type missing here is not refused by AWS, only
unknown to these defaults: add its line.

For the capacity plan (``pipelines/capacity.py``) each type also has its physical cores
(every m5, c5 and r5 vCPU is one of two hardware threads of a core: Amazon EC2 Instance
Types guide, "Specifications", e.g. m5.xlarge 4 vCPUs, 2 cores, 2 threads per core) and its
baseline network bandwidth in Gbps (same guide, "Network specifications": the sizes up to
4xlarge are "baseline / burst", e.g. m5.xlarge 1.25 / 10.0, and only the baseline is
sustained; the larger ones have one figure).
"""

from __future__ import annotations

from dataclasses import dataclass

THREADS_PER_CORE = 2  # every m5, c5 and r5 size (EC2's guide, "Specifications")


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_gib: int
    network_gbps: float  # baseline: what a long transfer can count on

    @property
    def cores(self) -> int:
        """Physical cores: the vCPUs are hardware threads, two per core."""
        return max(1, self.vcpus // THREADS_PER_CORE)


_SIZES = {  # size: vCPUs, baseline Gbps, and GiB of memory per family
    "large": (2, 0.75, {"m5": 8, "c5": 4, "r5": 16}),
    "xlarge": (4, 1.25, {"m5": 16, "c5": 8, "r5": 32}),
    "2xlarge": (8, 2.5, {"m5": 32, "c5": 16, "r5": 64}),
    "4xlarge": (16, 5.0, {"m5": 64, "c5": 32, "r5": 128}),
    "9xlarge": (36, 12.0, {"c5": 72}),
    "8xlarge": (32, 10.0, {"m5": 128, "r5": 256}),
    "12xlarge": (48, 12.0, {"m5": 192, "c5": 96, "r5": 384}),
    "16xlarge": (64, 20.0, {"m5": 256, "r5": 512}),
    "18xlarge": (72, 25.0, {"c5": 144}),
    "24xlarge": (96, 25.0, {"m5": 384, "c5": 192, "r5": 768}),
}

INSTANCE_TYPES: dict[str, InstanceType] = {
    f"ml.{family}.{size}": InstanceType(f"ml.{family}.{size}", vcpus, memory, gbps)
    for size, (vcpus, gbps, families) in _SIZES.items()
    for family, memory in families.items()
}


class UnknownInstanceType(KeyError):
    """A type this table does not list: its numbers must be given, not guessed."""

    def __str__(self) -> str:
        return (
            f"{self.args[0]} is not in pipelines/instance_types.py (known: ml.m5, ml.c5 and "
            "ml.r5 sizes); add its vCPUs and memory there"
        )


def instance_type(name: str) -> InstanceType:
    """The type named ``name``, or ``UnknownInstanceType``."""
    try:
        return INSTANCE_TYPES[name]
    except KeyError:
        raise UnknownInstanceType(name) from None
