"""An AWS emulator for tests: a moto server on 127.0.0.1, reached through real clients.

Tests talk HTTP to the server exactly as the product talks to AWS (boto3, the SageMaker SDK,
Terraform's provider), so nothing in the product is patched. Start one per test session
with the ``aws`` fixture (``tests/conftest.py``); ``Emulator.reset()`` wipes its state
between tests.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import boto3
from botocore.config import Config
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

REGION = "eu-west-1"
# moto's default account; later fixtures add more accounts through STS AssumeRole.
DEFAULT_ACCOUNT = "123456789012"
# moto returns HTTP 500 for a few unimplemented calls; botocore would retry those for seconds.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 2})


@dataclass
class Emulator:
    endpoint_url: str
    region: str = REGION

    def session(self) -> boto3.Session:
        """A boto3 session with the emulator's dummy credentials."""
        return boto3.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name=self.region,
        )

    def client(self, service: str):
        return self.session().client(service, endpoint_url=self.endpoint_url, config=CLIENT_CONFIG)

    def environment(self) -> dict[str, str]:
        """Variables that point every boto3 client of a process at the emulator."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_MAX_ATTEMPTS": "2",
        }

    def reset(self) -> None:
        """Forget every resource (moto's reset API)."""
        request = urllib.request.Request(  # noqa: S310 - an http://127.0.0.1 URL we built
            f"{self.endpoint_url}/moto-api/reset", method="POST"
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - same URL
            pass


@contextmanager
def running_emulator() -> Iterator[Emulator]:
    """Start a moto server on a free loopback port; stop it on exit."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield Emulator(endpoint_url=f"http://{host}:{port}")
    finally:
        server.stop()


@contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block, restoring the previous values after it."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
