"""Shared fixtures: the AWS emulator, terraform, and a guard against network connections."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from examples.breast_cancer import model
from local_mode.emulator import Emulator, environment, running_emulator
from tests.terraform_cli import terraform

if TYPE_CHECKING:  # the registry helpers load build.py: only where a test asks for them
    from tests.registry import DevRegistry

__all__ = ["terraform"]  # the fixture lives with the code that runs terraform


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that runs Terraform is in the ``infra`` lane (``make test-infra``), the
    others in the fast one (``make test-fast``): marked from the fixture it asks for, so a
    new Terraform test cannot land in the wrong lane.

    Under pytest-xdist (``make test`` runs the suite on several workers) the order is also a
    schedule: ``worksteal`` hands each worker one contiguous block of the list, and idle
    workers take tests from the end of busy ones' blocks. So the tests that apply against the
    emulator (the longest, mostly waiting on the provider) are dealt out one by one to the
    start of each block, then the rest the same way: each worker starts on a long test, and
    the short ones fill the cores around them instead of one long test starting last."""
    for item in items:
        if "terraform" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.infra)

    def start(item: pytest.Item) -> int:
        if item.get_closest_marker("infra") is None:
            return 2
        return 0 if "aws" in getattr(item, "fixturenames", ()) else 1

    items.sort(key=start)
    # on an xdist worker (each collects the whole suite, in the same order), the worker count
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    if workers > 1:
        blocks: list[list[pytest.Item]] = [[] for _ in range(workers)]
        for index, item in enumerate(items):
            blocks[index % workers].append(item)
        items[:] = [item for block in blocks for item in block]


@pytest.fixture(scope="session")
def aws_server() -> Iterator[Emulator]:
    with running_emulator() as emulator:
        yield emulator


@pytest.fixture(scope="session")
def built_model(tmp_path_factory: pytest.TempPathFactory) -> model.Built:
    """The sample model trained and packaged once, in the image's runtime twin (read only:
    a test that changes the artifact writes its own copy)."""
    return model.build(tmp_path_factory.mktemp("trained"))


@pytest.fixture
def aws(aws_server: Emulator) -> Iterator[Emulator]:
    """A clean emulator, with this process's boto3 clients pointed at it."""
    aws_server.reset()
    with environment(aws_server.environment()):
        yield aws_server


@pytest.fixture
def dev(aws: Emulator) -> DevRegistry:
    """The dev account's registry and artifact bucket, empty."""
    from tests.registry import DevRegistry

    return DevRegistry(aws)


@pytest.fixture
def preprod(aws: Emulator) -> dict:
    """The pre-prod account's base resources, as infra/ makes them; its SSM parameters."""
    from tests.registry import create_stage

    return create_stage(aws, "preprod")


class NetworkBlocked(AssertionError):
    """Raised when code under test opens a network connection."""


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list:
    """Fail any outgoing connection or name lookup, and record the attempts."""
    attempts: list = []

    def refuse_connect(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise NetworkBlocked(f"network connection attempted to {address!r}")

    def refuse_lookup(host: object, *args: object, **kwargs: object) -> None:
        attempts.append(host)
        raise NetworkBlocked(f"name lookup attempted for {host!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse_connect)
    monkeypatch.setattr(socket, "getaddrinfo", refuse_lookup)
    return attempts


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections for the whole test: bound, never listening,
    so no other process can take it (a port closed after probing could be reused)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]
