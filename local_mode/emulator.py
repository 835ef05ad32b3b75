"""The embedded AWS emulator of local mode: a moto server on 127.0.0.1 on a free port.

The demo and the tests talk HTTP to it exactly as the product talks to AWS (boto3, the
SageMaker SDK, Terraform's provider), so nothing in the product is patched. The tests start
one per session (``tests/conftest.py``) and wipe it between tests with ``Emulator.reset()``.

Accounts: the plain test credentials act in moto's default account (the "CI runner"
identity). ``Emulator.account(name)`` returns a session in the dev, preprod or prod account,
obtained the way the product obtains one on AWS: STS ``AssumeRole`` into a role ARN of that
account. moto keeps each account's resources apart but enforces no cross-account
permission, so tests assert isolation themselves.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload

import boto3
import botocore.session
from botocore.config import Config
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from common.aws_sessions import assumed_session, shared_loader
from common.environment import overridden

if TYPE_CHECKING:  # the stubs are a development dependency only
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_sts import STSClient

REGION = "eu-west-1"
# moto's default account: what the plain test credentials act in.
DEFAULT_ACCOUNT = "123456789012"
ACCOUNTS = {"dev": "111111111111", "preprod": "222222222222", "prod": "333333333333"}
DEPLOY_ROLE = "batch-mlops-deploy"


def role_arn(account: str, role: str = DEPLOY_ROLE) -> str:
    """The ARN of ``role`` in one of ``ACCOUNTS`` (by name) or an account id."""
    return f"arn:aws:iam::{ACCOUNTS.get(account, account)}:role/{role}"


# moto returns HTTP 500 for a few unimplemented calls; botocore would retry those for seconds.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 2})


@dataclass
class Emulator:
    endpoint_url: str
    region: str = REGION
    # sessions per account and clients per (account, service), both emptied by reset(),
    # which also makes moto forget the credentials they hold
    _sessions: dict = field(default_factory=dict, repr=False)
    _clients: dict = field(default_factory=dict, repr=False)

    def session(self) -> boto3.Session:
        """A boto3 session with the emulator's dummy credentials (botocore's service models
        read once per process, as the project's sessions read them: a fresh loader per
        session would parse them again for every client)."""
        core = botocore.session.Session()
        core.register_component("data_loader", shared_loader())
        return boto3.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's documented dummy value
            region_name=self.region,
            botocore_session=core,
        )

    @overload
    def client(
        self, service: Literal["cloudwatch"], account: str | None = None
    ) -> CloudWatchClient: ...
    @overload
    def client(self, service: Literal["ecr"], account: str | None = None) -> ECRClient: ...
    @overload
    def client(
        self, service: Literal["events"], account: str | None = None
    ) -> EventBridgeClient: ...
    @overload
    def client(self, service: Literal["iam"], account: str | None = None) -> IAMClient: ...
    @overload
    def client(self, service: Literal["kms"], account: str | None = None) -> KMSClient: ...
    @overload
    def client(self, service: Literal["lambda"], account: str | None = None) -> LambdaClient: ...
    @overload
    def client(
        self, service: Literal["logs"], account: str | None = None
    ) -> CloudWatchLogsClient: ...
    @overload
    def client(self, service: Literal["s3"], account: str | None = None) -> S3Client: ...
    @overload
    def client(
        self, service: Literal["sagemaker"], account: str | None = None
    ) -> SageMakerClient: ...
    @overload
    def client(
        self, service: Literal["secretsmanager"], account: str | None = None
    ) -> SecretsManagerClient: ...
    @overload
    def client(self, service: Literal["sqs"], account: str | None = None) -> SQSClient: ...
    @overload
    def client(self, service: Literal["ssm"], account: str | None = None) -> SSMClient: ...
    @overload
    def client(self, service: Literal["sts"], account: str | None = None) -> STSClient: ...
    @overload  # a service whose stubs the project does not pin (glue): untyped
    def client(self, service: str, account: str | None = None) -> Any: ...
    def client(self, service: str, account: str | None = None) -> Any:
        """A client in the default account, or in ``account`` (a name of ``ACCOUNTS``)."""
        if (account, service) not in self._clients:
            session = self.account(account) if account else self.session()
            # the overloads above type each service; this body serves them all
            self._clients[account, service] = session.client(  # type: ignore[call-overload]
                service, endpoint_url=self.endpoint_url, config=CLIENT_CONFIG
            )
        return self._clients[account, service]

    def credential_variables(self, name: str) -> dict[str, str]:
        """Account ``name``'s keys as the variables a process (Terraform, a CLI) reads."""
        credentials = self.account(name).get_credentials()
        frozen = credentials.get_frozen_credentials() if credentials else None
        if not (frozen and frozen.access_key and frozen.secret_key and frozen.token):
            raise RuntimeError(f"AssumeRole into {name} returned no credentials")
        return {
            "AWS_ACCESS_KEY_ID": frozen.access_key,
            "AWS_SECRET_ACCESS_KEY": frozen.secret_key,
            "AWS_SESSION_TOKEN": frozen.token,
        }

    def account(self, name: str) -> boto3.Session:
        """A session acting in account ``name``, through STS AssumeRole as on AWS."""
        if name not in self._sessions:
            self._sessions[name] = self._assume(name)
        return self._sessions[name]

    def _assume(self, name: str) -> boto3.Session:
        sts = self.session().client("sts", endpoint_url=self.endpoint_url, config=CLIENT_CONFIG)
        return assumed_session(sts, role_arn(name), f"test-{name}", self.region)

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
        """Forget every resource (moto's reset API) and the clients made before."""
        self._clients.clear()
        self._sessions.clear()
        request = urllib.request.Request(  # noqa: S310 - an http://127.0.0.1 URL we built
            f"{self.endpoint_url}/moto-api/reset", method="POST"
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - same URL
            pass


@contextmanager
def running_emulator() -> Iterator[Emulator]:
    """Start a moto server on a free loopback port, empty; stop it on exit.

    moto keeps its state per process, not per server: the emulator starts by wiping it, so
    run one emulator per process at a time.
    """
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        emulator = Emulator(endpoint_url=f"http://{host}:{port}")
        emulator.reset()
        yield emulator
    finally:
        server.stop()


def environment(variables: dict[str, str]) -> AbstractContextManager[None]:
    """Set environment variables for a block (e.g. ``Emulator.environment()``)."""
    return overridden(variables)
